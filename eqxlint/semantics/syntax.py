"""Questions about syntax alone: names, arguments, literal indices, walking a tree.

Nothing here knows what a name refers to; that is the business of scopes.py and
inference.py.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, TypeVar

import libcst as cst


def dotted_name(node: cst.BaseExpression) -> Optional[str]:
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


def positional_args(call: cst.Call) -> list[cst.BaseExpression]:
    return [arg.value for arg in call.args if arg.keyword is None and not arg.star]


def keyword_arg(call: cst.Call, name: str) -> Optional[cst.BaseExpression]:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    return None


def argument(call: cst.Call, position: int, name: str) -> Optional[cst.BaseExpression]:
    """The argument at `position` or passed as `name=`."""
    args = positional_args(call)
    if position < len(args):
        return args[position]
    return keyword_arg(call, name)


def has_star_args(call: cst.Call) -> bool:
    return any(arg.star for arg in call.args)


def literal_index(node: cst.Subscript) -> Optional[int]:
    """`x[2]`, `x[-1]` -> 2, -1; anything else -> None."""
    if len(node.slice) != 1:
        return None
    element = node.slice[0].slice
    if not isinstance(element, cst.Index):
        return None
    value = element.value
    negative = False
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus):
        negative, value = True, value.expression
    if isinstance(value, cst.Integer):
        number = int(value.value, 0)
        return -number if negative else number
    return None


def parameters_of(function: cst.FunctionDef | cst.Lambda) -> list[cst.Param]:
    """Positional-or-keyword parameters in order (positional-only first)."""
    return list(function.params.posonly_params) + list(function.params.params)


# Fields that hold only layout (whitespace, commas, parentheses): never walked.
_LAYOUT_FIELDS = {"lpar", "rpar", "comma", "dot", "semicolon", "leading_lines",
                  "lines_after_decorators", "header", "footer", "trailing_whitespace", "equal",
                  "colon", "newline", "operator", "first_line", "empty_lines", "indent",
                  "asynchronous"}
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _concrete_node_types() -> frozenset[type]:
    """Every class of node libcst can build. `type(x) in NODE_TYPES` answers what
    `isinstance(x, cst.CSTNode)` does, without the ABC machinery (measured: a tenth of
    the Semantics pass went to ABC instance checks)."""
    found: set[type] = set()
    pending: list[type] = [cst.CSTNode]
    while pending:
        kind = pending.pop()
        for sub in kind.__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return frozenset(found)


NODE_TYPES = _concrete_node_types()


def child_fields(node_type: type) -> tuple[str, ...]:
    names = _CHILD_FIELDS.get(node_type)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(node_type)
                      if f.name not in _LAYOUT_FIELDS and not f.name.startswith("whitespace"))
        _CHILD_FIELDS[node_type] = names
    return names


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """A node's children that carry meaning (no whitespace, commas or parentheses)."""
    node_types = NODE_TYPES
    found: list[cst.CSTNode] = []
    for name in child_fields(type(node)):
        value = getattr(node, name)
        kind = type(value)
        if kind in node_types:
            found.append(value)
        elif kind is list or kind is tuple:
            found.extend(item for item in value if type(item) in node_types)
    return found


NodeT = TypeVar("NodeT", bound=cst.CSTNode)


def descendants(root: cst.CSTNode, kind: type[NodeT]) -> list[NodeT]:
    """Every node of `kind` below `root` (and `root` itself), in source order.

    The same field walk as the Semantics pass: much cheaper than a CSTVisitor.
    """
    found: list[NodeT] = []
    pending: list[cst.CSTNode] = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, kind):
            found.append(node)
        below = children(node)
        below.reverse()
        pending.extend(below)
    return found
