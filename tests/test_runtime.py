"""check_model / assert_trainable on real Equinox and optax objects, clean and buggy."""

from __future__ import annotations

import subprocess
import sys
from typing import Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest

from eqxlint import Diagnostics, TrainabilityError, assert_trainable, check_model

KEY = jax.random.PRNGKey(0)


def _codes_and_paths(diagnostics) -> list[tuple[str, str]]:
    return [(d.code, d.path) for d in diagnostics]


class WithOptional(eqx.Module):
    linear: eqx.nn.Linear
    extra: Optional[eqx.nn.Linear] = None
    scale: Optional[jax.Array] = None

    def __call__(self, x):
        return self.linear(x)


class Regressor(eqx.Module):
    """The README demo's model: an MLP encoder, a BatchNorm and a linear head."""

    encoder: eqx.nn.MLP
    norm: eqx.nn.BatchNorm
    head: eqx.nn.Linear

    def __init__(self, key):
        encoder_key, head_key = jax.random.split(key)
        self.encoder = eqx.nn.MLP(1, 16, width_size=32, depth=1, activation=jax.nn.tanh,
                                  key=encoder_key)
        self.norm = eqx.nn.BatchNorm(16, axis_name="batch", mode="batch")
        self.head = eqx.nn.Linear(16, 1, key=head_key)

    def __call__(self, x, state):
        hidden, state = self.norm(self.encoder(x), state)
        return self.head(hidden), state


def _loss(model, state, x, y):
    batched = jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
    pred, state = batched(x, state)
    return jnp.mean((pred - y) ** 2), state


CLEAN_MODELS: dict[str, Callable[[], tuple]] = {
    "mlp": lambda: (eqx.nn.MLP(2, 2, 8, 2, key=KEY), None),
    "mlp_final_activation": lambda: (eqx.nn.MLP(2, 2, 8, 2, final_activation=jax.nn.sigmoid,
                                                key=KEY), None),
    "linear_no_bias": lambda: (eqx.nn.Linear(3, 4, use_bias=False, key=KEY), None),
    "conv2d": lambda: (eqx.nn.Conv2d(3, 8, 3, key=KEY), None),
    "attention": lambda: (eqx.nn.MultiheadAttention(2, 8, key=KEY), None),
    "sequential_lambda": lambda: (eqx.nn.Sequential([eqx.nn.Linear(2, 4, key=KEY),
                                                     eqx.nn.Lambda(jax.nn.relu)]), None),
    "gru": lambda: (eqx.nn.GRUCell(3, 4, key=KEY), None),
    "embedding": lambda: (eqx.nn.Embedding(10, 4, key=KEY), None),
    "layernorm_no_weight": lambda: (eqx.nn.LayerNorm(4, use_weight=False), None),
    "make_with_state": lambda: eqx.nn.make_with_state(Regressor)(KEY),
    "optional_field": lambda: (WithOptional(eqx.nn.Linear(2, 2, key=KEY)), None),
    "abstract": lambda: (eqx.filter_eval_shape(eqx.nn.MLP, 2, 2, 8, 2, key=KEY), None),
}


@pytest.mark.parametrize("name", CLEAN_MODELS)
def test_correct_models_are_clean(name: str) -> None:
    model, state = CLEAN_MODELS[name]()
    assert check_model(model, state=state) == []
    assert_trainable(model, state=state)
    in_eval = _codes_and_paths(check_model(model, state=state, mode="eval"))
    # A BatchNorm in training mode at evaluation is EQX501; dropout with p=0 changes nothing.
    assert in_eval == ([("EQX501", "model.norm")] if name == "make_with_state" else [])


@pytest.mark.parametrize("name", CLEAN_MODELS)
def test_correct_models_with_their_optimizer_are_clean(name: str) -> None:
    model, state = CLEAN_MODELS[name]()
    for optim in (optax.adam(1e-3), optax.adamw(1e-3), optax.sgd(1e-2, momentum=0.9)):
        params = eqx.filter(model, eqx.is_inexact_array)
        opt_state = None if name == "abstract" else optim.init(params)
        assert check_model(model, state=state, optim=optim, opt_state=opt_state) == []


def test_check_model_does_not_change_the_model() -> None:
    model = eqx.nn.MLP(2, 2, 8, 2, key=KEY)
    before = jax.tree_util.tree_leaves(model)
    check_model(model, mode="eval", opt_state=optax.adam(1e-3).init(
        eqx.filter(model, eqx.is_inexact_array)))
    assert all(a is b for a, b in zip(before, jax.tree_util.tree_leaves(model)))


# -- EQX101 -------------------------------------------------------------------------------


def _one_step(filtered: bool):
    """One real training step of the README's model; `filtered`: the buggy update."""
    model, state = eqx.nn.make_with_state(Regressor)(KEY)
    optim = optax.adam(1e-2)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
    x = jnp.linspace(-1, 1, 8)[:, None]
    (_, state), grads = eqx.filter_value_and_grad(_loss, has_aux=True)(model, state, x, x)
    updates, opt_state = optim.update(grads, opt_state)
    updated = eqx.filter(model, eqx.is_array) if filtered else model
    return eqx.apply_updates(updated, updates), state, opt_state, optim


def _trained_wrongly():
    """The README's buggy step, for real: apply_updates on a filtered model."""
    model, state, opt_state, _ = _one_step(filtered=True)
    return model, state, opt_state


def test_eqx101_names_every_field_the_filter_set_to_none() -> None:
    model, state, opt_state = _trained_wrongly()
    found = _codes_and_paths(check_model(model, state=state))
    assert found == [
        ("EQX101", "model.encoder.activation"),
        ("EQX101", "model.encoder.final_activation"),
        ("EQX101", "model.norm.axis_name"),
        ("EQX101", "model.norm.inference"),
    ]


def test_assert_trainable_message_names_the_field_and_the_fix() -> None:
    model, state, _ = _trained_wrongly()
    with pytest.raises(TrainabilityError) as raised:
        assert_trainable(model, state=state)
    error = raised.value
    assert isinstance(error, AssertionError)
    assert len(error.diagnostics) == 4
    text = str(error)
    assert text.startswith("eqxlint found 4 problems with this model:\n\n")
    assert ("EQX101 `model.encoder.activation` is None, but `MLP.activation` is annotated "
            "`Callable`") in text
    assert "fix: Update the unfiltered model: `model = eqx.apply_updates(model, updates)`" in text
    assert "`BatchNorm.axis_name` is annotated `Hashable | Sequence[Hashable]`" in text


def test_the_fixed_step_is_clean() -> None:
    model, state, opt_state, optim = _one_step(filtered=False)
    assert_trainable(model, state=state, opt_state=opt_state, optim=optim)


# -- EQX102 / EQX104 ----------------------------------------------------------------------


def test_eqx102_optimizer_state_built_from_the_unfiltered_model() -> None:
    model = eqx.nn.Sequential([eqx.nn.Linear(2, 2, key=KEY), eqx.nn.Dropout(0.1)])
    opt_state = optax.adam(1e-3).init(model)  # passes: Dropout holds a float and a bool
    found = _codes_and_paths(check_model(model, opt_state=opt_state))
    assert found == [("EQX102", "model.layers[1].p"), ("EQX102", "model.layers[1].inference")]
    message = check_model(model, opt_state=opt_state)[0].message
    assert "`model.layers[1].p` is a `float`, not a trainable array" in message


def test_eqx102_with_optim_evaluates_init_and_update_on_shapes() -> None:
    model = eqx.nn.MLP(2, 2, 8, 2, key=KEY)
    wrong_mask = optax.masked(optax.adam(1e-3), {"not": "the model"})
    found = check_model(model, optim=wrong_mask)
    assert [d.code for d in found] == ["EQX102"]
    assert found[0].message.startswith("`model` `optim.init` fails on the model's trainable")


def test_eqx104_integer_arrays_in_the_optimizer_state() -> None:
    class Indexed(eqx.Module):
        weight: jax.Array
        index: jax.Array

    model = Indexed(jnp.ones(3), jnp.arange(3))
    opt_state = optax.adam(1e-3).init(eqx.filter(model, eqx.is_array))
    assert _codes_and_paths(check_model(model, opt_state=opt_state)) == [("EQX104", "model.index")]
    good = optax.adam(1e-3).init(eqx.filter(model, eqx.is_inexact_array))
    assert check_model(model, opt_state=good) == []


def test_a_model_alone_is_never_eqx102() -> None:
    model = eqx.nn.Sequential([eqx.nn.Linear(2, 2, key=KEY), eqx.nn.Lambda(jax.nn.relu),
                               eqx.nn.Dropout(0.5)])
    assert [d for d in check_model(model) if d.code == "EQX102"] == []


# -- EQX302 / EQX501 / EQX601 / EQX602 -----------------------------------------------------


def test_a_stateful_model_checked_without_state_is_not_eqx302() -> None:
    """Holding BatchNorm is normal; the caller may simply not have passed the state."""
    model, _ = eqx.nn.make_with_state(Regressor)(KEY)
    assert check_model(model) == []
    assert_trainable(model)
    assert check_model(Regressor(KEY)) == []


def test_eqx302_a_state_made_for_another_model() -> None:
    model = Regressor(KEY)
    _, other_state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(16, axis_name="batch", mode="batch")
    found = _codes_and_paths(check_model(model, state=other_state))
    assert found == [("EQX302", "model.norm.batch_counter"),
                     ("EQX302", "model.norm.batch_state_index")]


def test_eqx302_a_state_entry_of_the_wrong_shape() -> None:
    model, _ = eqx.nn.make_with_state(Regressor)(KEY)
    wider = eqx.nn.BatchNorm(32, axis_name="batch", mode="batch")
    wrong = eqx.tree_at(lambda m: m.norm, Regressor(KEY), wider)
    _, wrong_state = eqx.nn.make_with_state(lambda: wrong)()
    found = check_model(model, state=wrong_state)
    assert _codes_and_paths(found) == [("EQX302", "model.norm.batch_state_index")]
    assert "(32,)" in found[0].message and "(16,)" in found[0].message


def test_eqx501_dropout_left_on_at_evaluation() -> None:
    model = eqx.nn.Sequential([eqx.nn.Linear(2, 2, key=KEY), eqx.nn.Dropout(0.1)])
    assert _codes_and_paths(check_model(model, mode="eval")) == [("EQX501", "model.layers[1]")]
    assert "eqx.nn.inference_mode(model)" in check_model(model, mode="eval")[0].hint
    assert check_model(eqx.nn.inference_mode(model), mode="eval") == []
    assert check_model(model) == []  # training mode is right for training


def test_eqx601_non_finite_weights() -> None:
    model = eqx.nn.MLP(2, 2, 4, 1, key=KEY)
    broken = eqx.tree_at(lambda m: m.layers[1].bias, model, jnp.array([0.0, jnp.nan]))
    assert _codes_and_paths(check_model(broken)) == [("EQX601", "model.layers[1].bias")]


def test_eqx602_called_inside_jit() -> None:
    seen: list = []

    @eqx.filter_jit
    def step(model):
        seen.extend(check_model(model))
        return model

    step(eqx.nn.MLP(2, 2, 4, 1, key=KEY))
    assert [d.code for d in seen] == ["EQX602"]
    assert seen[0].path == "model.layers[0].weight"

    @eqx.filter_jit
    def asserting(model):
        assert_trainable(model)
        return model

    with pytest.raises(TrainabilityError, match="EQX602"):
        asserting(eqx.nn.MLP(2, 2, 4, 1, key=KEY))


def test_bad_mode_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        check_model(eqx.nn.Linear(2, 2, key=KEY), mode="evaluation")


def test_diagnostics_render_as_text_and_html() -> None:
    model = eqx.nn.Sequential([eqx.nn.Linear(2, 2, key=KEY), eqx.nn.Dropout(0.1)])
    found = check_model(model, mode="eval")
    assert isinstance(found, Diagnostics) and isinstance(found, list)
    assert str(found).startswith("EQX501 `model.layers[1]` is a Dropout in training mode")
    html = found._repr_html_()
    assert "<table>" in html and "<code>model.layers[1]</code>" in html
    assert str(check_model(eqx.nn.Linear(2, 2, key=KEY))) == "eqxlint: no problems found."


def test_without_jax_the_error_says_what_to_install() -> None:
    code = ("import sys; sys.modules['jax'] = None\n"
            "import eqxlint\n"
            "try:\n    eqxlint.check_model(object())\n"
            "except ImportError as error:\n    print(error)\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=60)
    assert "pip install 'eqxlint[runtime]'" in completed.stdout, completed.stderr


def test_an_abstract_model_goes_through_every_check() -> None:
    """No data at all (eqx.filter_eval_shape): every check runs, and finds the real mistakes."""
    abstract = eqx.filter_eval_shape(eqx.nn.MLP, 2, 2, 8, 2, key=KEY)
    assert isinstance(jax.tree_util.tree_leaves(abstract)[0], jax.ShapeDtypeStruct)
    assert check_model(abstract, optim=optax.adam(1e-3), mode="eval") == []
    filtered = eqx.filter(abstract, lambda leaf: isinstance(leaf, jax.ShapeDtypeStruct))
    assert [d.code for d in check_model(filtered)] == ["EQX101", "EQX101"]


# -- issue 13: clear errors, no silent passes, notebook display ----------------------------


@pytest.mark.parametrize("value", [1, None, object(), "model", [1, 2]],
                         ids=["int", "None", "object", "str", "list_of_ints"])
def test_check_model_refuses_what_is_not_a_model(value) -> None:
    with pytest.raises(TypeError, match="expects an Equinox module"):
        check_model(value)
    with pytest.raises(TypeError, match="expects an Equinox module"):
        assert_trainable(value)


def test_a_pytree_of_arrays_is_a_model() -> None:
    assert check_model({"w": jnp.ones(3), "b": [jnp.zeros(2)]}) == []


def test_eqx102_a_float_kept_by_a_filter_that_drops_only_callables() -> None:
    class Tempered(eqx.Module):
        mlp: eqx.nn.MLP
        temperature: float = 0.5

        def __call__(self, x):
            return self.mlp(x) / self.temperature

    model = Tempered(eqx.nn.MLP(2, 2, 4, 1, key=KEY))
    optim = optax.adam(1e-3)
    opt_state = optim.init(eqx.filter(model, lambda leaf: not callable(leaf)))  # passes
    grads = eqx.filter_grad(lambda m, x: jnp.sum(m(x)))(model, jnp.ones(2))
    with pytest.raises(Exception):  # what the user meets at the first step
        optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
    found = check_model(model, opt_state=opt_state)
    assert _codes_and_paths(found) == [("EQX102", "model.temperature")]
    assert "`model.temperature` is a `float`, not a trainable array" in found[0].message


def test_eqx601_a_nan_in_a_numpy_leaf() -> None:
    import numpy as np

    model = eqx.nn.Linear(2, 2, key=KEY)
    loaded = eqx.tree_at(lambda m: m.bias, model, np.array([0.0, np.nan], dtype=np.float32))
    assert _codes_and_paths(check_model(loaded)) == [("EQX601", "model.bias")]


def test_the_plain_text_repr_is_the_table_not_a_dataclass_dump() -> None:
    model = eqx.nn.Sequential([eqx.nn.Linear(2, 2, key=KEY), eqx.nn.Dropout(0.1)])
    found = check_model(model, mode="eval")
    assert repr(found) == str(found)
    assert "Diagnostic(" not in repr(found)
    assert repr(check_model(eqx.nn.Linear(2, 2, key=KEY))) == "eqxlint: no problems found."


def test_the_html_table_aligns_prose_left_and_renders_code() -> None:
    model = eqx.nn.Sequential([eqx.nn.Linear(2, 2, key=KEY), eqx.nn.Dropout(0.1)])
    html = check_model(model, mode="eval")._repr_html_()
    assert "`" not in html
    assert "<code>model.layers[1]</code> is a Dropout" in html
    assert "<code>model = eqx.nn.inference_mode(model)</code>" in html
    assert "text-align: left" in html


def test_in_ipython_the_traceback_ends_at_the_users_line() -> None:
    pytest.importorskip("IPython")
    code = ("from IPython.testing.globalipapp import start_ipython\n"
            "ip = start_ipython()\n"
            "ip.run_cell('import equinox as eqx, jax\\n"
            "from eqxlint import assert_trainable\\n"
            "m = eqx.nn.Sequential([eqx.nn.Linear(2, 2, key=jax.random.PRNGKey(0)), "
            "eqx.nn.Dropout(0.1)])')\n"
            "ip.run_cell('assert_trainable(m, mode=\"eval\")')\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=120)
    output = completed.stdout + completed.stderr
    assert "TrainabilityError" in output, output
    assert "eqxlint/__init__.py" not in output and "raise TrainabilityError" not in output


def test_check_model_on_a_module_that_contains_itself_is_a_clear_error() -> None:
    class Looping(eqx.Module):
        linear: eqx.nn.Linear
        again: object = None

    module = Looping(eqx.nn.Linear(2, 2, key=KEY))
    object.__setattr__(module, "again", module)
    with pytest.raises(ValueError, match=r"`model.again` contains itself"):
        check_model(module)


def test_eqx601_a_nan_in_a_bfloat16_weight() -> None:
    model = eqx.nn.Linear(2, 2, key=KEY, dtype=jnp.bfloat16)
    broken = eqx.tree_at(lambda m: m.weight, model, model.weight.at[0, 1].set(jnp.inf))
    assert _codes_and_paths(check_model(broken)) == [("EQX601", "model.weight")]
    assert check_model(model) == []
