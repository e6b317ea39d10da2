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
IGNORED_SUFFIXES_ALONE = ("num_batches_tracked",)  # the same, when the model is the BatchNorm
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
    optional: bool = False  # a statistic, when no state was given


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in getattr(value, "shape", ()))


def _conv_bias_names(model: Any) -> set[str]:
    import equinox as eqx

    from eqxlint.runtime.tree import modules_with_names

    conv_types = (eqx.nn.Conv, eqx.nn.ConvTranspose)
    return {_join(name, "bias")
            for _, name, module in modules_with_names(model, "model")
            if isinstance(module, conv_types) and getattr(module, "bias", None) is not None}


def _join(prefix: str, part: str) -> str:
    """`bn` + `running_mean` -> `bn.running_mean`; a model that is itself the layer: no dot."""
    return f"{prefix}.{part}" if prefix else part


def _batch_norms(model: Any) -> list[tuple[str, str, Any]]:
    import equinox as eqx

    from eqxlint.runtime.tree import modules_with_names

    return [(path, name, module) for path, name, module in modules_with_names(model, "model")
            if isinstance(module, eqx.nn.BatchNorm)]


def _batch_norm_index(module: Any) -> Any:
    index = getattr(module, "ema_state_index", None)
    return index if index is not None else getattr(module, "batch_state_index", None)


def _slots(model: Any, state: Any = None) -> list[_Slot]:
    """Every named array of the model, then its BatchNorm statistics.

    Without `state`, a statistic's shape is the BatchNorm's `(input_size,)`; such slots
    are `optional`: a checkpoint without statistics is fine.
    Raises ValueError when two arrays would get the same name.
    """
    import jax

    from eqxlint.runtime.tree import dotted_name, format_path, is_array_like

    conv_biases = _conv_bias_names(model)  # walks the modules first: refuses cycles
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
    for path, name, module in _batch_norms(model):
        index = _batch_norm_index(module)
        if index is None:
            continue
        statistics = state.get(index) if state is not None else None
        for position, suffix in enumerate(("running_mean", "running_var")):
            shape = (_shape(statistics[position]) if statistics is not None
                     else (int(module.input_size),))
            slots.append(_Slot(_join(name, suffix), f"state[{path}].{suffix}", shape, shape,
                               state_index=index, state_position=position,
                               optional=state is None))
    _refuse_collisions(slots)
    return slots


def _refuse_collisions(slots: list[_Slot]) -> None:
    """Two paths with one dotted name (`layers["a.b"]` and `layers["a"]["b"]`) cannot be told
    apart in a state dict: refuse rather than drop one silently."""
    paths: dict[str, list[str]] = {}
    for slot in slots:
        paths.setdefault(slot.name, []).append(slot.path)
    clashes = {name: where for name, where in paths.items() if len(where) > 1}
    if clashes:
        lines = "; ".join(f"`{name}` would name " + " and ".join(where)
                          for name, where in clashes.items())
        raise ValueError(
            f"the model's arrays do not have unique PyTorch-style names: {lines}. A dict key "
            f"holding a dot collides with a nested dict; rename the key (e.g. `a_b`)")


def _validate_state_dict(state_dict: Any) -> None:
    """A mapping from string names to arrays (NumPy, JAX, PyTorch, ...), or a clear TypeError."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"a state dict must be a mapping from names to arrays (e.g. "
                        f"`torch_model.state_dict()` or `safetensors.numpy.load_file(path)`), "
                        f"not a {type(state_dict).__name__}")
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"state dict keys must be strings such as 'layers.0.weight', "
                            f"got {key!r} ({type(key).__name__})")
        shape = getattr(value, "shape", None)
        if isinstance(shape, tuple) or (shape is not None and hasattr(shape, "__len__")):
            continue
        if hasattr(value, "numpy"):
            raise TypeError(f"state_dict[{key!r}] is a {type(value).__name__} with no `.shape`: "
                            f"call `.numpy()` on it first")
        raise TypeError(f"state_dict[{key!r}] is a {type(value).__name__}, not an array: "
                        f"convert it first (`np.asarray(value)`)")


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
             state: Any, loading: bool = False) -> tuple[list[Diagnostic], dict[str, str]]:
    """Problems, and the model-name -> state-dict-key pairing that was checked.

    One diagnostic per problem: each missing key, each unexpected key, each wrong shape.
    """
    _validate_state_dict(state_dict)
    problems: list[Diagnostic] = []
    pairing: dict[str, str] = {}
    slots = _slots(model, state)
    for slot in slots:
        key = _key_for(slot.name, key_map)
        if key not in state_dict:
            if not slot.optional:
                problems.append(_problem(slot.path, f"has no weight: the state dict has no key "
                                         f"`{key}`"))
            continue
        if slot.optional and loading:
            problems.append(_problem(
                slot.path, f"is where `{key}` belongs: a BatchNorm statistic lives in the "
                f"model's `eqx.nn.State`, not in the model, and no `state=` was given",
                "Load it into the state: `model, state = eqxlint.interop.load_state_dict("
                "model, state_dict, state=state)`"))
            pairing[slot.name] = key
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
    for key in state_dict:
        if key in used or key.endswith(IGNORED_SUFFIXES) or key in IGNORED_SUFFIXES_ALONE:
            continue
        problems.append(_problem("model", f"has no array named `{key}` (a key of the state "
                                 f"dict)", "Name it in `key_map`, or drop it"))
    return problems, pairing


def check_state_dict(model: Any, state_dict: Mapping[str, Any], *, state: Any = None,
                     key_map: KeyMap = None) -> Diagnostics:
    """Compare by name and shape; nothing is copied (only `.shape` is read).

    BatchNorm running statistics in the dict are checked against `state` when given
    (and must then be present), else against the layer's size.
    """
    require_jax()
    problems, _ = _compare(model, state_dict, key_map, state)
    return Diagnostics(problems)


def state_dict(model: Any, state: Any = None) -> dict[str, Any]:
    """Every array of the model under its PyTorch-style name, in PyTorch's layout."""
    require_jax()
    import jax

    from eqxlint.runtime.tree import is_array_like

    slots = _slots(model, state)
    leaves = jax.tree_util.tree_leaves(model)
    if any(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in leaves if is_array_like(leaf)):
        raise TypeError("state_dict needs a concrete model: this one is abstract "
                        "(`eqx.filter_eval_shape`) and holds no values, only shapes. "
                        "Fill it first: `model = load_state_dict(model, weights)`")
    named: dict[str, Any] = {}
    for slot in slots:
        if slot.optional:
            continue  # statistics are exported only from a given state
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

    problems, pairing = _compare(model, state_dict, key_map, state, loading=True)
    if problems and strict:
        raise StateDictError(problems)
    leaves, treedef = jax.tree_util.tree_flatten(model)
    for slot in _slots(model, state):
        key = pairing.get(slot.name)
        if key is None or slot.optional or _shape(state_dict[key]) != slot.shape:
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
