"""No input crashes the linter: each bad file gets an EQX000 line and the run goes on."""

from __future__ import annotations

import ast
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_subprocess

BUGGY = "import equinox as eqx\nmodel = eqx.apply_updates(eqx.filter(model, eqx.is_array), u)\n"


def _check(folder: Path, *paths: str) -> tuple[int, str, str]:
    completed = run_subprocess(*paths, "--output-format", "concise", cwd=folder)
    return completed.returncode, completed.stdout.decode(), completed.stderr.decode()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "buggy.py").write_text(BUGGY)
    return tmp_path


def _assert_still_checked_the_rest(out: str, err: str) -> None:
    assert "buggy.py:2:9: EQX101" in out
    assert "Traceback" not in out + err


def test_invalid_syntax(folder: Path) -> None:
    (folder / "broken.py").write_text("import equinox as eqx\nx = eqx.apply_updates(eqx.filter(\n")
    code, out, err = _check(folder, ".")
    assert code == 2
    assert "broken.py:2:33: EQX000 SyntaxError: '(' was never closed" in out  # CPython's position
    _assert_still_checked_the_rest(out, err)


def test_undecodable_bytes(folder: Path) -> None:
    (folder / "latin.py").write_bytes(b"# apply_updates\nname = '\xe9t\xe9'\n")
    code, out, err = _check(folder, ".")
    assert code == 2
    assert "latin.py:2:1: EQX000 Could not decode: bytes that are not valid UTF-8" in out
    _assert_still_checked_the_rest(out, err)


def test_declared_encoding_is_honoured(folder: Path) -> None:
    (folder / "latin.py").write_bytes(
        b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + BUGGY.encode())
    code, out, err = _check(folder, "latin.py")
    assert code == 1 and "latin.py:4:9: EQX101" in out


def test_unknown_encoding(folder: Path) -> None:
    (folder / "odd.py").write_bytes(b"# coding: klingon\nx = 1\n")
    code, out, err = _check(folder, ".")
    assert code == 2 and "odd.py:1:1: EQX000 Could not decode: unknown encoding: klingon" in out
    _assert_still_checked_the_rest(out, err)


def test_binary_file_named_py(folder: Path) -> None:
    (folder / "model.py").write_bytes(bytes(range(256)) * 8)
    (folder / "nulls.py").write_bytes(b"x = 1\n\x00\x00apply_updates\n")
    code, out, err = _check(folder, ".")
    assert code == 2
    assert "model.py:2:1: EQX000 Could not decode: bytes that are not valid utf-8" in out
    assert "nulls.py:2:1: EQX000 Could not decode: the file contains null bytes" in out
    _assert_still_checked_the_rest(out, err)


def test_empty_file(folder: Path) -> None:
    (folder / "empty.py").write_bytes(b"")
    (folder / "blank.py").write_bytes(b"\n\n  \n")
    code, out, err = _check(folder, ".")
    assert code == 1
    _assert_still_checked_the_rest(out, err)


def test_huge_file(folder: Path) -> None:
    lines = ["import equinox as eqx"] + [f"x{i} = eqx.apply_updates(model, updates)"
                                         for i in range(50_000)]
    lines.append("model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)")
    (folder / "huge.py").write_text("\n".join(lines) + "\n")
    code, out, err = _check(folder, "huge.py")
    assert code == 1
    assert out.startswith("huge.py:50002:9: EQX101")


def test_missing_path(folder: Path) -> None:
    code, out, err = _check(folder, "nowhere.py", "buggy.py")
    assert code == 2
    assert "nowhere.py:1:1: EQX000 No such file or directory" in out
    _assert_still_checked_the_rest(out, err)


def test_broken_symlink(folder: Path) -> None:
    (folder / "gone.py").symlink_to(folder / "missing-target.py")
    code, out, err = _check(folder, ".")
    assert code == 2
    assert "gone.py:1:1: EQX000 Could not read: No such file or directory" in out
    _assert_still_checked_the_rest(out, err)


def test_a_folder_named_like_a_python_file(folder: Path) -> None:
    (folder / "pkg.py").mkdir()
    (folder / "pkg.py" / "inner.py").write_text(BUGGY)
    code, out, err = _check(folder, ".")
    assert "pkg.py/inner.py:2:9: EQX101" in out
    _assert_still_checked_the_rest(out, err)


def _without_root_privilege() -> list[str]:
    """Root reads everything: drop the capabilities that bypass file permissions."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def test_unreadable_folder_and_file(tmp_path: Path) -> None:
    (tmp_path / "buggy.py").write_text(BUGGY)
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "inside.py").write_text(BUGGY)
    secret = tmp_path / "secret.py"
    secret.write_text(BUGGY)
    locked.chmod(0)
    secret.chmod(0)
    try:
        completed = subprocess.run(
            [*_without_root_privilege(), sys.executable, "-m", "eqxlint", ".",
             "--output-format", "concise"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        locked.chmod(stat.S_IRWXU)
        secret.chmod(stat.S_IRUSR | stat.S_IWUSR)
    out, err = completed.stdout, completed.stderr
    assert completed.returncode == 2, out + err
    assert "locked:1:1: EQX000 Could not read: Permission denied" in out
    assert "secret.py:1:1: EQX000 Could not read: Permission denied" in out
    _assert_still_checked_the_rest(out, err)


def test_internal_errors_are_reported_without_a_traceback(folder: Path, monkeypatch) -> None:
    """A bug in a rule is one line on stderr and exit 2, and other files are still checked."""
    from eqxlint.linter import Settings, lint_path
    from eqxlint.rules import all_rules
    from eqxlint.rules.eqx101_apply_updates_to_filtered_model import ApplyUpdatesToFilteredModel

    def explode(self, semantics):
        raise RuntimeError("boom")
        yield

    monkeypatch.setattr(ApplyUpdatesToFilteredModel, "check", explode)
    result = lint_path(folder / "buggy.py", "buggy.py", Settings(rules=list(all_rules())), False)
    assert result.internal_error == "buggy.py: internal error: RuntimeError: boom"


# ---------------------------------------------------------------------------
# Inputs that used to hang, crash or lose findings (issue 10)


def test_a_fifo_is_skipped_with_a_note_not_opened(folder: Path) -> None:
    """Given, or met while walking a folder, a FIFO named x.py must not block the run."""
    os.mkfifo(folder / "pipe.py")
    for paths in ((".",), ("pipe.py", "buggy.py")):
        completed = run_subprocess(*paths, "--output-format", "concise", "--no-cache",
                                   cwd=folder)
        out, err = completed.stdout.decode(), completed.stderr.decode()
        assert completed.returncode == 1, out + err
        assert "pipe.py: skipped: a FIFO (named pipe), not a regular file" in err
        _assert_still_checked_the_rest(out, err)
    # With the cache on, the cache lookup must not block on it either.
    completed = run_subprocess(".", "--output-format", "concise", cwd=folder)
    assert completed.returncode == 1 and "pipe.py: skipped" in completed.stderr.decode()


def test_deep_nesting_is_cpythons_refusal_and_costs_only_that_file(folder: Path) -> None:
    """1,500 nested calls overflow libcst's native parser (SIGSEGV); CPython refuses them."""
    (folder / "deep.py").write_text("import optax\nx = " + "f(" * 1500 + "1" + ")" * 1500 + "\n")
    for index in range(5):  # enough files for several workers
        (folder / f"other{index}.py").write_text(BUGGY)
    code, out, err = _check(folder, ".")
    assert code == 2, out + err
    assert "deep.py:2:" in out and "EQX000 SyntaxError: too many nested parentheses" in out
    assert "BrokenProcessPool" not in err
    _assert_still_checked_the_rest(out, err)
    assert out.count("EQX101") == 6
    code, out, err = _check(folder, "deep.py")
    assert code == 2 and "EQX000 SyntaxError: too many nested parentheses" in out


def test_a_worker_that_dies_costs_only_its_own_file(folder: Path) -> None:
    """A native crash in a worker (here: a real SIGSEGV) is EQX000 for that file only."""
    import textwrap

    (folder / "crash.py").write_text("import optax\nx = 1\noptimizer = optax.adam(1e-3)\n"
                                     "state = optimizer.init(params)\n")
    for index in range(5):
        (folder / f"other{index}.py").write_text(BUGGY)
    # Run the real CLI, with a rule that segfaults on one file (as libcst's parser does).
    driver = textwrap.dedent("""
        import ctypes, sys
        from eqxlint.rules.eqx102_unfiltered_optimizer_init import UnfilteredOptimizerInit
        original = UnfilteredOptimizerInit.check
        def check(self, semantics):
            if "x = 1" in semantics.module.code:
                ctypes.string_at(0)  # SIGSEGV
            return original(self, semantics)
        UnfilteredOptimizerInit.check = check
        import eqxlint.cli
        eqxlint.cli.main(sys.argv[1:])
    """)
    for jobs in ("1", "2"):
        completed = subprocess.run(
            [sys.executable, "-c", driver, ".", "--output-format", "concise", "--no-cache",
             "--jobs", jobs], cwd=folder, capture_output=True, text=True, timeout=120)
        out, err = completed.stdout, completed.stderr
        assert completed.returncode == 2, out + err
        assert "crash.py:1:1: EQX000 could not be parsed: the parser crashed (killed by " \
               "SIGSEGV)" in out
        _assert_still_checked_the_rest(out, err)
        assert out.count("EQX101") == 6


def test_a_file_over_its_time_budget_is_reported_and_the_run_goes_on(folder: Path) -> None:
    """libcst's time grows about cubically with an attribute chain: a budget stops it.
    Ten chains of 2,400 (about 1 s each for libcst here; ast refuses one much longer):
    far over the budget on any machine, so that the test does not hang on its speed."""
    (folder / "chain.py").write_text("import optax\noptax.adam(1e-3).init(p)\n" + "".join(
        f"x{i} = a" + ".b" * 2_400 + "\n" for i in range(10)))
    code, out, err = _check(folder, ".", "--file-timeout", "1", "--no-cache")
    assert code == 2, out + err
    assert "chain.py:1:1: EQX000 not analysed: took longer than 1 s of CPU time" in out
    _assert_still_checked_the_rest(out, err)
    (folder / "pyproject.toml").write_text("[tool.eqxlint]\nfile-timeout = 1\n")
    code, out, err = _check(folder, "chain.py", "--no-cache")
    assert "chain.py:1:1: EQX000 not analysed: took longer than 1 s" in out


def _without_root_as_nobody() -> list[str]:
    """A real unprivileged user (nobody), as CI runners and developers are."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0:
        return []
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot become an unprivileged user")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def public_folder() -> Path:
    """A folder an unprivileged user may enter (pytest's tmp_path is root's alone)."""
    import pwd
    import tempfile

    made = Path(tempfile.mkdtemp(prefix="eqxlint-test-", dir="/tmp"))
    made.chmod(0o755)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(made, nobody.pw_uid, nobody.pw_gid)
    yield made
    for path in [made, *made.rglob("*")]:
        try:
            path.chmod(0o755 if path.is_dir() else 0o644)
        except OSError:
            pass
    shutil.rmtree(made, ignore_errors=True)


def _as_nobody(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*_without_root_as_nobody(), sys.executable, "-m", "eqxlint", *args],
                          cwd=folder, capture_output=True, text=True, timeout=120)


def _give_to_nobody(*paths: Path) -> None:
    if os.geteuid() == 0:
        import pwd

        nobody = pwd.getpwnam("nobody")
        for path in paths:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)


def test_unsearchable_and_unreadable_paths_given_by_name(public_folder: Path) -> None:
    """As a non-root user: each unreadable path named is EQX000, the others still checked."""
    (public_folder / "buggy.py").write_text(BUGGY)
    locked = public_folder / "locked"
    locked.mkdir()
    (locked / "inside.py").write_text(BUGGY)
    secret = public_folder / "secret.py"
    secret.write_text(BUGGY)
    _give_to_nobody(public_folder / "buggy.py", locked, locked / "inside.py", secret)
    locked.chmod(0)
    secret.chmod(0)
    for first in ("locked/inside.py", "locked", "secret.py"):
        completed = _as_nobody(public_folder, first, "buggy.py", "--output-format", "concise",
                               "--no-cache")
        out, err = completed.stdout, completed.stderr
        assert completed.returncode == 2, out + err
        assert f"{first}:1:1: EQX000 Could not read: Permission denied" in out, out + err
        _assert_still_checked_the_rest(out, err)


@pytest.mark.parametrize("codec", ["undefined", "punycode"])
def test_a_codec_whose_decoder_raises_unicode_error(folder: Path, codec: str) -> None:
    (folder / "odd.py").write_bytes(f"# coding: {codec}\nx = 1\n".encode())
    code, out, err = _check(folder, ".")
    assert code == 2, out + err
    assert f"odd.py:1:1: EQX000 Could not decode: the declared encoding '{codec}' cannot " \
           "decode this file" in out
    _assert_still_checked_the_rest(out, err)


def test_every_file_is_syntax_checked_even_those_no_rule_needs(folder: Path) -> None:
    """The pre-filter spares libcst, not CPython: `def f(:` is reported though no rule fires."""
    (folder / "a.py").write_text("def f(:\n")
    (folder / "b.py").write_text("x = 1\n\ndef (:\n    pass\n")
    (folder / "c.py").write_text("from \nimport x\n")
    # Parsed, refused only by CPython's compiler: not a syntax error to eqxlint (Ruff's F706).
    (folder / "d.py").write_text("def f():\n    pass\nreturn 1\n")
    code, out, err = _check(folder, ".")
    assert code == 2, out + err

    def cpython(source: str) -> str:
        try:
            ast.parse(source, "x")
        except SyntaxError as error:
            return f"{error.lineno}:{error.offset}: EQX000 SyntaxError: {error.msg}"
        raise AssertionError("CPython's parser accepts it")

    assert "a.py:1:7: EQX000 SyntaxError: invalid syntax" in out
    assert "b.py:3:5: EQX000 SyntaxError: invalid syntax" in out
    assert "c.py:" + cpython("from \nimport x\n") in out
    assert "d.py" not in out
    with pytest.raises(SyntaxError, match="'return' outside function"):
        compile((folder / "d.py").read_text(), "d.py", "exec")
    _assert_still_checked_the_rest(out, err)


def test_valid_python_that_libcst_cannot_parse_is_a_warning_not_a_syntax_error(
        folder: Path) -> None:
    """`(name): int = 1` is valid (CPython's test_grammar.py has it); libcst 1.9 refuses it."""
    (folder / "grammar.py").write_text(
        "import optax\n(name): int = 1\nstate = optax.adam(1e-3).init(p)\n")
    compile((folder / "grammar.py").read_text(), "grammar.py", "exec")
    code, out, err = _check(folder, ".")
    assert code == 1, out + err
    assert "EQX000" not in out
    assert "eqxlint: warning: grammar.py: eqxlint could not analyse this file: libcst" in err
    _assert_still_checked_the_rest(out, err)


def test_diff_on_an_unparsable_file_says_which_and_why(folder: Path) -> None:
    (folder / "broken.py").write_text("import equinox as eqx\nx = eqx.apply_updates(\n")
    code, out, err = _check(folder, "--diff", ".")
    assert code == 2
    assert "broken.py:2:22: EQX000 SyntaxError: '(' was never closed" in err
    assert "+model = eqx.apply_updates(model, u)" in out


def test_a_file_too_big_to_analyse_is_syntax_checked_and_reported(monkeypatch) -> None:
    """libcst needs gigabytes for a 5 MB list: a file over the limit is not given to it."""
    import eqxlint.parse as parse
    from eqxlint.linter import Settings, lint_bytes
    from eqxlint.rules import all_rules

    monkeypatch.setattr(parse, "MAX_ANALYSED_CHARACTERS", 1000)
    settings = Settings(rules=list(all_rules()))
    big = ("import optax\nstate = optax.adam(1e-3).init(p)\nx = [" + "1, " * 400 + "]\n").encode()
    [finding] = lint_bytes(big, "big.py", settings).diagnostics
    assert (finding.code, finding.location.row) == ("EQX000", 1)
    assert finding.message == f"not analysed: {len(big):,} characters, more than the 1,000 " \
        "eqxlint gives libcst"
    broken = big.replace(b"]\n", b"\n")
    [finding] = lint_bytes(broken, "big.py", settings).diagnostics
    assert finding.message == "SyntaxError: '[' was never closed"  # CPython saw it first
    small = b"import optax\nstate = optax.adam(1e-3).init(p)\n"
    assert lint_bytes(small, "small.py", settings).diagnostics == []


# Refused by every CPython (3.11 to 3.13), parsed by libcst: the literal's escapes or
# bytes are wrong, which libcst does not check. Found by scripts/fuzz_engine.py.
LITERALS_EVERY_PYTHON_REFUSES = [
    "x = 1\ns = 'a\\x0#2'\n",
    "x = 1\ns = b'\u00e9'\n",
    "x = 1\ns = '\\N{NO SUCH NAME}'\n",
    "x = 1\ns = '\\u12'\n",
    "x = 1\ns = f'\\x0{a}'\n",
    "type Block = int\ns = 'a\\x0#2'\n",  # newer syntax elsewhere does not excuse it
]
NEWER_SYNTAX = [
    "type Block = int | None\n",
    "def first[T](xs: list[T]) -> T:\n    return xs[0]\n",
    "class Box[T]:\n    pass\n",
    "x = f'{'a'}'\n",  # PEP 701: the same quotes inside
    "x = f'{\"\\n\".join(a)}'\n",  # a backslash inside
    "x = f'''{a # a comment\n}'''\n",
    "x = f'{a:#x} {f'{b}'}'\n",
    "try:\n    pass\nexcept A, B:\n    pass\n",  # PEP 758 (3.14)
]


@pytest.mark.parametrize("source", LITERALS_EVERY_PYTHON_REFUSES)
def test_a_literal_every_python_refuses_is_eqx000(source: str) -> None:
    """libcst parses these; only CPython decodes the literal. Taking libcst's word for
    "valid in a newer Python" hid the error (no finding at all)."""
    from eqxlint.linter import Settings, lint_bytes
    from eqxlint.rules import all_rules

    with pytest.raises(SyntaxError) as refusal:
        compile(source, "x.py", "exec")
    [finding] = lint_bytes(source.encode(), "x.py", Settings(rules=list(all_rules()))
                           ).diagnostics
    assert (finding.code, finding.location.row) == ("EQX000", refusal.value.lineno)


@pytest.mark.parametrize("source", NEWER_SYNTAX)
def test_newer_syntax_is_analysed_not_eqx000(source: str) -> None:
    from eqxlint.linter import Settings, lint_bytes
    from eqxlint.rules import all_rules

    with pytest.raises(SyntaxError):
        compile(source, "x.py", "exec")  # refused by the Python running the tests
    assert lint_bytes(source.encode(), "x.py", Settings(rules=list(all_rules()))
                      ).diagnostics == []


def test_syntax_of_a_newer_python_is_not_a_syntax_error(tmp_path: Path) -> None:
    """`type X = ...` and PEP 695 generics are valid on 3.12: eqxlint on 3.11 must not call
    them errors (36 files of the corpus use them); a real error stays EQX000."""
    (tmp_path / "new.py").write_text("type Block = int | None\n\n"
                                     "def first[T](xs: list[T]) -> T:\n    return xs[0]\n")
    (tmp_path / "bad.py").write_text("def f(:\n")
    completed = subprocess.run([sys.executable, "-m", "eqxlint", "--no-cache",
                                "--output-format", "concise", "."], cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
    assert "bad.py:1:7: EQX000" in completed.stdout
    assert "new.py" not in completed.stdout
