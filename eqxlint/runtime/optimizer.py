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


def _is_none(node: Any) -> bool:
    return node is None


def stray_leaves(model: Any, opt_state: Any) -> list[StrayLeaf]:
    """Model leaves that have optimizer state but are not trainable arrays.

    A per-parameter subtree of the optimizer state (Adam's `mu`) is the model filtered
    some way: with None counted as a leaf it has the model's exact structure. Wherever
    such a subtree holds something other than None, `init` was given that model leaf;
    if the leaf is not a floating-point array, the first `update` fails (its gradient is
    None there). This holds whatever filter was used: the unfiltered model,
    `eqx.is_array`, or `lambda x: not callable(x)` keeping a Python float.
    """
    padded = jax.tree_util.tree_structure(model, is_leaf=_is_none)
    model_leaves = jax.tree_util.tree_flatten_with_path(model, is_leaf=_is_none)[0]
    stray: dict[str, StrayLeaf] = {}
    for subtree in _subtrees(opt_state):
        if type(subtree) is not type(model):
            continue
        try:
            if jax.tree_util.tree_structure(subtree, is_leaf=_is_none) != padded:
                continue
        except Exception:
            continue
        slots = jax.tree_util.tree_leaves(subtree, is_leaf=_is_none)
        for (keys, leaf), slot in zip(model_leaves, slots):
            if slot is None or leaf is None or is_inexact_array_like(leaf):
                continue
            path = format_path("model", keys)
            stray.setdefault(path, StrayLeaf(path, leaf, is_array_like(leaf)))
    return list(stray.values())
