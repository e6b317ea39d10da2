"""Name-based weight loading and check_state_dict (EQX401), on real models."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqxlint import check_state_dict
from eqxlint.interop import (StateDictError, load_safetensors, load_state_dict,
                             save_safetensors, state_dict)

KEY, OTHER = jax.random.split(jax.random.PRNGKey(0))


class ConvNet(eqx.Module):
    conv: eqx.nn.Conv2d
    bn: eqx.nn.BatchNorm
    fc: eqx.nn.Linear

    def __init__(self, key):
        conv_key, fc_key = jax.random.split(key)
        self.conv = eqx.nn.Conv2d(3, 4, 3, key=conv_key)
        self.bn = eqx.nn.BatchNorm(4, axis_name="batch", mode="ema")
        self.fc = eqx.nn.Linear(4, 2, key=fc_key)

    def __call__(self, x, state):
        x, state = self.bn(self.conv(x), state)
        return self.fc(jnp.mean(x, axis=(1, 2))), state


def _same_arrays(a, b) -> bool:
    left = [x for x in jax.tree_util.tree_leaves(a) if eqx.is_array(x)]
    right = [x for x in jax.tree_util.tree_leaves(b) if eqx.is_array(x)]
    return len(left) == len(right) and all(
        x.shape == y.shape and bool(jnp.array_equal(x, y)) for x, y in zip(left, right))


def test_state_dict_names_arrays_as_pytorch_does() -> None:
    model = eqx.nn.MLP(2, 3, 8, 2, key=KEY)
    names = {name: tuple(array.shape) for name, array in state_dict(model).items()}
    assert names == {"layers.0.weight": (8, 2), "layers.0.bias": (8,),
                     "layers.1.weight": (8, 8), "layers.1.bias": (8,),
                     "layers.2.weight": (3, 8), "layers.2.bias": (3,)}


@pytest.mark.parametrize("build", [
    lambda key: eqx.nn.MLP(2, 3, 8, 2, key=key),
    lambda key: eqx.nn.MultiheadAttention(2, 8, use_query_bias=True, key=key),
], ids=["mlp", "attention"])
def test_round_trip_into_a_fresh_model(build) -> None:
    source, fresh = build(KEY), build(OTHER)
    assert not _same_arrays(source, fresh)
    loaded = load_state_dict(fresh, {k: np.asarray(v) for k, v in state_dict(source).items()})
    assert _same_arrays(loaded, source)


def test_round_trip_conv_batchnorm_with_state() -> None:
    source, source_state = eqx.nn.make_with_state(ConvNet)(KEY)
    x = jax.random.normal(KEY, (5, 3, 6, 6))
    _, source_state = jax.vmap(source, axis_name="batch", in_axes=(0, None),
                               out_axes=(0, None))(x, source_state)  # move the statistics
    named = state_dict(source, source_state)
    assert named["conv.bias"].shape == (4,)  # PyTorch's layout; Equinox keeps (4, 1, 1)
    assert source.conv.bias.shape == (4, 1, 1)
    assert {"bn.running_mean", "bn.running_var", "bn.weight", "bn.bias"} <= set(named)

    fresh, fresh_state = eqx.nn.make_with_state(ConvNet)(OTHER)
    loaded, loaded_state = load_state_dict(fresh, named, state=fresh_state)
    assert _same_arrays(loaded, source)
    index = source.bn.ema_state_index
    for got, want in zip(loaded_state.get(index), source_state.get(index)):
        assert bool(jnp.array_equal(got, want))


def test_check_state_dict_reports_every_problem_by_path_and_key() -> None:
    model, _ = eqx.nn.make_with_state(ConvNet)(KEY)
    named = {k: np.asarray(v) for k, v in state_dict(model).items()}
    named["fc.weight"] = named["fc.weight"].T              # transposed
    named["conv.weight"] = named["conv.weight"].reshape(4, 27)  # same size, other layout
    del named["bn.bias"]                                    # missing
    named["head.weight"] = np.zeros((2, 2))                 # unexpected
    named["bn.running_mean"] = np.zeros(4)                  # a statistic of the right size
    named["bn.num_batches_tracked"] = np.zeros(())          # PyTorch bookkeeping: ignored
    found = [(d.code, d.path) for d in check_state_dict(model, named)]
    assert found == [
        ("EQX401", "model.conv.weight"),
        ("EQX401", "model.bn.bias"),
        ("EQX401", "model.fc.weight"),
        ("EQX401", "model"),
    ]
    messages = [d.message for d in check_state_dict(model, named)]
    assert "another layout, which a `.reshape` would scramble silently" in messages[0]
    assert "the state dict has no key `bn.bias`" in messages[1]
    assert "transposed" in messages[2]
    assert "no array named `head.weight`" in messages[3]


def test_loading_statistics_without_a_state_says_where_they_belong() -> None:
    model, state = eqx.nn.make_with_state(ConvNet)(KEY)
    with pytest.raises(StateDictError) as raised:
        load_state_dict(model, state_dict(model, state))
    assert [d.path for d in raised.value.diagnostics] == [
        "state[model.bn].running_mean", "state[model.bn].running_var"]
    assert "lives in the model's `eqx.nn.State`" in raised.value.diagnostics[0].message


def test_check_state_dict_is_clean_on_a_matching_dict() -> None:
    model = eqx.nn.MLP(2, 3, 8, 2, key=KEY)
    assert check_state_dict(model, state_dict(model)) == []


def test_key_map_names_pytorch_keys() -> None:
    model = eqx.nn.MLP(2, 3, 8, 1, key=KEY)
    torch_names = {"layers.0.weight": "fc1.weight", "layers.0.bias": "fc1.bias",
                   "layers.1.weight": "fc2.weight", "layers.1.bias": "fc2.bias"}
    torch_dict = {torch_names[k]: np.asarray(v) for k, v in state_dict(model).items()}
    assert len(check_state_dict(model, torch_dict)) > 0
    assert check_state_dict(model, torch_dict, key_map=torch_names) == []
    loaded = load_state_dict(eqx.nn.MLP(2, 3, 8, 1, key=OTHER), torch_dict, key_map=torch_names)
    assert _same_arrays(loaded, model)


def test_order_differs_but_names_win() -> None:
    """The mistake EQX401 is about: a sorted (safetensors-like) dict in another order."""
    model = eqx.nn.MLP(2, 2, 2, 11, key=KEY)  # layers.10 sorts before layers.2
    named = {k: np.asarray(v) for k, v in state_dict(model).items()}
    sorted_dict = dict(sorted(named.items()))
    assert list(sorted_dict) != list(named)
    loaded = load_state_dict(eqx.nn.MLP(2, 2, 2, 11, key=OTHER), sorted_dict)
    assert _same_arrays(loaded, model)


def test_strict_load_raises_listing_every_problem() -> None:
    model = eqx.nn.MLP(2, 3, 8, 1, key=KEY)
    named = {k: np.asarray(v) for k, v in state_dict(model).items()}
    del named["layers.1.bias"]
    named["layers.0.weight"] = named["layers.0.weight"].T
    with pytest.raises(StateDictError) as raised:
        load_state_dict(model, named)
    assert [d.path for d in raised.value.diagnostics] == [
        "model.layers[0].weight", "model.layers[1].bias"]
    partial = load_state_dict(eqx.nn.MLP(2, 3, 8, 1, key=OTHER), named, strict=False)
    assert bool(jnp.array_equal(partial.layers[1].weight, model.layers[1].weight))
    assert not bool(jnp.array_equal(partial.layers[0].weight, model.layers[0].weight))


def test_safetensors_round_trip(tmp_path: Path) -> None:
    model, state = eqx.nn.make_with_state(ConvNet)(KEY)
    path = tmp_path / "weights.safetensors"
    save_safetensors(model, path, state=state)
    fresh, fresh_state = eqx.nn.make_with_state(ConvNet)(OTHER)
    loaded, _ = load_safetensors(fresh, path, state=fresh_state)
    assert _same_arrays(loaded, model)


def test_torch_tensors_if_torch_is_installed() -> None:
    torch = pytest.importorskip("torch")
    model = eqx.nn.MLP(2, 3, 8, 1, key=KEY)
    tensors = {k: torch.tensor(np.asarray(v)) for k, v in state_dict(model).items()}
    assert check_state_dict(model, tensors) == []
    assert _same_arrays(load_state_dict(eqx.nn.MLP(2, 3, 8, 1, key=OTHER), tensors), model)


# -- issue 13: no false alarms, one diagnostic per problem, clear errors --------------------


def test_check_state_dict_is_clean_on_its_own_checkpoint_with_statistics() -> None:
    """state_dict(model, state) names the running statistics; checking it must not object."""
    model, state = eqx.nn.make_with_state(ConvNet)(KEY)
    named = state_dict(model, state)
    assert {"bn.running_mean", "bn.running_var"} <= set(named)
    assert check_state_dict(model, named) == []
    assert check_state_dict(model, named, state=state) == []
    assert check_state_dict(model, state_dict(model)) == []


def test_round_trips_with_and_without_state_are_clean() -> None:
    model, state = eqx.nn.make_with_state(ConvNet)(KEY)
    fresh, fresh_state = eqx.nn.make_with_state(ConvNet)(OTHER)
    assert _same_arrays(load_state_dict(fresh, state_dict(model)), model)
    loaded, loaded_state = load_state_dict(fresh, state_dict(model, state), state=fresh_state)
    assert _same_arrays(loaded, model)
    assert _same_arrays(loaded_state, state)


def test_a_statistic_of_the_wrong_shape_is_reported_without_state() -> None:
    model, state = eqx.nn.make_with_state(ConvNet)(KEY)
    named = {k: np.asarray(v) for k, v in state_dict(model, state).items()}
    named["bn.running_var"] = np.ones(5)
    found = check_state_dict(model, named)
    assert [(d.code, d.path) for d in found] == [("EQX401", "state[model.bn].running_var")]
    assert "is (4,) but `bn.running_var` is (5,)" in found[0].message


def test_a_missing_key_is_one_diagnostic() -> None:
    model = eqx.nn.MLP(2, 3, 8, 2, key=KEY)
    named = {k: np.asarray(v) for k, v in state_dict(model).items()}
    del named["layers.1.bias"]
    found = check_state_dict(model, named)
    assert [(d.code, d.path) for d in found] == [("EQX401", "model.layers[1].bias")]


class Branches(eqx.Module):
    layers: dict


def test_names_that_would_collide_are_refused_naming_both_paths() -> None:
    model = Branches({"a.b": eqx.nn.Linear(2, 2, key=KEY),
                      "a": {"b": eqx.nn.Linear(2, 2, key=OTHER)},
                      "c": eqx.nn.Linear(2, 2, key=KEY)})
    for call in (lambda: state_dict(model), lambda: check_state_dict(model, {}),
                 lambda: load_state_dict(model, {})):
        with pytest.raises(ValueError) as raised:
            call()
        text = str(raised.value)
        assert "`layers.a.b.weight`" in text
        assert 'model.layers["a.b"].weight' in text and 'model.layers["a"]["b"].weight' in text


def test_a_model_that_is_a_batchnorm_names_its_statistics_as_pytorch_does() -> None:
    norm, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(4, axis_name="batch", mode="ema")
    assert set(state_dict(norm, state)) == {"weight", "bias", "running_mean", "running_var"}
    torch_like = {"weight": np.ones(4), "bias": np.zeros(4), "running_mean": np.full(4, 0.5),
                  "running_var": np.full(4, 2.0), "num_batches_tracked": np.zeros(())}
    assert check_state_dict(norm, torch_like) == []
    _, loaded_state = load_state_dict(norm, torch_like, state=state)
    mean, var = loaded_state.get(norm.ema_state_index)
    assert float(mean[0]) == 0.5 and float(var[0]) == 2.0


class Looping(eqx.Module):
    linear: eqx.nn.Linear
    again: object = None


def test_a_module_or_list_that_contains_itself_is_a_clear_error() -> None:
    module = Looping(eqx.nn.Linear(2, 2, key=KEY))
    object.__setattr__(module, "again", module)
    looping_list: list = [eqx.nn.Linear(2, 2, key=KEY)]
    looping_list.append(looping_list)
    for model, where in ((module, "model.again"), (looping_list, "model[1]")):
        with pytest.raises(ValueError, match="contains itself") as raised:
            check_state_dict(model, {})
        assert f"`{where}`" in str(raised.value)


@pytest.mark.parametrize("value, expected", [
    ([[1.0, 2.0], [3.0, 4.0]], "is a list, not an array"),
    ("weights", "is a str, not an array"),
], ids=["list", "str"])
def test_odd_values_in_a_state_dict_are_a_clear_type_error(value, expected) -> None:
    model = eqx.nn.Linear(2, 2, key=KEY)
    with pytest.raises(TypeError, match=expected) as raised:
        check_state_dict(model, {"weight": value, "bias": np.zeros(2)})
    assert "state_dict['weight']" in str(raised.value)


def test_an_object_with_numpy_but_no_shape_is_told_to_convert() -> None:
    class Tensorish:
        def numpy(self):
            return np.zeros((2, 2))

    with pytest.raises(TypeError, match=r"call `\.numpy\(\)` on it first"):
        check_state_dict(eqx.nn.Linear(2, 2, key=KEY), {"weight": Tensorish(), "bias": np.zeros(2)})


def test_odd_keys_and_non_mappings_are_clear_type_errors() -> None:
    model = eqx.nn.Linear(2, 2, key=KEY)
    with pytest.raises(TypeError, match="keys must be strings.*got 1"):
        check_state_dict(model, {1: np.zeros(2)})
    with pytest.raises(TypeError, match="a mapping from names to arrays"):
        check_state_dict(model, [np.zeros(2)])


def test_abstract_models_are_checked_and_filled_but_not_exported() -> None:
    concrete = eqx.nn.Linear(2, 2, key=KEY)
    abstract = eqx.filter_eval_shape(eqx.nn.Linear, 2, 2, key=KEY)
    named = state_dict(concrete)
    assert check_state_dict(abstract, named) == []
    assert _same_arrays(load_state_dict(abstract, named), concrete)
    with pytest.raises(TypeError, match="abstract.*holds no values"):
        state_dict(abstract)
