"""No input crashes the linter: each bad file gets an EQX000 line and the run goes on."""

from __future__ import annotations

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
    assert "broken.py:2:1: EQX000 SyntaxError: " in out
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
