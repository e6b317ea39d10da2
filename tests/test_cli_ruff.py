"""Ruff's habits: `check`, exit codes, report flags, colour, formats and fix markers."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import run_cli, run_subprocess

BUGGY = """\
import equinox as eqx
import optax

model = eqx.nn.MLP(2, 1, 32, 2, key=key)
opt_state = optax.adam(1e-3).init(model)
model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)
"""
UNSAFE_ONLY = """\
import equinox as eqx
import optax

optim = optax.adamw(1e-3)

def step(model, opt_state, x):
    grads = eqx.filter_grad(loss)(model, x)
    updates, opt_state = optim.update(grads, opt_state)
    return eqx.apply_updates(model, updates), opt_state
"""
BROKEN = "import optax\nopt = optax.adam(1e-3).init(\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(BUGGY)
    return tmp_path


def test_check_subcommand_is_the_same_command(project: Path) -> None:
    plain = run_cli("src", "--output-format", "concise", "--no-cache", cwd=project)
    check = run_cli("check", "src", "--output-format", "concise", "--no-cache", cwd=project)
    assert check.exit_code == plain.exit_code == 1
    assert check.output == plain.output
    assert "No such file" not in check.output
    assert run_cli("check", "--no-cache", cwd=project / "src").exit_code == 1


def test_exit_zero_covers_every_code_including_eqx000(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(BROKEN)
    assert run_cli("broken.py", "--no-cache", cwd=tmp_path).exit_code == 2
    result = run_cli("broken.py", "--exit-zero", "--no-cache", cwd=tmp_path)
    assert result.exit_code == 0 and "EQX000" in result.output
    assert run_cli("missing.py", "--exit-zero", cwd=tmp_path).exit_code == 0
    assert run_cli("--exit-zero", "--select", "NOPE", cwd=tmp_path).exit_code == 2


def test_exit_non_zero_on_fix(project: Path) -> None:
    result = run_cli("src", "--fix", "--no-cache", cwd=project)
    assert result.exit_code == 0
    (project / "src" / "train.py").write_text(BUGGY)
    result = run_cli("src", "--fix", "--exit-non-zero-on-fix", "--no-cache", cwd=project)
    assert result.exit_code == 1 and "(2 fixed, 0 remaining)" in result.output


def test_show_fixes_lists_what_was_fixed(project: Path) -> None:
    result = run_cli("src", "--fix", "--show-fixes", "--no-cache", cwd=project)
    assert "Fixed 2 errors:\n- src/train.py:\n" in result.output
    assert "    1 × EQX101 (apply-updates-to-filtered-model)" in result.output
    assert "    1 × EQX102 (unfiltered-optimizer-init)" in result.output
    (project / "src" / "train.py").write_text(BUGGY)
    preview = run_cli("src", "--show-fixes", "--no-cache", cwd=project).output
    assert "ℹ Safe fix" in preview
    assert "6 |+model = eqx.apply_updates(model, updates)" in preview


def test_show_files_and_show_settings(project: Path) -> None:
    (project / "src" / "notes.txt").write_text("not python")
    files = run_cli("--show-files", cwd=project)
    assert files.exit_code == 0
    assert files.output.splitlines() == [str(project / "src" / "train.py")]
    (project / "pyproject.toml").write_text('[tool.eqxlint]\nignore = ["EQX102"]\n')
    shown = run_cli("--show-settings", "src", cwd=project)
    assert shown.exit_code == 0
    assert "Resolved settings for: 'src/train.py'" in shown.output
    assert f"Settings path: {project / 'pyproject.toml'}" in shown.output
    assert '"EQX101"' in shown.output and '"EQX102"' not in shown.output


def test_quiet_silent_and_output_file(project: Path) -> None:
    quiet = run_cli("src", "-q", "--output-format", "concise", "--no-cache", cwd=project)
    assert quiet.exit_code == 1
    assert "Found" not in quiet.output and "src/train.py:6:9: EQX101" in quiet.output
    silent = run_cli("src", "--silent", "--no-cache", cwd=project)
    assert silent.exit_code == 1 and silent.output == ""
    out = project / "report.json"
    written = run_cli("src", "--output-format", "json", "--output-file", str(out), "--no-cache",
                      cwd=project)
    assert written.exit_code == 1 and written.stdout == ""
    assert [f["code"] for f in json.loads(out.read_text())] == ["EQX102", "EQX101"]


def test_extend_per_file_ignores_flag(project: Path) -> None:
    result = run_cli("src", "--output-format", "json", "--extend-per-file-ignores",
                     "src/*:EQX101", "--no-cache", cwd=project)
    assert [f["code"] for f in json.loads(result.stdout)] == ["EQX102"]
    bad = run_cli("src", "--extend-per-file-ignores", "nocolon", cwd=project)
    assert bad.exit_code == 2


def test_colour_only_when_asked_or_on_a_terminal(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    piped = run_subprocess("src", "--no-cache", cwd=project, env=env)
    assert b"\x1b[" not in piped.stdout  # not a terminal: no colour
    forced = run_subprocess("src", "--no-cache", cwd=project, env={**env, "FORCE_COLOR": "1"})
    assert b"\x1b[" in forced.stdout and b"EQX101" in forced.stdout
    for off in ({"NO_COLOR": "1"}, {}):
        flags = ["--no-color"] if not off else []
        plain = run_subprocess("src", "--no-cache", *flags, cwd=project,
                               env={**env, "FORCE_COLOR": "1", **off})
        assert b"\x1b[" not in plain.stdout


def test_statistics_honours_json(project: Path) -> None:
    text = run_cli("src", "--statistics", "--no-cache", cwd=project).output
    assert "    1\tEQX101\t[*] apply-updates-to-filtered-model" in text
    data = json.loads(run_cli("src", "--statistics", "--output-format", "json", "--no-cache",
                              cwd=project).stdout)
    assert data == [
        {"code": "EQX101", "name": "apply-updates-to-filtered-model", "count": 1,
         "fixable": True},
        {"code": "EQX102", "name": "unfiltered-optimizer-init", "count": 1, "fixable": True},
    ]


def test_json_has_name_and_severity(project: Path) -> None:
    findings = json.loads(run_cli("src", "--output-format", "json", "--no-cache",
                                  cwd=project).stdout)
    assert findings[1]["name"] == "apply-updates-to-filtered-model"
    assert {f["severity"] for f in findings} == {"error"}


def test_pylint_format(project: Path) -> None:
    out = run_cli("src", "--output-format", "pylint", "--no-cache", cwd=project).stdout
    assert out.splitlines()[1].startswith("src/train.py:6: [EQX101] `eqx.apply_updates` is")


def test_gitlab_format(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_PROJECT_DIR", str(project))
    data = json.loads(run_cli("train.py", "--output-format", "gitlab", "--no-cache",
                              cwd=project / "src").stdout)
    assert data[1]["check_name"] == "EQX101"
    assert data[1]["description"].startswith("EQX101: `eqx.apply_updates`")
    assert data[1]["location"] == {"lines": {"begin": 6, "end": 6}, "path": "src/train.py"}
    assert data[1]["severity"] == "major"
    assert len({f["fingerprint"] for f in data}) == 2


def test_junit_format(project: Path) -> None:
    out = run_cli("src", "--output-format", "junit", "--no-cache", cwd=project).stdout
    root = ET.fromstring(out)
    assert root.tag == "testsuites" and root.get("tests") == "2" and root.get("failures") == "2"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "src/train.py"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["org.eqxlint.EQX102", "org.eqxlint.EQX101"]
    assert cases[1].get("classname") == "src/train" and cases[1].get("line") == "6"
    failure = cases[1].find("failure")
    assert failure is not None and failure.text.startswith("line 6, col 9, `eqx.apply_updates`")
    clean = run_cli("src", "--output-format", "junit", "--select", "EQX502", "--no-cache",
                    cwd=project).stdout
    assert ET.fromstring(clean).get("failures") == "0"


def test_star_marks_only_fixes_that_fix_would_apply(tmp_path: Path) -> None:
    (tmp_path / "step.py").write_text(UNSAFE_ONLY)
    plain = run_cli("step.py", "--output-format", "concise", "--no-cache", cwd=tmp_path).output
    assert "EQX103 [*]" not in plain and "EQX103 " in plain
    assert "No fixes available (1 hidden fix can be enabled with the `--unsafe-fixes` " \
           "option)." in plain
    unsafe = run_cli("step.py", "--output-format", "concise", "--unsafe-fixes", "--no-cache",
                     cwd=tmp_path).output
    assert "EQX103 [*]" in unsafe and "[*] 1 fixable with the `--fix` option." in unsafe
    (tmp_path / "both.py").write_text(UNSAFE_ONLY + BUGGY.split("\n", 2)[2])
    both = run_cli("both.py", "--no-cache", cwd=tmp_path).output
    assert "[*] 2 fixable with the `--fix` option (1 hidden fix can be enabled with the " \
           "`--unsafe-fixes` option)." in both
