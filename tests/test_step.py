"""check_step / assert_step: a dry run of real training steps on real equinox/optax models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest
from conftest import REPO

from eqxlint import TrainabilityError, assert_step, check_step

KEY = jax.random.PRNGKey(0)
X = jnp.linspace(-1.0, 1.0, 16).reshape(8, 2)
Y = jnp.sum(X, axis=1, keepdims=True)


def _codes_and_paths(diagnostics) -> list[tuple[str, Any]]:
    return [(d.code, d.path) for d in diagnostics]


def _mlp() -> eqx.nn.MLP:
    return eqx.nn.MLP(2, 1, 8, 1, key=KEY)


def _loss(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def _params(model):
    return eqx.filter(model, eqx.is_inexact_array)


# -- the README demo's own steps ----------------------------------------------------------


def _demo(name: str, optim) -> dict:
    """The demo script's definitions (everything above its training loop), run for real."""
    path = REPO / "examples" / name
    source = path.read_text()
    head = source[:source.index("\nmodel_key")]
    namespace: dict = {"__name__": f"demo_{Path(name).stem}"}
    exec(compile(head, str(path), "exec"), namespace)
    namespace["optim"] = optim  # the step reads the optimizer from the script's globals
    return namespace


@pytest.mark.parametrize("name, expected", [
    ("train_buggy.py", [("EQX101", "model.encoder.activation"),
                        ("EQX101", "model.encoder.final_activation"),
                        ("EQX101", "model.norm.axis_name"),
                        ("EQX101", "model.norm.inference")]),
    ("train_fixed.py", []),
])
def test_the_demo_steps(name: str, expected: list) -> None:
    optim = optax.adam(1e-2)
    demo = _demo(name, optim)
    model, state = eqx.nn.make_with_state(demo["Regressor"])(KEY)
    opt_state = optim.init(_params(model))
    x = jnp.linspace(-3.0, 3.0, 64)[:, None]
    found = check_step(demo["train_step"], model, state, opt_state, x, jnp.sin(x))
    assert _codes_and_paths(found) == expected
    if expected:
        assert "is a function in the model the step was given and None in the model it " \
               "returns" in found[0].message
        assert found[0].hint.startswith("Update the unfiltered model: "
                                        "`model = eqx.apply_updates(model, updates)`")


# -- each mistake, built for real ---------------------------------------------------------


def test_eqx103_update_without_params_names_the_line() -> None:
    optim = optax.adamw(1e-3)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        grads = eqx.filter_grad(_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state)  # the mistake
        return eqx.apply_updates(model, updates), opt_state

    model = _mlp()
    found = check_step(step, model, optim.init(_params(model)), X, Y)
    assert [d.code for d in found] == ["EQX103"]
    assert found[0].filename == __file__
    assert found[0].source_line.strip() == "updates, opt_state = optim.update(grads, opt_state)  # the mistake"
    assert "calls `update` without `params`" in found[0].message
    assert "eqx.filter(model, eqx.is_inexact_array)" in found[0].hint


def test_eqx106_multisteps_given_the_model_as_params() -> None:
    optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        grads = eqx.filter_grad(_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state, model)
        return eqx.apply_updates(model, updates), opt_state

    model = _mlp()
    found = check_step(step, model, optim.init(_params(model)), X, Y)
    assert [d.code for d in found] == ["EQX106"]
    assert "passes the whole model as `params`" in found[0].message
    assert "is not a valid JAX type" in found[0].message
    assert found[0].url.endswith("/rules/EQX106.md")


def test_eqx102_a_python_float_kept_in_the_optimizer_state() -> None:
    class Tempered(eqx.Module):
        mlp: eqx.nn.MLP
        temperature: float = 0.5

        def __call__(self, x):
            return self.mlp(x) / self.temperature

    optim = optax.adam(1e-3)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        grads = eqx.filter_grad(_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state, _params(model))
        return eqx.apply_updates(model, updates), opt_state

    model = Tempered(_mlp())
    opt_state = optim.init(eqx.filter(model, lambda leaf: not callable(leaf)))
    found = check_step(step, model, opt_state, X, Y)
    assert _codes_and_paths(found) == [("EQX102", "model.temperature")]


def test_eqx503_the_step_returns_the_old_model() -> None:
    optim = optax.adam(1e-3)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        grads = eqx.filter_grad(_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state, _params(model))
        new_model = eqx.apply_updates(model, updates)  # noqa: F841 - computed, then dropped
        return model, opt_state

    model = _mlp()
    found = check_step(step, model, optim.init(_params(model)), X, Y)
    assert _codes_and_paths(found) == [("EQX503", "model")]
    assert "nothing trains" in found[0].message


def test_eqx503_the_step_returns_the_old_optimizer_state() -> None:
    optim = optax.adam(1e-3)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        grads = eqx.filter_grad(_loss)(model, x, y)
        updates, _ = optim.update(grads, opt_state, _params(model))
        return eqx.apply_updates(model, updates), opt_state

    model = _mlp()
    assert _codes_and_paths(check_step(step, model, optim.init(_params(model)), X, Y)) == [
        ("EQX503", "opt_state")]


class Normed(eqx.Module):
    linear: eqx.nn.Linear
    norm: eqx.nn.BatchNorm

    def __init__(self, key):
        self.linear = eqx.nn.Linear(2, 1, key=key)
        self.norm = eqx.nn.BatchNorm(2, axis_name="batch", mode="ema")

    def __call__(self, x, state):
        x, state = self.norm(x, state)
        return self.linear(x), state


def _stateful_loss(model, state, x, y):
    batched = jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
    pred, state = batched(x, state)
    return jnp.mean((pred - y) ** 2), state


def _stateful_step(thread_state: bool):
    optim = optax.adam(1e-3)

    @eqx.filter_jit
    def step(model, state, opt_state, x, y):
        (loss, new_state), grads = eqx.filter_value_and_grad(_stateful_loss, has_aux=True)(
            model, state, x, y)
        updates, opt_state = optim.update(grads, opt_state, _params(model))
        returned_state = new_state if thread_state else state
        return eqx.apply_updates(model, updates), returned_state, opt_state, loss

    model, state = eqx.nn.make_with_state(Normed)(KEY)
    return step, model, state, optim.init(_params(model))


def test_eqx503_the_batchnorm_state_is_not_threaded() -> None:
    step, model, state, opt_state = _stateful_step(thread_state=False)
    found = check_step(step, model, state, opt_state, X, Y)
    assert _codes_and_paths(found) == [("EQX503", "state")]
    assert "BatchNorm in training mode" in found[0].message


def test_a_step_that_threads_batchnorm_state_is_clean() -> None:
    step, model, state, opt_state = _stateful_step(thread_state=True)
    assert check_step(step, model, state, opt_state, X, Y) == []
    assert_step(step, model, state, opt_state, X, Y)


def test_an_evaluation_step_returning_its_model_is_not_eqx503() -> None:
    """No optimizer state goes in: nothing was meant to be trained."""
    @eqx.filter_jit
    def evaluate(model, x, y):
        return model, _loss(model, x, y)

    assert check_step(evaluate, _mlp(), X, Y) == []


def test_a_gradient_accumulation_micro_step_is_not_eqx503() -> None:
    """Model and optimizer state both come back as given: this step was not meant to train."""
    optim = optax.adam(1e-3)

    @eqx.filter_jit
    def accumulate(model, opt_state, accumulated, x, y):
        grads = eqx.filter_grad(_loss)(model, x, y)
        return model, opt_state, jax.tree.map(jnp.add, accumulated, grads)

    model = _mlp()
    zeros = jax.tree.map(jnp.zeros_like, _params(model))
    assert check_step(accumulate, model, optim.init(_params(model)), zeros, X, Y) == []


def test_eqx603_a_python_counter_in_the_model_recompiles_every_step() -> None:
    class Counted(eqx.Module):
        mlp: eqx.nn.MLP
        steps: int = 0

        def __call__(self, x):
            return self.mlp(x)

    optim = optax.adam(1e-3)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        grads = eqx.filter_grad(_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state, _params(model))
        model = eqx.apply_updates(model, updates)
        return eqx.tree_at(lambda m: m.steps, model, model.steps + 1), opt_state

    model = Counted(_mlp())
    found = check_step(step, model, optim.init(_params(model)), X, Y)
    assert _codes_and_paths(found) == [("EQX603", "model.steps")]
    assert "is the Python value 0 going in and 1 coming out" in found[0].message


def test_eqx603_dtype_and_structure_drift() -> None:
    optim = optax.adam(1e-3)

    @eqx.filter_jit
    def half(model, opt_state, x, y):
        grads = eqx.filter_grad(_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state, _params(model))
        model = eqx.apply_updates(model, updates)
        return eqx.tree_at(lambda m: m.layers[0].bias, model,
                           model.layers[0].bias.astype(jnp.bfloat16)), opt_state

    model = _mlp()
    found = check_step(half, model, optim.init(_params(model)), X, Y)
    assert _codes_and_paths(found) == [("EQX603", "model.layers[0].bias")]
    assert "goes into the step as float32[8] and comes out as bfloat16[8]" in found[0].message

    @eqx.filter_jit
    def reinitialised(model, opt_state, x, y):
        grads = eqx.filter_grad(_loss)(model, x, y)
        updates, _ = optim.update(grads, opt_state, _params(model))
        return eqx.apply_updates(model, updates), optax.sgd(1e-3).init(_params(model))

    found = check_step(reinitialised, model, optim.init(_params(model)), X, Y)
    assert _codes_and_paths(found) == [("EQX603", "opt_state")]
    assert "comes out of the step with another tree structure than it went in" in found[0].message


def test_returned_values_are_matched_by_structure_not_by_name_or_position() -> None:
    optim = optax.adam(1e-3)

    def step(batch, o, m):  # odd names, odd order, the old model returned in the middle
        grads = eqx.filter_grad(_loss)(m, *batch)
        updates, o = optim.update(grads, o, _params(m))
        return {"loss": _loss(m, *batch)}, m, o

    model = _mlp()
    found = check_step(step, (X, Y), optim.init(_params(model)), model)
    assert _codes_and_paths(found) == [("EQX503", "model")]
    found = check_step(step, batch=(X, Y), o=optim.init(_params(model)), m=model)
    assert _codes_and_paths(found) == [("EQX503", "model")]


def test_a_jax_jit_step_over_arrays_and_over_a_module() -> None:
    optim = optax.adam(1e-3)
    model = _mlp()
    params, static = eqx.partition(model, eqx.is_inexact_array)

    @jax.jit
    def on_params(params, opt_state, x, y):
        grads = jax.grad(lambda p: _loss(eqx.combine(p, static), x, y))(params)
        updates, opt_state = optim.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    assert check_step(on_params, params, optim.init(params), X, Y) == []

    @jax.jit
    def on_module(model, opt_state, x, y):
        grads = eqx.filter_grad(_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state, _params(model))
        return eqx.apply_updates(model, updates), opt_state

    found = check_step(on_module, model, optim.init(params), X, Y)
    assert _codes_and_paths(found) == [("EQX201", "model.activation")]
    assert "Use `eqx.filter_jit`" in found[0].hint


def test_an_error_eqxlint_cannot_explain_is_raised_as_the_step_raised_it() -> None:
    def step(model, x):
        return model(x)  # x is batched: the MLP wants one sample

    with pytest.raises(TypeError, match="dot_general requires contracting dimensions"):
        check_step(step, _mlp(), jnp.ones((8, 3)))


def test_the_step_runs_on_shapes_only() -> None:
    seen: list = []

    def step(model, x):
        seen.append(type(x))
        return jax.vmap(model)(x)

    x = jnp.ones((8, 2))
    assert check_step(step, _mlp(), x) == []
    assert len(seen) == 1 and issubclass(seen[0], jax.core.Tracer)
    assert float(x.sum()) == 16.0  # still a live array: nothing donated or moved


def test_assert_step_raises_listing_every_problem() -> None:
    optim = optax.adam(1e-3)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        grads = eqx.filter_grad(_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state, _params(model))
        return eqx.apply_updates(eqx.filter(model, eqx.is_array), updates), opt_state

    model = _mlp()
    with pytest.raises(TrainabilityError) as raised:
        assert_step(step, model, optim.init(_params(model)), X, Y)
    assert str(raised.value).startswith("eqxlint found 2 problems with this training step:")
    assert [d.path for d in raised.value.diagnostics] == ["model.activation",
                                                          "model.final_activation"]


def test_check_step_wants_a_function_first() -> None:
    with pytest.raises(TypeError, match="expects the training step function first"):
        check_step(_mlp().layers[0].weight, _mlp())


def test_the_readme_shows_check_steps_real_output_on_the_demo() -> None:
    readme = (REPO / "README.md").read_text()
    call = "check_step(train_step, model, state, opt_state, x, y)\n```\n\n```\n"
    shown = readme[readme.index(call) + len(call):]
    shown = shown[:shown.index("\n```")]
    optim = optax.adam(1e-2)
    demo = _demo("train_buggy.py", optim)
    model_key, data_key = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.uniform(data_key, (64, 1), minval=-3.0, maxval=3.0)
    model, state = eqx.nn.make_with_state(demo["Regressor"])(model_key)
    opt_state = optim.init(_params(model))
    assert repr(check_step(demo["train_step"], model, state, opt_state, x, jnp.sin(x))) == shown
