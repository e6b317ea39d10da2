"""--fix and --diff: every byte the fix does not touch is kept; writes are atomic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import libcst as cst
import pytest
from conftest import run_cli

from eqxlint.linter import Settings, fix_text, write_atomically
from eqxlint.rules import all_rules
from eqxlint.rules.base import Finding, Rule
from eqxlint.semantics import Semantics

BUGGY = (
    "# -*- coding: utf-8 -*-\n"
    "import equinox as eqx   # the library\n"
    "\n"
    "def step(model, updates):\n"
    "    # café: a comment that must survive\n"
    "    model = eqx.apply_updates(eqx.filter(model, eqx.is_array),   updates)  # trailing\n"
    "    return model\n"
)
FIXED = BUGGY.replace("eqx.filter(model, eqx.is_array)", "model")


def _fix(tmp_path: Path, data: bytes, *flags: str) -> tuple[int, bytes, str]:
    target = tmp_path / "train.py"
    target.write_bytes(data)
    result = run_cli("--fix", *flags, "train.py", cwd=tmp_path)
    return result.exit_code, target.read_bytes(), result.output


def test_fix_rewrites_in_place_and_reports_what_it_did(tmp_path: Path) -> None:
    code, after, output = _fix(tmp_path, BUGGY.encode())
    assert after == FIXED.encode()
    assert code == 0
    assert "Found 1 error (1 fixed, 0 remaining)." in output


def test_crlf_line_endings_are_kept(tmp_path: Path) -> None:
    code, after, _ = _fix(tmp_path, BUGGY.replace("\n", "\r\n").encode())
    assert after == FIXED.replace("\n", "\r\n").encode()


def test_mixed_line_endings_are_kept(tmp_path: Path) -> None:
    lines = BUGGY.splitlines(keepends=True)
    mixed = "".join(line.replace("\n", "\r\n") if i % 2 else line for i, line in enumerate(lines))
    code, after, _ = _fix(tmp_path, mixed.encode())
    assert after == mixed.replace("eqx.filter(model, eqx.is_array)", "model").encode()


def test_utf8_bom_is_kept(tmp_path: Path) -> None:
    code, after, _ = _fix(tmp_path, b"\xef\xbb\xbf" + BUGGY.encode())
    assert after == b"\xef\xbb\xbf" + FIXED.encode()


def test_declared_latin1_encoding_is_kept(tmp_path: Path) -> None:
    source = BUGGY.replace("utf-8", "latin-1")
    code, after, _ = _fix(tmp_path, source.encode("latin-1"))
    assert after == source.replace("eqx.filter(model, eqx.is_array)", "model").encode("latin-1")
    assert b"caf\xe9" in after


def test_no_trailing_newline_and_tabs_are_kept(tmp_path: Path) -> None:
    source = BUGGY.replace("    ", "\t").rstrip("\n")
    code, after, _ = _fix(tmp_path, source.encode())
    assert after == source.replace("eqx.filter(model, eqx.is_array)", "model").encode()


def test_file_mode_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "train.py"
    target.write_text(BUGGY)
    target.chmod(0o751)
    run_cli("--fix", "train.py", cwd=tmp_path)
    assert target.read_text() == FIXED
    assert target.stat().st_mode & 0o777 == 0o751


def test_diff_prints_a_patch_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "train.py"
    target.write_text(BUGGY)
    before = target.stat()
    result = run_cli("--diff", "train.py", cwd=tmp_path)
    assert result.exit_code == 1
    assert "--- a/train.py\n+++ b/train.py\n" in result.output
    assert "-    model = eqx.apply_updates(eqx.filter(model, eqx.is_array),   updates)  # trailing" \
        in result.output
    assert "+    model = eqx.apply_updates(model,   updates)  # trailing" in result.output
    assert target.read_text() == BUGGY
    assert target.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(os.listdir(tmp_path)) == ["train.py"]


def test_diff_on_clean_code_is_empty_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(FIXED)
    result = run_cli("--diff", "train.py", cwd=tmp_path)
    assert result.exit_code == 0
    assert "---" not in result.output


def test_fixing_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    _fix(tmp_path, BUGGY.encode())
    code, after, output = _fix(tmp_path, FIXED.encode())
    assert after == FIXED.encode() and "All checks passed!" in output


def test_fix_on_the_buggy_example_gives_the_fixed_example(tmp_path: Path) -> None:
    from conftest import REPO

    code, after, output = _fix(tmp_path, (REPO / "examples" / "train_buggy.py").read_bytes())
    assert after == (REPO / "examples" / "train_fixed.py").read_bytes()
    assert "Found 3 errors (3 fixed, 0 remaining)." in output


class _BreaksTheFile(Rule):
    """A rule whose fix would not parse: the engine must drop it."""

    code = "EQX998"
    name = "breaks-the-file"
    summary = what_it_does = why_bad = example = use_instead = fix_safety = "test"
    fix_applicability = "safe"

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        broken = cst.Name("placeholder")
        object.__setattr__(broken, "value", "a b c")  # libcst would refuse it as built
        for site in semantics.calls:
            yield Finding(site.node, "call", "hint", replacements=((site.node, broken),))


class _UnsafeRename(Rule):
    code = "EQX997"
    name = "unsafe-rename"
    summary = what_it_does = why_bad = example = use_instead = fix_safety = "test"
    fix_applicability = "unsafe"

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for site in semantics.calls:
            if isinstance(site.node.func, cst.Name) and site.node.func.value == "old":
                yield Finding(site.node, "call", "hint",
                              replacements=((site.node.func, cst.Name("new")),))


def test_a_fix_that_would_not_parse_is_dropped_with_a_warning() -> None:
    source = "f(x)\n"
    fixed, applied, remaining, warnings = fix_text(source, "t.py",
                                                   Settings(rules=[_BreaksTheFile], fix=True))
    assert fixed == source and applied == 0
    assert warnings == ["t.py:1:1: the EQX998 fix would not re-parse; left as it was"]
    assert [d.code for d in remaining] == ["EQX998"]


def test_unsafe_fixes_need_the_flag() -> None:
    source = "old(1)\n"
    safe_only = fix_text(source, "t.py", Settings(rules=[_UnsafeRename], fix=True))
    assert safe_only[0] == source and safe_only[1] == 0
    unsafe = fix_text(source, "t.py", Settings(rules=[_UnsafeRename], fix=True, unsafe_fixes=True))
    assert unsafe[0] == "new(1)\n" and unsafe[1] == 1


def test_atomic_write_leaves_the_file_whole_when_writing_fails(tmp_path: Path,
                                                               monkeypatch) -> None:
    target = tmp_path / "train.py"
    target.write_text(BUGGY)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        write_atomically(target, FIXED.encode())
    assert target.read_text() == BUGGY
    assert sorted(os.listdir(tmp_path)) == ["train.py"]


def test_a_failed_write_is_a_warning_and_the_file_is_untouched(tmp_path: Path,
                                                               monkeypatch) -> None:
    import eqxlint.linter as linter

    def fail(path, data):
        raise OSError("read-only file system")

    monkeypatch.setattr(linter, "write_source", fail)
    target = tmp_path / "train.py"
    target.write_text(BUGGY)
    result = linter.lint_path(target, "train.py", Settings(rules=list(all_rules()), fix=True),
                              write=True)
    assert result.warnings == ["train.py: could not write the fixes: read-only file system"]
    assert [d.code for d in result.diagnostics] == ["EQX101"] and result.fixed == 0
    assert target.read_text() == BUGGY


def test_every_rule_fix_is_idempotent_on_the_examples() -> None:
    """Fix all bad examples of every rule: the result re-parses and a second pass is a no-op."""
    settings = Settings(rules=list(all_rules()), fix=True, unsafe_fixes=True)
    for rule in all_rules():
        for example in rule.bad_examples:
            if rule.code == "EQX000":
                continue
            once, _, _, warnings = fix_text(example.source, "x.py", settings)
            assert not warnings
            cst.parse_module(once)
            twice, applied, _, _ = fix_text(once, "x.py", settings)
            assert twice == once and applied == 0, (rule.code, example.note)


# ---------------------------------------------------------------------------
# Writing fixes back: what the file is survives (issue 10)


def test_fix_on_a_symlink_writes_the_target_and_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "train.py").write_text(BUGGY)
    (tmp_path / "link.py").symlink_to(real / "train.py")
    result = run_cli("--fix", "link.py", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "link.py").is_symlink()
    assert os.readlink(tmp_path / "link.py") == str(real / "train.py")
    assert (real / "train.py").read_text() == FIXED
    assert sorted(os.listdir(tmp_path)) == ["link.py", "real"]
    assert sorted(os.listdir(real)) == ["train.py"]


def test_fix_keeps_hard_links(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(BUGGY)
    os.link(tmp_path / "train.py", tmp_path / "twin.py")
    inode = (tmp_path / "train.py").stat().st_ino
    result = run_cli("--fix", "train.py", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "train.py").stat().st_ino == inode
    assert (tmp_path / "twin.py").read_text() == FIXED
    assert (tmp_path / "train.py").stat().st_nlink == 2


def test_fix_keeps_owner_group_and_mode(tmp_path: Path) -> None:
    import pwd

    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another owner")
    nobody = pwd.getpwnam("nobody")
    target = tmp_path / "train.py"
    target.write_text(BUGGY)
    os.chown(target, nobody.pw_uid, nobody.pw_gid)
    target.chmod(0o640)
    run_cli("--fix", "train.py", cwd=tmp_path)
    status = target.stat()
    assert target.read_text() == FIXED
    assert (status.st_uid, status.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert status.st_mode & 0o7777 == 0o640


def test_fix_as_another_user_keeps_the_owner_by_writing_in_place(tmp_path: Path) -> None:
    """A user who may write a file but not chown it: the inode (and its owner) stay."""
    from eqxlint.files import write_source

    target = tmp_path / "train.py"
    target.write_text(BUGGY)
    inode = target.stat().st_ino
    import eqxlint.files as files

    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    original = os.fchown
    try:
        files.os.fchown = refuse  # type: ignore[attr-defined]
        if os.geteuid() == 0:
            os.chown(target, 65534, 65534)  # owned by someone else, as for a non-root user
        write_source(target, FIXED.encode())
    finally:
        files.os.fchown = original  # type: ignore[attr-defined]
    assert target.read_text() == FIXED and target.stat().st_ino == inode
    assert sorted(os.listdir(tmp_path)) == ["train.py"]


def test_fix_that_cannot_be_written_still_reports_the_findings(tmp_path: Path) -> None:
    """A read-only folder, as a real unprivileged user: findings stay, exit 1."""
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv")
    folder = Path(tempfile.mkdtemp(prefix="eqxlint-test-", dir="/tmp"))
    try:
        target = folder / "train.py"
        target.write_text(BUGGY)
        prefix: list[str] = []
        if os.geteuid() == 0:
            os.chown(target, 65534, 65534)
            os.chown(folder, 65534, 65534)
            prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        folder.chmod(0o555)
        completed = subprocess.run(
            [*prefix, sys.executable, "-m", "eqxlint", "--fix", "--no-cache", "train.py"],
            cwd=folder, capture_output=True, text=True, timeout=120)
        output = completed.stdout + completed.stderr
        assert completed.returncode == 1, output
        assert "could not write the fixes: Permission denied" in completed.stderr
        assert "train.py:6:13: EQX101" in completed.stdout
        assert "All checks passed!" not in output
        assert target.read_text() == BUGGY
        assert sorted(os.listdir(folder)) == ["train.py"]
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_form_feed_at_line_start_never_misplaces_a_fix(tmp_path: Path) -> None:
    """libcst's columns are one short after a leading \\x0c: the edit's text check stops it."""
    source = ("import equinox as eqx\n"
              "\x0cstate, model = eqx.nn.make_with_state(Net)(key)\n"
              "state, model = eqx.nn.make_with_state(Net)(key)\n")
    code, after, output = _fix(tmp_path, source.encode())
    expected = source.replace("\nstate, model", "\nmodel, state")
    assert after.decode() == expected  # the clean line fixed, the form-feed line untouched
    compile(after, "train.py", "exec")
    assert "the EQX301 fix does not match the text it would replace" in output
    assert "EQX301" in output  # the unfixed finding is still reported


def test_diff_splits_lines_as_python_does(tmp_path: Path) -> None:
    source = "import equinox as eqx\n\x0cx = 1\nstate, model = eqx.nn.make_with_state(Net)(key)\n"
    (tmp_path / "train.py").write_text(source)
    result = run_cli("--diff", "train.py", cwd=tmp_path)
    assert " \x0cx = 1\n-state, model = eqx" in result.output


def test_eqx104_offers_no_fix_when_the_file_has_no_name_for_is_inexact_array() -> None:
    source = (
        "import optax\n"
        "from equinox import Module, filter, is_array as keep\n"
        "from jaxtyping import Array, Int\n"
        "class Model(Module):\n"
        "    index: Int[Array, 'n']\n"
        "opt_state = optax.adam(1e-3).init(filter(Model(i), keep))\n")
    settings = Settings(rules=[rule for rule in all_rules() if rule.code == "EQX104"], fix=True)
    fixed, applied, remaining, _ = fix_text(source, "example.py", settings)
    assert (fixed, applied) == (source, 0)  # `keep` -> `keep` was offered before
    [finding] = remaining
    assert "`eqx.is_inexact_array`" in finding.hint and not finding.fix
