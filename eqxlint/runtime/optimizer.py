"""What an optimizer state says about how it was initialised.

optax keeps per-parameter state (Adam's `mu`, `nu`) as trees shaped like what
`optim.init` was given. Finding those subtrees in `opt_state` and comparing their
structure with the model tells whether `init` got the unfiltered model (EQX102),
`eqx.filter(model, eqx.is_array)` with integer arrays in it (EQX104), or the
trainable arrays only (correct).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, NamedTuple

import equinox as eqx
import jax

from eqxlint.runtime.tree import format_path, is_array_like, is_inexact_array_like


class StrayLeaf(NamedTuple):
    """A model leaf that the optimizer keeps state for, although it is not trained."""

    path: str  # model.layers[1].p
    leaf: Any
    integer_array: bool  # an int/bool array (EQX104) rather than a non-array (EQX102)


def _subtrees(node: Any) -> Iterator[Any]:
    """Every container node of an optimizer state, outermost first."""
    yield node
    if isinstance(node, (list, tuple)):
        children = list(node)
    elif isinstance(node, dict):
        children = list(node.values())
    elif isinstance(node, eqx.Module):
        children = [getattr(node, f.name, None) for f in dataclasses.fields(node)]
    else:
        return
    for child in children:
        yield from _subtrees(child)


def stray_leaves(model: Any, opt_state: Any) -> list[StrayLeaf]:
    """Model leaves that have optimizer state but are not trainable arrays."""
    model_def = jax.tree_util.tree_structure(model)
    trainable_def = jax.tree_util.tree_structure(eqx.filter(model, is_inexact_array_like))
    arrays_def = jax.tree_util.tree_structure(eqx.filter(model, is_array_like))
    suspicious = {model_def, arrays_def} - {trainable_def}
    if not suspicious:
        return []
    found_defs = set()
    for subtree in _subtrees(opt_state):
        try:
            definition = jax.tree_util.tree_structure(subtree)
        except Exception:
            continue
        if definition in suspicious:
            found_defs.add(definition)
    if not found_defs:
        return []
    keep_non_arrays = model_def in found_defs
    stray = []
    for keys, leaf in jax.tree_util.tree_flatten_with_path(model)[0]:
        if is_inexact_array_like(leaf):
            continue
        if is_array_like(leaf):
            stray.append(StrayLeaf(format_path("model", keys), leaf, True))
        elif keep_non_arrays:
            stray.append(StrayLeaf(format_path("model", keys), leaf, False))
    return stray
