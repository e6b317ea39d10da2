"""Rules wave 3 beyond their own examples: what needs a notebook, a real file or the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from conftest import run_cli
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from eqxlint.notebook import Notebook


def _notebook(path: Path, *cells) -> Path:
    notebook = new_notebook()
    notebook.cells = list(cells)
    nbformat.write(notebook, str(path))
    return path


def _findings(path: Path, code: str) -> list[dict]:
    result = run_cli(str(path), "--no-cache", "--select", code, "--output-format", "json")
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output)


def test_cell_starts_name_each_code_cell_and_its_number() -> None:
    text = nbformat.writes(_cells_of(new_markdown_cell("# a"), new_code_cell("x = 1\ny = 2"),
                                     new_code_cell("z = 3")))
    notebook = Notebook.parse(text)
    rows = notebook.text.splitlines()
    starts = notebook.cell_starts()
    assert [number for _, number in starts] == [2, 3]
    assert [rows[row - 1] for row, _ in starts] == ["x = 1", "z = 3"]


def _cells_of(*cells):
    notebook = new_notebook()
    notebook.cells = list(cells)
    return notebook


TUTORIAL_FIRST = "import jax.random as jr\n\nkey = jr.PRNGKey(5678)\njr.uniform(key)"
TUTORIAL_AGAIN = "jr.uniform(key)"


def test_eqx502_each_notebook_cell_is_its_own_block(tmp_path: Path) -> None:
    """The tutorial that shows 'the same key gives the same number' (real notebook shape)."""
    path = _notebook(tmp_path / "keys.ipynb",
                     new_code_cell(TUTORIAL_FIRST),
                     new_markdown_cell("If we call a random generator a second time with the "
                                       "same key, it returns the same result."),
                     new_code_cell(TUTORIAL_AGAIN),
                     new_code_cell(TUTORIAL_AGAIN))
    assert _findings(path, "EQX502") == []


def test_eqx502_still_reports_reuse_inside_one_cell(tmp_path: Path) -> None:
    path = _notebook(tmp_path / "keys.ipynb",
                     new_markdown_cell("# Keys"),
                     new_code_cell(TUTORIAL_FIRST + "\n" + TUTORIAL_AGAIN))
    found = _findings(path, "EQX502")
    assert [(f["cell"], f["location"]["row"]) for f in found] == [(2, 5)]
    assert "drawn from one key `key`" in found[0]["message"]


def test_eqx502_the_same_text_as_a_script_is_reported(tmp_path: Path) -> None:
    """Without cells, the two draws are one block: the quiet notebook is quiet for its cells."""
    path = tmp_path / "keys.py"
    path.write_text(TUTORIAL_FIRST + "\n\n" + TUTORIAL_AGAIN + "\n")
    assert [f["location"]["row"] for f in _findings(path, "EQX502")] == [6]


# -- EQX402 at runtime: real models built here ---------------------------------


def _tied_models():
    import equinox as eqx
    import jax
    import jax.random as jr

    class Tied(eqx.Module):
        encoder: eqx.nn.Linear
        decoder: eqx.nn.Linear

        def __init__(self, key):
            layer = eqx.nn.Linear(4, 4, key=key)
            self.encoder = layer
            self.decoder = layer

    class Shared(eqx.Module):
        shared: eqx.nn.Shared

        def __init__(self, key):
            k1, k2 = jr.split(key)
            pair = (eqx.nn.Linear(4, 4, key=k1), eqx.nn.Linear(4, 4, key=k2))
            self.shared = eqx.nn.Shared(pair, lambda p: p[1].weight, lambda p: p[0].weight)

    class Pools(eqx.Module):
        pools: list

        def __init__(self):
            pool = eqx.nn.MaxPool2d(2)
            self.pools = [pool, pool]

    key = jr.PRNGKey(0)
    return Tied(key), Shared(key), Pools(), jax


def test_eqx402_runtime_reports_one_module_at_two_paths() -> None:
    from eqxlint import check_model

    tied, shared, pools, _ = _tied_models()
    found = [d for d in check_model(tied) if d.code == "EQX402"]
    assert [d.path for d in found] == ["model.decoder"]
    assert "same `Linear` object as `model.encoder`" in found[0].message
    assert [d for d in check_model(shared) if d.code == "EQX402"] == []
    assert [d for d in check_model(pools) if d.code == "EQX402"] == []


def test_eqx402_the_copies_really_drift_apart() -> None:
    """The rule's claim, measured: one SGD step and the two 'tied' weights differ."""
    import equinox as eqx
    import jax.numpy as jnp
    import optax

    tied, _, _, jax = _tied_models()
    optim = optax.sgd(0.1)
    params = eqx.filter(tied, eqx.is_inexact_array)
    opt_state = optim.init(params)
    x = jnp.arange(4.0)
    grads = eqx.filter_grad(lambda m: jnp.sum(m.decoder(jax.nn.relu(m.encoder(x))) ** 2))(tied)
    updates, _ = optim.update(grads, opt_state)
    stepped = eqx.apply_updates(tied, updates)
    assert not jnp.array_equal(stepped.encoder.weight, stepped.decoder.weight)


# -- EQX106 at runtime: real optax optimizers ----------------------------------


def test_eqx106_runtime_reports_an_optimizer_that_cannot_take_the_module() -> None:
    import equinox as eqx
    import jax
    import optax

    from eqxlint import check_model

    model = eqx.nn.MLP(2, 1, 8, 2, key=jax.random.PRNGKey(0))
    multi = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=2)
    found = [d for d in check_model(model, optim=multi) if d.code == "EQX106"]
    assert [d.path for d in found] == ["model"]
    assert "not a valid JAX type" in found[0].message
    assert [d for d in check_model(model, optim=optax.adamw(1e-3)) if d.code == "EQX106"] == []
    linear = eqx.nn.Linear(2, 2, key=jax.random.PRNGKey(0))
    assert [d for d in check_model(linear, optim=multi) if d.code == "EQX106"] == []
