"""Notebooks: cells linted as one module, findings per cell, fixes written into cells only."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from conftest import run_cli
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

SETUP = "%matplotlib inline\nimport equinox as eqx\nimport jax\nimport optax\n!pip list | grep jax"
INIT = ("model = eqx.nn.MLP(2, 1, 32, 2, key=jax.random.PRNGKey(0))\n"
        "optim = optax.adam(1e-3)\n"
        "opt_state = optim.init(model)")
STEP = ("def step(model, updates):\n"
        "    %time x = 1\n"
        "    model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)\n"
        "    return model")
BUILD = "state, net = eqx.nn.make_with_state(Net)(key)\nmodel.layers?"


def _notebook(path: Path, *cells) -> Path:
    notebook = new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.cells = list(cells)
    nbformat.write(notebook, str(path))
    return path


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    return _notebook(
        tmp_path / "train.ipynb",
        new_markdown_cell("# Training"),
        new_code_cell(SETUP),
        new_code_cell(INIT, execution_count=2,
                      outputs=[new_output("stream", name="stdout", text="café ✓\n")]),
        new_markdown_cell("The step"),
        new_code_cell("%%bash\necho not python at all (\n"),
        new_code_cell(STEP),
        new_code_cell(BUILD),
    )


def test_findings_name_the_cell_and_the_row_within_it(notebook: Path) -> None:
    result = run_cli(notebook.name, "--output-format", "concise", cwd=notebook.parent)
    lines = [line for line in result.output.splitlines() if line.startswith("train.ipynb")]
    assert lines == [
        "train.ipynb:cell 3:3:13: EQX102 [*] " + lines[0].split(" [*] ", 1)[1],
        "train.ipynb:cell 6:3:13: EQX101 [*] " + lines[1].split(" [*] ", 1)[1],
        "train.ipynb:cell 7:1:1: EQX301 [*] " + lines[2].split(" [*] ", 1)[1],
    ]
    assert result.exit_code == 1


def test_json_has_the_cell_key(notebook: Path) -> None:
    findings = json.loads(run_cli(notebook.name, "--output-format", "json",
                                  cwd=notebook.parent).output)
    assert [(f["cell"], f["location"]["row"], f["location"]["column"], f["code"])
            for f in findings] == [(3, 3, 13, "EQX102"), (6, 3, 13, "EQX101"),
                                   (7, 1, 1, "EQX301")]
    assert findings[1]["fix"]["edits"][0]["location"] == {"row": 3, "column": 31}


def test_full_format_shows_the_cells_line(notebook: Path) -> None:
    output = run_cli(notebook.name, cwd=notebook.parent).output
    assert "3 |     model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)" in output


def test_noqa_works_per_line(tmp_path: Path) -> None:
    path = _notebook(tmp_path / "n.ipynb", new_code_cell(SETUP),
                     new_code_cell(INIT + "  # noqa: EQX102"))
    assert run_cli(path.name, cwd=tmp_path).exit_code == 0


def test_fix_rewrites_only_the_changed_cells_and_keeps_everything_else(notebook: Path) -> None:
    before = json.loads(notebook.read_text())
    result = run_cli("--fix", notebook.name, cwd=notebook.parent)
    assert "Found 3 errors (3 fixed, 0 remaining)." in result.output
    after = json.loads(notebook.read_text())
    nbformat.validate(nbformat.reads(notebook.read_text(), as_version=4))
    changed = [i for i, (a, b) in enumerate(zip(before["cells"], after["cells"])) if a != b]
    assert changed == [2, 5, 6]
    assert "".join(after["cells"][2]["source"]).endswith(
        "opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))")
    assert after["cells"][2]["outputs"] == before["cells"][2]["outputs"]
    assert after["cells"][2]["execution_count"] == 2
    assert after["metadata"] == before["metadata"]
    step = "".join(after["cells"][5]["source"])
    assert step == STEP.replace("eqx.filter(model, eqx.is_array)", "model")
    assert "    %time x = 1" in step  # the magic came back as it was
    assert "".join(after["cells"][6]["source"]) == BUILD.replace("state, net", "net, state")
    assert run_cli(notebook.name, cwd=notebook.parent).exit_code == 0


def test_unchanged_notebooks_are_not_rewritten(tmp_path: Path) -> None:
    path = _notebook(tmp_path / "clean.ipynb", new_code_cell(SETUP))
    before = path.read_bytes()
    run_cli("--fix", path.name, cwd=tmp_path)
    assert path.read_bytes() == before


def test_a_layout_that_cannot_be_kept_is_not_written(notebook: Path) -> None:
    data = json.loads(notebook.read_text())
    notebook.write_text(json.dumps(data, indent=3, sort_keys=False)[:-1] + "  }\n")
    before = notebook.read_bytes()
    result = run_cli("--fix", notebook.name, cwd=notebook.parent)
    assert "not fixed: its JSON layout cannot be reproduced exactly" in result.output
    assert notebook.read_bytes() == before


def test_a_broken_notebook_is_eqx000(tmp_path: Path) -> None:
    (tmp_path / "broken.ipynb").write_text('{"cells": [')
    (tmp_path / "odd.ipynb").write_text('{"nbformat": 4}')
    result = run_cli(".", "--output-format", "concise", cwd=tmp_path)
    assert result.exit_code == 2
    assert "broken.ipynb:1:1: EQX000 Could not read the notebook: not valid JSON" in result.output
    assert "odd.ipynb:1:1: EQX000 Could not read the notebook: not a notebook" in result.output


def test_folders_include_notebooks(tmp_path: Path, notebook: Path) -> None:
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "train-checkpoint.ipynb").write_text(notebook.read_text())
    findings = json.loads(run_cli(".", "--output-format", "json", cwd=tmp_path).output)
    assert {f["filename"] for f in findings} == {"train.ipynb"}
