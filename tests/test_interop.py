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
    named["bn.running_mean"] = np.zeros(4)                  # belongs in the State
    named["bn.num_batches_tracked"] = np.zeros(())          # PyTorch bookkeeping: ignored
    found = [(d.code, d.path) for d in check_state_dict(model, named)]
    assert found == [
        ("EQX401", "model.conv.weight"),
        ("EQX401", "model.bn.bias"),
        ("EQX401", "model.fc.weight"),
        ("EQX401", "model"),
        ("EQX401", "state[model.bn]"),
        ("EQX401", "model"),
    ]
    messages = [d.message for d in check_state_dict(model, named)]
    assert "another layout, which a `.reshape` would scramble silently" in messages[0]
    assert "the state dict has no key `bn.bias`" in messages[1]
    assert "transposed" in messages[2]
    assert "no array named `head.weight`" in messages[3]
    assert "belongs: a BatchNorm statistic lives in the model's `eqx.nn.State`" in messages[4]
    assert messages[5] == ("`model` has 6 arrays and the state dict 7: pairing them by position "
                           "would misplace weights")


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
        "model.layers[0].weight", "model.layers[1].bias", "model"]
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
