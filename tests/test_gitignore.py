"""gitignore(5) patterns, checked against the cases its manual describes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from eqxlint.gitignore import GitIgnore, parse, parse_line, _verdict


def _ignored(lines: str, path: str, is_dir: bool = False) -> bool:
    return bool(_verdict(parse(lines), path, is_dir))


@pytest.mark.parametrize("pattern, path, is_dir, expected", [
    ("*.py", "a.py", False, True),
    ("*.py", "deep/down/a.py", False, True),          # no slash: any depth
    ("*.py", "a.pyc", False, False),
    ("/a.py", "a.py", False, True),                   # leading slash: anchored
    ("/a.py", "sub/a.py", False, False),
    ("doc/frotz", "doc/frotz", False, True),          # middle slash: anchored
    ("doc/frotz", "a/doc/frotz", False, False),
    ("build/", "build", True, True),                  # trailing slash: folders only
    ("build/", "build", False, False),
    ("build/", "src/build", True, True),
    ("**/foo", "foo", False, True),
    ("**/foo", "a/b/foo", False, True),
    ("**/foo/bar", "x/foo/bar", False, True),
    ("abc/**", "abc/x/y.py", False, True),
    ("abc/**", "abc", True, False),
    ("a/**/b", "a/b", False, True),
    ("a/**/b", "a/x/y/b", False, True),
    ("a/*/b", "a/x/y/b", False, False),               # `*` does not cross `/`
    ("f?o.py", "foo.py", False, True),
    ("f?o.py", "f/o.py", False, False),
    ("[abc].py", "b.py", False, True),
    ("[!abc].py", "d.py", False, True),
    ("[!abc].py", "a.py", False, False),
    ("\\#hash.py", "#hash.py", False, True),
    ("\\!bang.py", "!bang.py", False, True),
    ("space\\ ", "space ", False, True),
    ("trailing.py   ", "trailing.py", False, True),
])
def test_patterns(pattern: str, path: str, is_dir: bool, expected: bool) -> None:
    assert _ignored(pattern, path, is_dir) is expected


def test_comments_blank_lines_and_last_match_wins() -> None:
    assert parse_line("# comment") is None and parse_line("") is None
    lines = "*.py\n!keep.py\n"
    assert _ignored(lines, "x.py") and not _ignored(lines, "keep.py")
    assert _ignored("!keep.py\n*.py\n", "keep.py")  # the later pattern wins


def test_deeper_gitignore_wins_and_info_exclude_applies(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, timeout=60)
    (tmp_path / ".gitignore").write_text("*.gen.py\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".gitignore").write_text("!special.gen.py\n")
    (tmp_path / ".git" / "info").mkdir(exist_ok=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("secret.py\n")
    ignores = GitIgnore()
    assert ignores.ignored(tmp_path / "a.gen.py", False)
    assert ignores.ignored(tmp_path / "sub" / "b.gen.py", False)
    assert not ignores.ignored(tmp_path / "sub" / "special.gen.py", False)
    assert ignores.ignored(tmp_path / "sub" / "secret.py", False)
    assert not ignores.ignored(tmp_path / "sub" / "plain.py", False)


def test_agrees_with_git_check_ignore(tmp_path: Path) -> None:
    """The same verdicts as git itself, on one tree with every kind of pattern."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, timeout=60)
    (tmp_path / ".gitignore").write_text(
        "*.log\n/top.py\nbuild/\ndocs/**/gen_*.py\n!docs/keep/gen_ok.py\n[ab]?.py\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / ".gitignore").write_text("local_*.py\n!local_keep.py\n")
    candidates = ["x.log", "pkg/x.log", "top.py", "pkg/top.py", "build/a.py", "pkg/build/a.py",
                  "docs/a/gen_x.py", "docs/gen_y.py", "docs/keep/gen_ok.py", "a1.py",
                  "c1.py", "pkg/b2.py", "pkg/local_x.py", "pkg/local_keep.py", "local_x.py"]
    for name in candidates:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    git = subprocess.run(["git", "check-ignore", "--no-index", *candidates], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    by_git = set(git.stdout.split())
    ignores = GitIgnore()

    def ours(name: str) -> bool:
        path = tmp_path / name
        parents = [p for p in path.relative_to(tmp_path).parents if str(p) != "."]
        return any(ignores.ignored(tmp_path / p, True) for p in parents) or \
            ignores.ignored(path, False)

    assert {name for name in candidates if ours(name)} == by_git
