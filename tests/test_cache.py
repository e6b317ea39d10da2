"""The findings cache: same answers warm as cold, invalidated by content and settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli, run_subprocess

BUGGY = "import equinox as eqx\nmodel = eqx.apply_updates(eqx.filter(model, eqx.is_array), u)\n"
CLEAN = "import equinox as eqx\nmodel = eqx.apply_updates(model, u)\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[tool.eqxlint]\n")
    for index in range(6):
        (tmp_path / f"m{index}.py").write_text(BUGGY if index % 2 else CLEAN)
    return tmp_path


def _json(project: Path, *flags: str) -> list[dict]:
    return json.loads(run_cli(".", "--output-format", "json", *flags, cwd=project).output)


def _entries(project: Path) -> list[Path]:
    return sorted((project / ".eqxlint_cache").rglob("*.json"))


def test_warm_run_gives_the_cold_answers(project: Path) -> None:
    cold = _json(project)
    assert len(_entries(project)) == 6
    assert (project / ".eqxlint_cache" / ".gitignore").read_text().endswith("*\n")
    stamps = [entry.stat().st_mtime_ns for entry in _entries(project)]
    assert _json(project) == cold
    assert [entry.stat().st_mtime_ns for entry in _entries(project)] == stamps  # only read
    full = run_cli(".", cwd=project).output
    assert "model = eqx.apply_updates(eqx.filter(model, eqx.is_array), u)" in full


def test_a_changed_file_is_checked_again(project: Path) -> None:
    assert len(_json(project)) == 3
    (project / "m0.py").write_text(BUGGY)
    assert len(_json(project)) == 4
    (project / "m1.py").write_text(CLEAN)
    assert len(_json(project)) == 3


def test_other_settings_are_other_entries(project: Path) -> None:
    assert len(_json(project)) == 3
    assert _json(project, "--ignore", "EQX101") == []
    (project / "pyproject.toml").write_text('[tool.eqxlint]\nper-file-ignores = {"m1.py" = ["EQX101"]}\n')
    assert len(_json(project)) == 2


def test_no_cache_neither_reads_nor_writes(project: Path) -> None:
    _json(project, "--no-cache")
    assert not (project / ".eqxlint_cache").exists()


def test_a_damaged_entry_is_a_miss(project: Path) -> None:
    cold = _json(project)
    for entry in _entries(project):
        entry.write_text("{not json")
    assert _json(project) == cold


def test_fix_does_not_trust_the_cache(project: Path) -> None:
    _json(project)
    assert run_cli("--fix", ".", cwd=project).exit_code == 0
    assert (project / "m1.py").read_text() == CLEAN


def test_concurrent_runs_agree(project: Path) -> None:
    for index in range(6, 40):
        (project / f"m{index}.py").write_text(BUGGY if index % 2 else CLEAN)
    command = [sys.executable, "-m", "eqxlint", ".", "--output-format", "json", "--jobs", "2"]
    runs = [subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE) for _ in range(3)]
    outputs = [json.loads(run.communicate(timeout=300)[0]) for run in runs]
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(outputs[0]) == 20
    assert not [p for p in (project / ".eqxlint_cache").rglob("*.tmp")]


def test_a_cached_run_does_not_import_libcst(project: Path) -> None:
    run_subprocess(".", cwd=project)  # fill the cache
    code = ("import sys, eqxlint.cli\n"
            "try:\n    eqxlint.cli.main(['.', '--jobs', '1'])\n"
            "except SystemExit:\n    pass\n"
            "print('LIBCST', 'libcst' in sys.modules)\n")
    completed = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                               text=True, timeout=120)
    assert "LIBCST False" in completed.stdout, completed.stdout + completed.stderr


def _damage_every_entry(project: Path, body: bytes, checksum: bool) -> None:
    import hashlib

    for entry in _entries(project):
        prefix = hashlib.sha256(body).hexdigest().encode() + b"\n" if checksum else b""
        entry.write_bytes(prefix + body)


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,  # deeply nested: RecursionError in json
    b"{}",  # not a list: must not read as "no findings"
    b"[]",  # a valid-looking empty list, without the right checksum
    b'[{"code": 1, "message": [], "hint": null, "filename": 2, "location": "x", '
    b'"end_location": [1], "fix": {"edits": 3}, "cell": "a", "noqa_row": [], '
    b'"source_line": 4}]',  # every field of the wrong type
    b'[{"code": "EQX101"',  # truncated
])
def test_damaged_entries_are_misses(project: Path, body: bytes) -> None:
    """Whatever an entry holds, the answers are the cold ones, in every format; with a
    right checksum too, except for `[]`, which is a true entry for a clean file."""
    cold = _json(project)
    for checksum in (False, True) if body != b"[]" else (False,):
        _damage_every_entry(project, body, checksum)
        assert _json(project) == cold
        _damage_every_entry(project, body, checksum)
        for output_format in ("full", "sarif"):
            result = run_cli(".", "--output-format", output_format, cwd=project)
            assert result.exit_code == 1 and "Traceback" not in result.output


def test_a_fifo_in_place_of_an_entry_is_a_miss(project: Path) -> None:
    import os

    cold = _json(project)
    for entry in _entries(project):
        entry.unlink()
        os.mkfifo(entry)
    completed = run_subprocess(".", "--output-format", "json", cwd=project)
    assert json.loads(completed.stdout) == cold


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'{"listings": 1, "stamps": {}, "digests": {}}',
    b'{"listings": {}, "stamps": {}, "digests": {"no separator": "x"}}',
    b"[" * 100_000 + b"]" * 100_000,
])
def test_a_damaged_project_layout_record_is_ignored(project: Path, body: bytes) -> None:
    """The record of what the last run saw of the project (the dependency digests'
    shortcut) is trusted only whole and checked: anything else is recomputed."""
    import hashlib

    (project / "helper.py").write_text("import equinox as eqx\n")
    (project / "m0.py").write_text("from helper import eqx\n" + BUGGY)
    cold = _json(project)
    records = list((project / ".eqxlint_cache").rglob("project-layout"))
    assert records
    for checksum in (False, True):
        records[0].write_bytes((hashlib.sha256(body).hexdigest().encode() + b"\n" if checksum
                                else b"") + body)
        assert _json(project) == cold
    (project / "helper.py").write_text("import equinox as eqx\n\n")
    assert _json(project) == cold
