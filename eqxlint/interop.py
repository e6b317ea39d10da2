"""Weights by name, not by position: PyTorch-style state dicts for Equinox models.

`state_dict(model)` names every array the way PyTorch would (`layers.0.weight`);
`load_state_dict(model, sd)` puts each array where its name says, checking shapes and
applying Equinox's own layouts where they differ from PyTorch's (a Conv bias is
`(out, 1, 1)` in Equinox and `(out,)` in PyTorch). This is what EQX401 points to
instead of `zip(sd.values(), jax.tree_util.tree_leaves(model))`.

BatchNorm running statistics live in `eqx.nn.State`, not in the model: pass
`state=` to have them named `<layer>.running_mean` / `<layer>.running_var`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

from eqxlint.diagnostics import Diagnostic, Diagnostics, Fix
from eqxlint.runtime import require_jax

KeyMap = Union[Mapping[str, str], Callable[[str], str], None]
IGNORED_SUFFIXES = (".num_batches_tracked",)  # PyTorch bookkeeping with no Equinox twin
LOAD_HINT = "Load by name: `model = eqxlint.interop.load_state_dict(model, state_dict, key_map=...)`"


class StateDictError(ValueError):
    """load_state_dict could not place every weight; `.diagnostics` lists why."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = Diagnostics(diagnostics)
        count = len(diagnostics)
        super().__init__(f"the state dict does not fit the model ({count} problem"
                         f"{'s' if count != 1 else ''}):\n\n{self.diagnostics}")


@dataclass
class _Slot:
    """One named array of the model (or of its state)."""

    name: str  # layers.0.weight
    path: str  # model.layers[0].weight
    shape: tuple[int, ...]  # in PyTorch's layout
    equinox_shape: tuple[int, ...]
    leaf_index: Optional[int] = None  # position among the model's leaves
    state_index: Any = None  # the eqx.nn.StateIndex, for BatchNorm statistics
    state_position: int = 0


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in getattr(value, "shape", ()))


def _conv_bias_names(model: Any) -> set[str]:
    import equinox as eqx

    from eqxlint.runtime.tree import modules_with_names

    conv_types = (eqx.nn.Conv, eqx.nn.ConvTranspose)
    return {f"{name}.bias" if name else "bias"
            for _, name, module in modules_with_names(model, "model")
            if isinstance(module, conv_types) and getattr(module, "bias", None) is not None}


def _batch_norms(model: Any) -> list[tuple[str, str, Any]]:
    import equinox as eqx

    from eqxlint.runtime.tree import modules_with_names

    return [(path, name, module) for path, name, module in modules_with_names(model, "model")
            if isinstance(module, eqx.nn.BatchNorm)]


def _batch_norm_index(module: Any) -> Any:
    index = getattr(module, "ema_state_index", None)
    return index if index is not None else getattr(module, "batch_state_index", None)


def _slots(model: Any, state: Any = None) -> list[_Slot]:
    import jax

    from eqxlint.runtime.tree import dotted_name, format_path, is_array_like

    conv_biases = _conv_bias_names(model)
    slots = []
    flat, _ = jax.tree_util.tree_flatten_with_path(model)
    for position, (keys, leaf) in enumerate(flat):
        if not is_array_like(leaf):
            continue
        name = dotted_name(keys)
        shape = _shape(leaf)
        torch_shape = (shape[0],) if name in conv_biases else shape
        slots.append(_Slot(name, format_path("model", keys), torch_shape, shape,
                           leaf_index=position))
    if state is not None:
        for path, name, module in _batch_norms(model):
            index = _batch_norm_index(module)
            if index is None:
                continue
            statistics = state.get(index)
            for position, suffix in enumerate(("running_mean", "running_var")):
                shape = _shape(statistics[position])
                slots.append(_Slot(f"{name}.{suffix}", f"state[{path}].{suffix}", shape, shape,
                                   state_index=index, state_position=position))
    return slots


def _key_for(name: str, key_map: KeyMap) -> str:
    if key_map is None:
        return name
    if callable(key_map):
        return key_map(name)
    return key_map.get(name, name)


def _problem(path: str, predicate: str, hint: str = LOAD_HINT) -> Diagnostic:
    """A finding about `path`; `predicate` completes the sentence "`path` ..."."""
    return Diagnostic(code="EQX401", message=f"`{path}` {predicate}", hint=hint, path=path,
                      fix=Fix("unsafe", hint))


def _compare(model: Any, state_dict: Mapping[str, Any], key_map: KeyMap,
             state: Any) -> tuple[list[Diagnostic], dict[str, str]]:
    """Problems, and the model-name -> state-dict-key pairing that was checked."""
    problems: list[Diagnostic] = []
    pairing: dict[str, str] = {}
    slots = _slots(model, state)
    for slot in slots:
        key = _key_for(slot.name, key_map)
        if key not in state_dict:
            problems.append(_problem(slot.path, f"has no weight: the state dict has no key "
                                     f"`{key}`"))
            continue
        pairing[slot.name] = key
        got = _shape(state_dict[key])
        if got == slot.shape:
            continue
        if len(got) == 2 and got == slot.shape[::-1]:
            why = (f"is {slot.shape} but `{key}` is {got}: transposed (PyTorch's Linear is "
                   f"(out, in), as Equinox's)")
        elif math.prod(got) == math.prod(slot.shape):
            why = (f"is {slot.shape} but `{key}` is {got}: the same number of elements in "
                   f"another layout, which a `.reshape` would scramble silently")
        else:
            why = f"is {slot.shape} but `{key}` is {got}"
        problems.append(_problem(slot.path, why))
    used = set(pairing.values())
    batch_norm_paths = {name: path for path, name, _ in _batch_norms(model)}
    for key in state_dict:
        if key in used or key.endswith(IGNORED_SUFFIXES):
            continue
        owner, _, suffix = key.rpartition(".")
        if suffix in ("running_mean", "running_var") and owner in batch_norm_paths \
                and state is None:
            problems.append(_problem(
                f"state[{batch_norm_paths[owner]}]", f"is where `{key}` belongs: a BatchNorm statistic lives in "
                f"the model's `eqx.nn.State`, not in the model",
                "Load it into the state: `model, state = eqxlint.interop.load_state_dict("
                "model, state_dict, state=state)`"))
            continue
        problems.append(_problem("model", f"has no array named `{key}` (a key of the state "
                                 f"dict)", "Name it in `key_map`, or drop it"))
    arrays = len([k for k in state_dict if not k.endswith(IGNORED_SUFFIXES)])
    if arrays != len(slots) and problems:
        problems.append(_problem("model", f"has {len(slots)} arrays and the state dict "
                                 f"{arrays}: pairing them by position would misplace weights"))
    return problems, pairing


def check_state_dict(model: Any, state_dict: Mapping[str, Any], *,
                     key_map: KeyMap = None) -> Diagnostics:
    """Compare by name and shape; nothing is copied (only `.shape` is read)."""
    require_jax()
    problems, _ = _compare(model, state_dict, key_map, None)
    return Diagnostics(problems)


def state_dict(model: Any, state: Any = None) -> dict[str, Any]:
    """Every array of the model under its PyTorch-style name, in PyTorch's layout."""
    require_jax()
    import jax

    leaves = jax.tree_util.tree_leaves(model)
    named: dict[str, Any] = {}
    for slot in _slots(model, state):
        if slot.leaf_index is not None:
            named[slot.name] = leaves[slot.leaf_index].reshape(slot.shape)
        else:
            named[slot.name] = state.get(slot.state_index)[slot.state_position]
    return named


def _to_array(value: Any, like: Any) -> Any:
    import jax.numpy as jnp

    if hasattr(value, "detach"):  # a torch tensor, if torch happens to be installed
        value = value.detach().cpu().numpy()
    return jnp.asarray(value, dtype=like.dtype)


def load_state_dict(model: Any, state_dict: Mapping[str, Any], *, state: Any = None,
                    key_map: KeyMap = None, strict: bool = True) -> Any:
    """A new model (and state, when given) with every weight placed by name.

    Raises StateDictError listing every missing key, unexpected key and shape mismatch
    when `strict`; otherwise loads what fits and keeps the rest as it was.
    Returns `model`, or `(model, state)` when `state` is given.
    """
    require_jax()
    import jax

    problems, pairing = _compare(model, state_dict, key_map, state)
    if problems and strict:
        raise StateDictError(problems)
    leaves, treedef = jax.tree_util.tree_flatten(model)
    for slot in _slots(model, state):
        key = pairing.get(slot.name)
        if key is None or _shape(state_dict[key]) != slot.shape:
            continue
        if slot.leaf_index is not None:
            old = leaves[slot.leaf_index]
            leaves[slot.leaf_index] = _to_array(state_dict[key], old).reshape(slot.equinox_shape)
        else:
            current = list(state.get(slot.state_index))
            current[slot.state_position] = _to_array(state_dict[key], current[slot.state_position])
            state = state.set(slot.state_index, tuple(current))
    new_model = jax.tree_util.tree_unflatten(treedef, leaves)
    return (new_model, state) if state is not None else new_model


def save_safetensors(model: Any, path: str, *, state: Any = None) -> None:
    """Write `state_dict(model, state)` to a .safetensors file."""
    import numpy as np

    save_file = _safetensors().save_file
    save_file({name: np.asarray(array) for name, array in state_dict(model, state).items()},
              str(path))


def load_safetensors(model: Any, path: str, *, state: Any = None, key_map: KeyMap = None,
                     strict: bool = True) -> Any:
    """`load_state_dict` from a .safetensors file (by name: its key order is sorted)."""
    return load_state_dict(model, _safetensors().load_file(str(path)), state=state,
                           key_map=key_map, strict=strict)


def _safetensors() -> Any:
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("safetensors is not installed: pip install safetensors") from None
    return safetensors.numpy
