"""Walking live pytrees with paths written the way a user indexes them.

`model.layers[0].weight`, `model.blocks["attn"].query_proj` for reports;
`layers.0.weight` for PyTorch-style state-dict names.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Iterator, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

KeyPath = Sequence[Any]


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return json.dumps(key)
    return repr(key)


def format_path(root: str, keys: KeyPath) -> str:
    """jax key entries -> `model.layers[0].weight`."""
    text = root
    for key in keys:
        if isinstance(key, jax.tree_util.GetAttrKey):
            text += f".{key.name}"
        elif isinstance(key, jax.tree_util.SequenceKey):
            text += f"[{key.idx}]"
        elif isinstance(key, jax.tree_util.DictKey):
            text += f"[{_key_text(key.key)}]"
        elif isinstance(key, jax.tree_util.FlattenedIndexKey):
            text += f"[{key.key}]"
        else:
            text += str(key)
    return text


def dotted_name(keys: KeyPath) -> str:
    """jax key entries -> `layers.0.weight`, as PyTorch names parameters."""
    parts = []
    for key in keys:
        if isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(key.name)
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.FlattenedIndexKey):
            parts.append(str(key.key))
        else:
            parts.append(str(key).strip(".[]"))
    return ".".join(parts)


def leaves_with_paths(tree: Any, root: str) -> list[tuple[str, Any]]:
    """Every leaf with its path (None is an empty subtree, as jax sees it)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(format_path(root, keys), leaf) for keys, leaf in flat]


def modules_with_paths(tree: Any, root: str) -> Iterator[tuple[str, eqx.Module]]:
    """Every eqx.Module inside `tree` (the tree itself included), outermost first."""
    for path, _, module in modules_with_names(tree, root):
        yield path, module


def modules_with_names(tree: Any, root: str) -> Iterator[tuple[str, str, eqx.Module]]:
    """(`model.layers[0]`, `layers.0`, module) for every eqx.Module inside `tree`.

    Raises ValueError when a module, list or dict contains itself: jax would recurse
    forever (or overflow the stack) flattening it.
    """
    pending: list[tuple[str, str, Any, frozenset[int]]] = [(root, "", tree, frozenset())]
    while pending:
        path, name, node, ancestors = pending.pop()
        if isinstance(node, (eqx.Module, list, tuple, dict)):
            if id(node) in ancestors:
                raise ValueError(
                    f"`{path}` contains itself: a pytree must be a tree, and jax cannot "
                    f"flatten a cycle. Store the inner object once, not a reference back to "
                    f"its container")
            ancestors = ancestors | {id(node)}
        if isinstance(node, eqx.Module):
            yield path, name, node
            children = [(f"{path}.{f.name}", _join(name, f.name), getattr(node, f.name, None))
                        for f in dataclasses.fields(node)]
        elif isinstance(node, (list, tuple)):
            children = [(f"{path}[{i}]", _join(name, str(i)), item) for i, item in enumerate(node)]
        elif isinstance(node, dict):
            children = [(f"{path}[{_key_text(key)}]", _join(name, str(key)), item)
                        for key, item in node.items()]
        else:
            continue
        pending.extend((*child, ancestors) for child in reversed(children))


def _join(prefix: str, part: str) -> str:
    return f"{prefix}.{part}" if prefix else part


def is_array_like(leaf: Any) -> bool:
    """An array, or the abstract stand-in for one (`eqx.filter_eval_shape`)."""
    return eqx.is_array(leaf) or isinstance(leaf, jax.ShapeDtypeStruct)


def is_inexact_array_like(leaf: Any) -> bool:
    """What `eqx.filter_grad` differentiates: floating and complex arrays."""
    return is_array_like(leaf) and jnp.issubdtype(leaf.dtype, jnp.inexact)


def is_tracer(leaf: Any) -> bool:
    return isinstance(leaf, jax.core.Tracer)


def abstract(tree: Any) -> Any:
    """Shapes and dtypes only: what `jax.eval_shape` needs, touching no data."""
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype) if is_array_like(x) else x, tree)


def allows_none(annotation: Any) -> bool:
    """True when a field annotated so may hold None (or when that cannot be told)."""
    if annotation is None or annotation is type(None) or annotation is typing.Any \
            or annotation is object:
        return True
    if isinstance(annotation, str):
        return any(word in annotation for word in ("None", "Optional", "Any", "object"))
    if isinstance(annotation, typing.TypeVar):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        return any(allows_none(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return allows_none(typing.get_args(annotation)[0])
    if isinstance(annotation, type) or origin is not None:
        return False
    return True  # something exotic (a jaxtyping string, a forward reference): do not guess


def describe(leaf: Any) -> str:
    """`a float`, `a function`, `an int32 array`."""
    if is_array_like(leaf):
        return f"a {leaf.dtype} array of shape {tuple(leaf.shape)}"
    if callable(leaf) and not isinstance(leaf, type):
        return "a function"
    kind = type(leaf).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return f"{article} `{kind}`"
