"""Rules wave 4 beyond their own examples: the programs they flag really misbehave, and what
needs the CLI, several files or the text pre-filter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import run_cli

from eqxlint.rules.eqx501_dropout_active_at_eval import DropoutActiveAtEval
from eqxlint.rules.eqx503_update_discarded import UpdateDiscarded


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _findings(path: Path, code: str, cwd: Path | None = None) -> list[dict]:
    result = run_cli(str(path), "--no-cache", "--select", code, "--output-format", "json",
                     cwd=cwd)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output)


def _run(path: Path) -> str:
    """Run a training program with the real jax/equinox/optax; warnings are errors."""
    completed = subprocess.run([sys.executable, "-W", "error", str(path)], capture_output=True,
                               text=True, timeout=600, cwd=path.parent)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


DROPPED_MODEL = '''
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (32, 4))
    y = x.sum(-1, keepdims=True)
    model = eqx.nn.MLP(4, 1, 16, 2, key=key)
    optim = optax.adam(1e-2)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))


    def loss_fn(model, x, y):
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)


    @eqx.filter_jit
    def train_step(model, opt_state, x, y):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        model = eqx.apply_updates(model, updates)
        return loss


    for step in range(4):
        print(float(train_step(model, opt_state, x, y)))
'''


def test_eqx503_the_step_it_flags_really_trains_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.py", DROPPED_MODEL)
    losses = _run(path).split()
    assert len(losses) == 4 and len(set(losses)) == 1  # silent: the same loss every step
    found = _findings(path, "EQX503")
    assert [(f["location"]["row"], f["code"]) for f in found] == [(21, "EQX503"), (22, "EQX503")]
    fixed = _write(tmp_path / "fixed.py", DROPPED_MODEL.replace(
        "        return loss\n", "        return model, opt_state, loss\n").replace(
        "        print(float(train_step(model, opt_state, x, y)))",
        "        model, opt_state, loss = train_step(model, opt_state, x, y)\n"
        "        print(float(loss))"))
    assert len(set(_run(fixed).split())) == 4  # it trains once the results are kept
    assert _findings(fixed, "EQX503") == []


DROPPED_STATE = '''
    import equinox as eqx
    import jax
    import jax.numpy as jnp


    class Net(eqx.Module):
        linear: eqx.nn.Linear
        norm: eqx.nn.BatchNorm

        def __init__(self, key):
            self.linear = eqx.nn.Linear(4, 4, key=key)
            self.norm = eqx.nn.BatchNorm(4, axis_name="batch", mode="ema")

        def __call__(self, x, state):
            x, state = self.norm(self.linear(x), state)
            return x.sum(), state
'''

DROPPED_STATE_TRAIN = '''
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from net import Net


    def loss_fn(model, state, x, y):
        batched = jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
        pred, _ = batched(x, state)
        return jnp.mean((pred - y) ** 2)


    @eqx.filter_jit
    def step(model, state, x, y):
        grads = eqx.filter_grad(loss_fn)(model, state, x, y)
        return eqx.apply_updates(model, jax.tree.map(lambda g: -0.01 * g, grads)), state


    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (32, 4))
    y = x.sum(-1)
    model, state = eqx.nn.make_with_state(Net)(key)
    initial = state
    for _ in range(3):
        model, state = step(model, state, x, y)
    print(eqx.tree_equal(state, initial))
'''


def test_eqx503_a_stateful_class_of_another_file_loses_its_statistics(tmp_path: Path) -> None:
    """The class lives in net.py; the loss that drops its state in train.py."""
    _write(tmp_path / "net.py", DROPPED_STATE)
    train = _write(tmp_path / "train.py", DROPPED_STATE_TRAIN)
    assert _run(train).strip() == "True"  # after three steps, the statistics never moved
    found = _findings(train, "EQX503", cwd=tmp_path)
    assert [(f["location"]["row"], f["code"]) for f in found] == [(10, "EQX503")]
    assert "holds an `eqx.nn.BatchNorm`" in found[0]["message"]


def test_eqx503_a_class_that_returns_the_state_unchanged_is_quiet(tmp_path: Path) -> None:
    """A `__call__` that hands back the state it was given makes no new state to lose."""
    _write(tmp_path / "net.py", DROPPED_STATE.replace(
        "x, state = self.norm(self.linear(x), state)", "x = self.linear(x)"))
    train = _write(tmp_path / "train.py", DROPPED_STATE_TRAIN)
    assert _findings(train, "EQX503", cwd=tmp_path) == []


def test_eqx503_first_look_needs_a_statement_that_drops_a_new_value() -> None:
    step = b"def step(model, opt_state, grads):\n%s\n    return model\n\nfor g in gs:\n    step(m, s, g)\n"
    dropped = b"    new = eqx.apply_updates(model, grads)"
    assert UpdateDiscarded.may_fire(b"import equinox as eqx\n" + step % dropped)
    assert UpdateDiscarded.may_fire(b"from equinox import apply_updates as au\n"
                                    + step % b"    new = au(model, grads)")
    assert not UpdateDiscarded.may_fire(b"import equinox as eqx\n" + step % (
        dropped + b"\n    print(new)"))  # read afterwards
    assert not UpdateDiscarded.may_fire(step % dropped)  # `eqx` is imported from nowhere
    assert UpdateDiscarded.may_fire(b"import equinox as eqx\neqx.apply_updates(model, u)\n")
    optax_step = step % b"    updates, new_state = optim . update (grads, opt_state)"
    assert UpdateDiscarded.may_fire(b"import optax\noptim = optax.adam(0.1)\n" + optax_step)
    assert UpdateDiscarded.may_fire(  # the optimizer may be built in a module of the project
        b"from .optim import make\noptim = make()\n" + optax_step)
    assert not UpdateDiscarded.may_fire(b"import optax\noptim = {}\n" + optax_step)
    assert not UpdateDiscarded.may_fire(b"config.update(lr=0.1)\nsettings.update(x)\n")
    assert not UpdateDiscarded.may_fire(
        b"import optax, jax\njax.config.update('jax_enable_x64', True)\nd = {}\nd.update(a=1)\n")
    assert not UpdateDiscarded.may_fire(b"y, _ = model(x, state)\nreturn loss\n")
    assert not UpdateDiscarded.may_fire(b"def update_rule(x):\n    return x\n")


def test_eqx501_prefilter() -> None:
    assert not DropoutActiveAtEval.may_fire(b"batched = jax.vmap(model)\nbatched(x)\n")
    assert DropoutActiveAtEval.may_fire(
        b"batched = jax.vmap(model)\nmodel = eqx.nn.inference_mode(model)\nbatched(x)\n")
    assert not DropoutActiveAtEval.may_fire(  # switched under another name
        b"batched = jax.vmap(model)\ninf = eqx.nn.inference_mode(model)\nbatched(x)\n")
    assert DropoutActiveAtEval.may_fire(b"drop = eqx.nn.Dropout(0.5)\ndef evaluate(m, k):\n")
    assert not DropoutActiveAtEval.may_fire(b"drop = eqx.nn.Dropout(0.5)\ndef train(m, k):\n")


EVAL_WITH_DROPOUT = '''
    import equinox as eqx
    import jax
    import jax.numpy as jnp


    class Net(eqx.Module):
        linear: eqx.nn.Linear
        dropout: eqx.nn.Dropout

        def __init__(self, key):
            self.linear = eqx.nn.Linear(8, 2, key=key)
            self.dropout = eqx.nn.Dropout(0.5)

        def __call__(self, x, key):
            return self.linear(self.dropout(x, key=key))


    def loss_fn(model, x, key):
        return jnp.mean(jax.vmap(model, in_axes=(0, None))(x, key) ** 2)


    def evaluate(model, x, key):
        return loss_fn(model, x, key)


    model = Net(jax.random.key(0))
    x = jnp.ones((16, 8))
    batched = jax.vmap(model, in_axes=(0, None))
    print(float(evaluate(model, x, jax.random.key(1))), float(evaluate(model, x, jax.random.key(2))))
    model = eqx.nn.inference_mode(model)
    a, b = batched(x, jax.random.key(1)), batched(x, jax.random.key(2))
    print(bool(jnp.allclose(a, b)))
'''


def test_eqx501_what_it_flags_really_evaluates_with_dropout_on(tmp_path: Path) -> None:
    """The stale `jax.vmap` after the switch, run for real: two keys, two answers."""
    path = _write(tmp_path / "evaluate.py", EVAL_WITH_DROPOUT)
    first, second = _run(path).splitlines()
    assert len(set(first.split())) == 2  # the evaluation loss depends on the key
    assert second == "False"  # the vmap built before the switch still drops units
    found = _findings(path, "EQX501")
    assert [(f["location"]["row"], f["code"]) for f in found] == [(31, "EQX501")]
    assert "was built by `jax.vmap(model, ...)` before" in found[0]["message"]
    # The evaluation function's check stays quiet here: the file switches to inference.
    alone = _write(tmp_path / "alone.py", EVAL_WITH_DROPOUT.split("    model = eqx.nn")[0]
                   + "    print(evaluate(Net(jax.random.key(0)), jnp.ones((2, 8)), "
                     "jax.random.key(1)))\n")
    found = _findings(alone, "EQX501")
    assert [(f["location"]["row"], f["code"]) for f in found] == [(23, "EQX501")]
    assert "`Net.dropout` is an `eqx.nn.Dropout` in training mode" in found[0]["message"]
