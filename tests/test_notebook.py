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
    assert "the fixes were not written: its JSON layout cannot be reproduced exactly" \
        in result.output
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


# -- cells are mapped by positions, never by text a user can type ---------------------

MARKERS = "# eqxlint-cell-boundary 99\n# eqxlint-magic-7\n# eqxlint-cell-boundary 2\n"


def _marker_notebook(path: Path) -> Path:
    return _notebook(
        path,
        new_markdown_cell("# Notes that must survive"),
        new_code_cell(SETUP),
        new_code_cell(MARKERS + INIT, execution_count=3,
                      outputs=[new_output("stream", name="stdout", text="kept\n")]),
        new_code_cell("# eqxlint-cell-boundary 4\nprint(opt_state)"),
    )


def test_comments_like_internal_markers_lose_nothing_on_fix(tmp_path: Path) -> None:
    path = _marker_notebook(tmp_path / "m.ipynb")
    before = json.loads(path.read_text())
    result = run_cli("--fix", path.name, cwd=tmp_path)
    assert "internal error" not in result.output
    assert "Found 1 error (1 fixed, 0 remaining)." in result.output
    nbformat.validate(nbformat.reads(path.read_text(), as_version=4))
    after = json.loads(path.read_text())
    assert after["cells"][0] == before["cells"][0]
    assert after["cells"][1] == before["cells"][1]
    assert after["cells"][3] == before["cells"][3]  # its code did not move anywhere
    assert "".join(after["cells"][2]["source"]) == MARKERS + INIT.replace(
        "optim.init(model)", "optim.init(eqx.filter(model, eqx.is_inexact_array))")
    assert after["cells"][2]["outputs"] == before["cells"][2]["outputs"]
    assert result.exit_code == 0


def test_the_engine_maps_marker_comments_by_position(tmp_path: Path) -> None:
    from eqxlint.linter import Settings, lint_path
    from eqxlint.rules import select_codes

    path = _marker_notebook(tmp_path / "m.ipynb")
    result = lint_path(path, "m.ipynb", Settings(rules=select_codes([], []), fix=True,
                                                 root=tmp_path), write=True)
    assert result.internal_error is None
    assert result.fixed == 1
    nbformat.validate(nbformat.reads(path.read_text(), as_version=4))


def test_an_internal_error_is_never_written(tmp_path: Path) -> None:
    """A rule that breaks on the fixed text: the file stays as it was."""
    from eqxlint.linter import Settings, lint_path
    from eqxlint.rules import rules_by_code

    base = rules_by_code()["EQX102"]

    class BreaksOnSecondLook(base):  # type: ignore[misc, valid-type]
        looks = 0

        @classmethod
        def may_fire(cls, source, look=None):  # type: ignore[no-untyped-def]
            return True  # EQX102's first look rightly skips the fixed (filtered) text

        def check(self, semantics):  # type: ignore[no-untyped-def]
            type(self).looks += 1
            if type(self).looks > 1:
                raise RuntimeError("a bug in a rule")
            yield from super().check(semantics)

    for path in (_marker_notebook(tmp_path / "m.ipynb"), tmp_path / "m.py"):
        if path.suffix == ".py":
            path.write_text("import equinox as eqx\nimport jax\nimport optax\n" + INIT + "\n")
        BreaksOnSecondLook.looks = 0
        before = path.read_bytes()
        result = lint_path(path, path.name, Settings(rules=[BreaksOnSecondLook], fix=True,
                                                     root=tmp_path), write=True)
        assert result.internal_error is not None and "a bug in a rule" in result.internal_error
        assert result.fixed_text is None and result.fixed == 0
        assert path.read_bytes() == before


# -- a layout that cannot be reproduced: nothing written, findings still reported ----

def test_tab_indented_json_keeps_reporting_the_findings(notebook: Path) -> None:
    notebook.write_text(json.dumps(json.loads(notebook.read_text()), indent="\t") + "\n")
    before = notebook.read_bytes()
    result = run_cli("--fix", "--output-format", "concise", notebook.name, cwd=notebook.parent)
    assert notebook.read_bytes() == before
    assert [line.split(":")[1] for line in result.output.splitlines()
            if line.startswith("train.ipynb:")] == ["cell 3", "cell 6", "cell 7"]
    assert "fixes were not written" in result.output
    assert "JSON layout cannot be reproduced" in result.output
    assert result.exit_code == 1


# -- hostile JSON -----------------------------------------------------------------------

def test_deeply_nested_json_is_eqx000_and_the_rest_is_reported(notebook: Path) -> None:
    (notebook.parent / "deep.ipynb").write_text(
        '{"cells": [], "metadata": ' + "[" * 5000 + "]" * 5000 + "}")
    result = run_cli(".", "--output-format", "concise", cwd=notebook.parent)
    assert "deep.ipynb:1:1: EQX000 Could not read the notebook: nested too deeply" \
        in result.output
    assert sum(line.startswith("train.ipynb:cell") for line in result.output.splitlines()) == 3
    assert "Traceback" not in result.output
    assert result.exit_code == 2


# -- lines end only where Python's tokenizer ends them ---------------------------------

ODD = "s = 'a\u2028b\u2029c\x85d\x1ce\x1df\x1eg\x0bh\x0ci'\n"


def test_cells_split_only_at_python_line_breaks(tmp_path: Path) -> None:
    path = _notebook(tmp_path / "odd.ipynb", new_code_cell(SETUP), new_code_cell(ODD + INIT))
    findings = json.loads(run_cli(path.name, "--output-format", "json", cwd=tmp_path).output)
    assert [(f["code"], f["cell"], f["location"]["row"]) for f in findings] == \
        [("EQX102", 2, 4)]
    run_cli("--fix", path.name, cwd=tmp_path)
    source = "".join(json.loads(path.read_text())["cells"][1]["source"])
    assert source.startswith(ODD)


def test_fix_keeps_each_lines_own_ending(tmp_path: Path) -> None:
    cell = (SETUP + "\n" + INIT).replace("\n", "\r\n") + "\r\n"
    path = _notebook(tmp_path / "crlf.ipynb", new_code_cell(cell))
    run_cli("--fix", path.name, cwd=tmp_path)
    source = "".join(json.loads(path.read_text())["cells"][0]["source"])
    assert source == cell.replace("optim.init(model)",
                                  "optim.init(eqx.filter(model, eqx.is_inexact_array))")


# -- IPython syntax only where a statement starts ---------------------------------------

BLACK = ('message = print(\n    "%s and %s"\n    % (1, 2)\n)\nif (1\n    != 2):\n    pass\n'
         'total = 5 \\\n    % 2\n')


def test_black_continuation_lines_are_python(tmp_path: Path) -> None:
    path = _notebook(tmp_path / "black.ipynb", new_code_cell(SETUP),
                     new_code_cell(BLACK + INIT))
    findings = json.loads(run_cli(path.name, "--output-format", "json", cwd=tmp_path).output)
    assert [(f["code"], f["cell"], f["location"]["row"]) for f in findings] == \
        [("EQX102", 2, 12)]


def test_magics_of_every_kind(tmp_path: Path) -> None:
    from eqxlint.notebook import Notebook

    cells = [
        "%load_ext autoreload\n!pip install -q 'jax[cpu]'\nfiles = !ls (\nx = %env HOME\n"
        "obj = 1\nobj?\n??obj\nobj.attr??\n%time y = [1,\n",
        'doc = """\n%s stays a string\n!this too\n"""\n',
        "%%bash\necho ( not python\n",
        "%%time\nimport optax\n",
        "  %%capture\nz = 1\n",
        "pip install -q optax\n", "cd ..\n", "time = 3\n", "run (time)\n",
    ]
    data = nbformat.writes(new_notebook(cells=[new_code_cell(c) for c in cells]))
    notebook = Notebook.parse(data)
    lines = notebook.text.splitlines()
    assert sum(line.strip() == "pass" for line in lines) == 8
    assert lines.count("") == 2  # the `%%time` and `%%capture` lines
    assert '%s stays a string' in lines and '!this too' in lines
    assert "echo ( not python" not in notebook.text
    assert "import optax" in lines and "z = 1" in lines
    assert "pip install -q optax" not in lines and "cd .." not in lines  # automagics, as Ruff
    assert "time = 3" in lines and "run (time)" in lines
    path = tmp_path / "magics.ipynb"
    path.write_text(data)
    assert run_cli(path.name, cwd=tmp_path).exit_code == 0


# -- every location names its cell, syntax errors included ---------------------------

def test_syntax_errors_name_the_cell_and_the_row_in_it(tmp_path: Path) -> None:
    path = _notebook(tmp_path / "bad.ipynb", new_markdown_cell("text"),
                     new_code_cell("import jax\n"), new_code_cell("x = 1\ndef f():"),
                     new_code_cell("    return 1"), new_code_cell("y = (\n"))
    findings = json.loads(run_cli(path.name, "--output-format", "json", cwd=tmp_path).output)
    assert [(f["code"], f["cell"], f["location"]["row"]) for f in findings] == \
        [("EQX000", 3, 2), ("EQX000", 4, 1), ("EQX000", 5, 1)]
    assert all(f["message"].startswith("SyntaxError: ") for f in findings)


# -- `# %%` cell scripts --------------------------------------------------------------

SCRIPT = ("# %%\n%matplotlib inline\n!pip install x\nimport equinox as eqx\nimport jax\n"
          "import optax\n\n# %% [markdown]\n# The model\n\n# %%\n" + INIT + "\n")


def test_percent_scripts_neutralise_their_magics(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_bytes(SCRIPT.replace("\n", "\r\n").encode())
    result = run_cli("train.py", "--output-format", "concise", cwd=tmp_path)
    assert result.output.splitlines()[0].startswith("train.py:14:13: EQX102")
    assert result.exit_code == 1
    run_cli("--fix", "train.py", cwd=tmp_path)
    fixed = (tmp_path / "train.py").read_bytes().decode()
    assert fixed == SCRIPT.replace("optim.init(model)", "optim.init(eqx.filter(model, "
                                   "eqx.is_inexact_array))").replace("\n", "\r\n")


def test_magics_outside_percent_scripts_are_still_syntax_errors(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text(SCRIPT.replace("# %%", "# cell"))
    result = run_cli("plain.py", "--output-format", "concise", cwd=tmp_path)
    assert result.output.startswith("plain.py:") and " EQX000 SyntaxError" in result.output
    assert result.exit_code == 2


# -- structured formats and --diff ------------------------------------------------------

def test_github_annotations_name_the_cell(notebook: Path) -> None:
    output = run_cli(notebook.name, "--output-format", "github", cwd=notebook.parent).output
    first = output.splitlines()[0]
    # As Ruff: the .ipynb's own lines are JSON, so the annotation falls back to 1:1 ...
    assert first.startswith("::error title=eqxlint (EQX102),file=train.ipynb,line=1,col=1,"
                            "endLine=1,endColumn=1::")
    # ... and the message says where in the notebook.
    assert first.split("::", 2)[2].startswith("train.ipynb:cell 3:3:13: EQX102 ")


def test_sarif_names_the_cell(notebook: Path) -> None:
    document = json.loads(run_cli(notebook.name, "--output-format", "sarif",
                                  cwd=notebook.parent).output)
    first = document["runs"][0]["results"][0]
    assert first["locations"][0]["physicalLocation"]["region"] == \
        {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1}
    assert first["message"]["text"].startswith("train.ipynb:cell 3:3:13: ")
    assert first["properties"]["cell"] == 3


def test_diff_shows_the_code_cells(notebook: Path) -> None:
    before = notebook.read_bytes()
    result = run_cli("--diff", notebook.name, cwd=notebook.parent)
    assert notebook.read_bytes() == before
    assert result.exit_code == 1
    diff = result.stdout if hasattr(result, "stdout") else result.output
    assert "--- a/train.ipynb:cell 3\n+++ b/train.ipynb:cell 3\n" in diff
    assert "-opt_state = optim.init(model)\n" in diff
    assert "+opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))\n" in diff
    assert "--- a/train.ipynb:cell 6\n" in diff and "--- a/train.ipynb:cell 7\n" in diff
    assert '"source"' not in diff and "cell 2" not in diff


def test_edits_made_in_cells_equal_edits_made_in_the_joined_text() -> None:
    """The table beside the text tracks every edit: same text as editing it directly."""
    import random

    from eqxlint.diagnostics import Edit, Location
    from eqxlint.linter import LineIndex, apply_edits
    from eqxlint.notebook import Notebook

    generator = random.Random(10)
    sources = ["a = 1\nb = [1,\n     2]\n", "def f(x):\r\n    return x\r\n", "", "c = 'é'",
               "# eqxlint-cell-boundary 1\nd = 4\n"]
    notebook = Notebook.parse(nbformat.writes(new_notebook(
        cells=[new_code_cell(s) for s in sources] + [new_markdown_cell("m")])))
    text = notebook.text
    for _ in range(200):
        lines = LineIndex(text)
        rows = len(lines.starts) - 1
        row = generator.randint(1, rows)
        line = lines.line_text(row)
        start = generator.randint(1, len(line) + 1)
        end = generator.randint(start, len(line) + 1)
        content = generator.choice(["", "x", "(y)\n", "\n    z", "é"])
        edit = Edit(content, Location(row, start), Location(row, end))
        edited = notebook.apply(text, [edit])
        assert edited == apply_edits(text, [edit])
        text = edited
    fixed = json.loads(notebook.with_text(text))
    assert [cell["cell_type"] for cell in fixed["cells"]] == ["code"] * 5 + ["markdown"]
    assert "\r\n" in "".join(fixed["cells"][1]["source"])  # its own endings kept
    rebuilt = Notebook.parse(notebook.with_text(text))
    assert rebuilt.text == text


def test_edits_across_cells_or_into_magics_are_refused() -> None:
    from eqxlint.diagnostics import Diagnostic, Edit, Location
    from eqxlint.notebook import Notebook

    notebook = Notebook.parse(nbformat.writes(new_notebook(cells=[
        new_markdown_cell("m"), new_code_cell("a = 1\n%time b = 2"), new_code_cell("c = 3")])))
    text = notebook.text
    assert text == "a = 1\npass\nc = 3\n"
    assert notebook.apply(text, [Edit("x", Location(1, 1), Location(3, 2))]) is None
    assert notebook.apply(text, [Edit("x", Location(2, 1), Location(2, 5))]) is None
    assert notebook.apply(text, [Edit("x", Location(3, 1), Location(3, 2))]) == \
        "a = 1\npass\nx = 3\n"
    finding = Diagnostic(code="EQX102", message="m", location=Location(3, 5),
                         end_location=Location(3, 6))
    assert notebook.where(text, "n.ipynb", finding) == "n.ipynb:cell 3:1:5"


def test_notebooks_in_other_languages_are_skipped_as_ruff_does(tmp_path: Path) -> None:
    notebook = new_notebook(cells=[new_code_cell("library(ggplot2)\nf <- function(a) { a }")])
    notebook.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    nbformat.write(notebook, str(tmp_path / "r.ipynb"))
    vscode = new_code_cell("SELECT * FROM t", metadata={"vscode": {"languageId": "sql"}})
    nbformat.write(new_notebook(cells=[vscode, new_code_cell(SETUP + "\n" + INIT)]),
                   str(tmp_path / "mixed.ipynb"))
    result = run_cli(".", "--output-format", "concise", cwd=tmp_path)
    assert [line.split(": ")[0] for line in result.output.splitlines()[:-2]] == \
        ["mixed.ipynb:cell 2:8:13"]
