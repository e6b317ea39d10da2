"""Settings per file from the nearest config, with `extend`, overrides and stdin names."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import run_cli

BUGGY = """\
import equinox as eqx
import optax

model = eqx.nn.MLP(2, 1, 32, 2, key=key)
opt_state = optax.adam(1e-3).init(model)
model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)
"""


def _found(cwd: Path, *args: str, input: str | None = None) -> list[tuple[str, str]]:
    result = run_cli(*args, "--output-format", "json", "--no-cache", cwd=cwd, input=input)
    assert result.exit_code in (0, 1), result.output
    return sorted((f["filename"], f["code"]) for f in json.loads(result.stdout))


def _two_projects(root: Path) -> None:
    for name, ignore in (("a", "EQX101"), ("b", "EQX102")):
        (root / name).mkdir()
        (root / name / "pyproject.toml").write_text(f'[tool.eqxlint]\nignore = ["{ignore}"]\n')
        (root / name / "train.py").write_text(BUGGY)


def test_each_file_gets_the_settings_of_its_nearest_config(tmp_path: Path) -> None:
    _two_projects(tmp_path)
    expected = [("a/train.py", "EQX102"), ("b/train.py", "EQX101")]
    assert _found(tmp_path, ".") == expected
    # The same answer whichever files are given together, in whatever order.
    assert _found(tmp_path, "b/train.py", "a/train.py") == expected
    assert _found(tmp_path, "a/train.py") == expected[:1]
    assert _found(tmp_path / "b", "train.py") == [("train.py", "EQX101")]


def test_eqxlint_toml_wins_over_pyproject_in_one_folder(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.eqxlint]\nignore = ["EQX101"]\n')
    (tmp_path / "eqxlint.toml").write_text('ignore = ["EQX102"]\n')
    (tmp_path / "train.py").write_text(BUGGY)
    assert _found(tmp_path, ".") == [("train.py", "EQX101")]
    (tmp_path / ".eqxlint.toml").write_text('select = ["EQX101", "EQX102"]\n')
    assert _found(tmp_path, ".") == [("train.py", "EQX101"), ("train.py", "EQX102")]


def test_a_pyproject_without_our_table_is_passed_over(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.eqxlint]\nignore = ["EQX101"]\n')
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "pyproject.toml").write_text('[project]\nname = "pkg"\n')
    (tmp_path / "pkg" / "train.py").write_text(BUGGY)
    assert _found(tmp_path, ".") == [("pkg/train.py", "EQX102")]


def test_extend_inherits_and_the_extending_file_wins(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(
        'ignore = ["EQX102"]\nper-file-ignores = { "legacy/*" = ["EQX101"] }\n')
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text(
        '[tool.eqxlint]\nextend = "../base.toml"\nextend-select = ["EQX102"]\n')
    (tmp_path / "proj" / "train.py").write_text(BUGGY)
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "old.py").write_text(BUGGY)
    # extend-select in the extending file re-enables what the base ignores.
    assert _found(tmp_path / "proj", ".") == [("train.py", "EQX101"), ("train.py", "EQX102")]
    (tmp_path / "proj" / "pyproject.toml").write_text(
        '[tool.eqxlint]\nextend = "../base.toml"\n')
    assert _found(tmp_path / "proj", ".") == [("train.py", "EQX101")]
    # The base's patterns are relative to the base's folder.
    (tmp_path / "legacy" / "pyproject.toml").write_text(
        '[tool.eqxlint]\nextend = "../base.toml"\n')
    assert _found(tmp_path, "legacy") == []


def test_extend_cycle_and_missing_target_are_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extend = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extend = "a.toml"\n')
    (tmp_path / "t.py").write_text(BUGGY)
    result = run_cli("t.py", "--config", "a.toml", cwd=tmp_path)
    assert result.exit_code == 2 and "cycle" in result.output
    (tmp_path / "pyproject.toml").write_text('[tool.eqxlint]\nextend = "nowhere.toml"\n')
    result = run_cli("t.py", cwd=tmp_path)
    assert result.exit_code == 2 and "not a file" in result.output


def test_config_key_value_overrides(tmp_path: Path) -> None:
    _two_projects(tmp_path)
    assert _found(tmp_path, ".", "--config", 'ignore = ["EQX102"]') == \
        [("b/train.py", "EQX101")]
    # As in Ruff, a later `select` starts the selection again (the file's ignore included).
    assert _found(tmp_path, ".", "--config", 'select = ["EQX101"]') == \
        [("a/train.py", "EQX101"), ("b/train.py", "EQX101")]
    assert _found(tmp_path, ".", "--config", 'per-file-ignores = { "b/*" = ["EQX1"] }') == \
        [("a/train.py", "EQX102")]
    bad = run_cli(".", "--config", "select = [", cwd=tmp_path)
    assert bad.exit_code == 2 and "KEY = VALUE" in bad.output
    unknown = run_cli(".", "--config", "frobnicate = 1", cwd=tmp_path)
    assert unknown.exit_code == 2 and "unknown key" in unknown.output


def test_config_file_replaces_the_search(tmp_path: Path) -> None:
    _two_projects(tmp_path)
    (tmp_path / "strict.toml").write_text('select = ["EQX102"]\n')
    assert _found(tmp_path, ".", "--config", "strict.toml") == \
        [("a/train.py", "EQX102"), ("b/train.py", "EQX102")]


def test_per_file_ignores_are_relative_to_their_config(tmp_path: Path) -> None:
    (tmp_path / "proj" / "tests").mkdir(parents=True)
    (tmp_path / "proj" / "pyproject.toml").write_text(
        '[tool.eqxlint]\nper-file-ignores = { "tests/*" = ["EQX101"] }\n')
    (tmp_path / "proj" / "tests" / "t.py").write_text(BUGGY)
    assert _found(tmp_path, "proj") == [("proj/tests/t.py", "EQX102")]


def test_stdin_resolves_config_and_per_file_ignores_from_its_name(tmp_path: Path) -> None:
    _two_projects(tmp_path)
    (tmp_path / "b" / "pyproject.toml").write_text(
        '[tool.eqxlint]\nper-file-ignores = { "gen_*.py" = ["EQX101"] }\n')
    assert _found(tmp_path, "-", "--stdin-filename", "a/train.py", input=BUGGY) == \
        [("a/train.py", "EQX102")]
    assert _found(tmp_path, "-", "--stdin-filename", "b/gen_x.py", input=BUGGY) == \
        [("b/gen_x.py", "EQX102")]
    assert _found(tmp_path, "-", "--stdin-filename", "b/train.py", input=BUGGY) == \
        [("b/train.py", "EQX101"), ("b/train.py", "EQX102")]


def _git_init(folder: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True, timeout=60)


def test_gitignore_is_respected_by_default(tmp_path: Path) -> None:
    _git_init(tmp_path)
    (tmp_path / ".gitignore").write_text("generated/\n*_out.py\n!keep_out.py\n")
    for name in ("generated/x.py", "a_out.py", "keep_out.py", "src/real.py",
                 "src/deep/b_out.py", "src/local.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(BUGGY)
    (tmp_path / "src" / ".gitignore").write_text("/local.py\n")
    found = {name for name, _ in _found(tmp_path, ".")}
    assert found == {"keep_out.py", "src/real.py"}
    everything = {name for name, _ in _found(tmp_path, ".", "--no-respect-gitignore")}
    assert everything == {"generated/x.py", "a_out.py", "keep_out.py", "src/real.py",
                          "src/deep/b_out.py", "src/local.py"}
    # A file named on the command line is checked (as pre-commit names staged files).
    assert {name for name, _ in _found(tmp_path, "a_out.py")} == {"a_out.py"}


def test_gitignore_outside_a_git_work_tree_is_not_read(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.py\n")
    (tmp_path / "t.py").write_text(BUGGY)
    assert {name for name, _ in _found(tmp_path, ".")} == {"t.py"}
