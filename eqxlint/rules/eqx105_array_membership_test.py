"""EQX105: `leaf in frozen` inside a filter predicate, where `frozen` holds arrays."""

from __future__ import annotations

import re
from typing import Iterator, Optional, Union

import libcst as cst

from eqxlint.rules.base import Bad, Finding, FirstLook, FixCase, Good, Rule
from eqxlint.semantics import CallSite, Semantics, Value, argument, descendants
from eqxlint.semantics.values import ARRAY_KINDS

# Functions whose callable argument receives tree leaves: (qualname, position, keyword).
LEAF_CALLBACKS = {
    "equinox.filter": (1, "filter_spec"),
    "equinox.partition": (1, "filter_spec"),
    "jax.tree.map": (0, "f"),
    "jax.tree_util.tree_map": (0, "f"),
    "jax.tree_map": (0, "f"),
}
Callback = Union[cst.Lambda, cst.FunctionDef]
# What a reported predicate looks like in the text: a lambda testing membership on
# its line, or the name of a def (that tests membership) given to a filter or a map.
_LAMBDA = re.compile(rb"\blambda\b[^:]*:")
_MEMBERSHIP = re.compile(rb"[\s)\]]in[\s(\[]")
_LEAF_CALL = re.compile(rb"(?:filter|partition|tree_map|tree\.map)\s*\(")
_RENAMED = re.compile(rb"\b(?:filter|partition|tree_map|map)\s+as\s")
_FOR_IN = re.compile(rb"\bfor\b[^\n]*?\sin\s")  # a loop's `in` is not a membership test
_NAMED_CALLBACK = re.compile(rb"(?:filter|partition)\s*\([^,()]+,\s*([A-Za-z_]\w*)\s*[,)]|"
                             rb"(?:tree_map|tree\.map)\s*\(\s*([A-Za-z_]\w*)\s*,")


class ArrayMembershipTest(Rule):
    code = "EQX105"
    name = "array-membership-test"
    summary = "`leaf in frozen` on arrays inside a filter predicate"
    fix_applicability = "unsafe"
    triggers = ((b" in ",), (b"filter", b"partition", b"tree_map", b"tree.map"))
    what_it_does = """
        Checks the predicate given to `eqx.filter`/`eqx.partition` and the function given
        to `jax.tree.map`/`jax.tree_util.tree_map` for `leaf in collection` or
        `leaf not in collection`, where `leaf` is one of its leaf parameters and the
        collection holds arrays: the result of `jax.tree.leaves(...)`, or a list, tuple
        or set of attribute paths (`[model.layers[0].weight, ...]`). Comparing an array
        leaf by value with numbers fails the same way, so attribute paths count even when
        their type is not visible.
    """
    why_bad = """
        `in` compares with `==`, and `==` on arrays is elementwise. Against an array of
        another shape it raises (the error is quoted below); against one of the same
        shape, `The truth value of an array with more than one element is ambiguous`;
        with one-element arrays it silently matches a *different* leaf that happens to
        hold the same value, and freezes the wrong weights.
    """
    example = """
        frozen = [model.layers[0].weight, model.layers[0].bias]
        spec = eqx.filter(model, lambda x: eqx.is_array(x) and x not in frozen)
    """
    use_instead = """
        spec = jax.tree.map(lambda _: eqx.is_array(_), model)
        spec = eqx.tree_at(lambda m: (m.layers[0].weight, m.layers[0].bias), spec,
                           replace=(False, False))
        params, static = eqx.partition(model, spec)
    """
    fix_safety = """
        Unsafe: the fix compares by identity, `not any(x is p for p in frozen)`, which is
        what membership was meant to test; it differs when `frozen` holds copies of the
        leaves rather than the leaves themselves. A boolean filter spec built with
        `eqx.tree_at` (above) is the robust way to freeze by position.
    """
    runtime = "None: this rule is static only."
    real_error = "ValueError: Incompatible shapes for broadcasting: shapes=[(8, 2), (8,)]"
    known_limits = """
        The collection must be visible as arrays: a parameter or a collection of unknown
        content is not flagged. Comparisons with several operators are reported without
        a fix.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx

            frozen = [model.layers[0].weight, model.layers[0].bias]
            spec = eqx.filter(model, lambda x: eqx.is_array(x) and x not in frozen)  # expect: EQX105
        """, "the headline case"),
        Bad("""
            import equinox as eqx
            import jax

            frozen_params = jax.tree_util.tree_leaves(model.encoder)
            mask = jax.tree.map(lambda p: p in frozen_params, model)  # expect: EQX105
        """, "tree.map over leaves"),
        Bad("""
            import equinox
            import jax

            def trainable(leaf):
                return equinox.is_inexact_array(leaf) and leaf not in jax.tree.leaves(model.head)  # expect: EQX105

            params, static = equinox.partition(model, trainable)
        """, "a def predicate, partition, inline leaves"),
        Bad("""
            from equinox import filter, is_array

            keep = (net.linear.weight,)
            trainable = filter(net, lambda leaf: is_array(leaf) and leaf in keep)  # expect: EQX105
        """, "a tuple, from-imports"),
        Bad("""
            import equinox as eqx
            import jax

            def freeze(model):
                frozen = {id(x) for x in []}
                frozen = jax.tree.leaves(model.embedding)
                return eqx.filter(model, lambda x: x not in frozen)  # expect: EQX105
        """, "rebound to leaves"),
        Bad("""
            import jax

            frozen = jax.tree_util.tree_leaves(backbone)
            grads = jax.tree_util.tree_map(
                lambda g, p: g * 0 if p in frozen else g,  # expect: EQX105
                grads, params,
            )
        """, "two-tree map, conditional expression"),
    )
    good_examples = (
        Good("""
            import equinox as eqx
            import jax.tree_util as jtu

            def filter_spec_leaves(tree, leaf_func):
                ids = jtu.tree_leaves(jtu.tree_map(id, tree))
                spec = jtu.tree_map(lambda x: id(x) in ids, leaf_func(tree))
                return spec
        """, "the leaves of `tree_map(id, tree)` are Python ints (feedbax's misc.py)"),
        Good("""
            import equinox as eqx
            import jax
            import jax.tree_util as jtu

            def tree_paths_of(where, tree):
                id_tree = jtu.tree_map(id, tree, is_leaf=lambda x: isinstance(x, Wrapper))
                node_ids = where(id_tree)
                return jtu.tree_map(lambda x: x if x in jax.tree_leaves(node_ids) else None,
                                    id_tree)
        """, "the leaves of a tree picked out of an id-tree are ints (feedbax's misc.py:379)"),
        Good("""
            import equinox as eqx
            import jax

            node_ids = jax.tree.leaves(jax.tree.map(id, model))
            spec = eqx.filter(model, lambda x: id(x) in node_ids)
        """, "ids through a name: `in` on a list of ints is correct"),
        Good("""
            import equinox as eqx

            frozen = [model.layers[0].weight, model.layers[0].bias]
            spec = eqx.filter(model, lambda x: eqx.is_array(x) and not any(x is p for p in frozen))
        """, "identity"),
        Good("""
            import equinox as eqx

            frozen_ids = {id(x) for x in jax.tree.leaves(model.encoder)}
            spec = eqx.filter(model, lambda x: eqx.is_array(x) and id(x) not in frozen_ids)
        """, "ids of the leaves"),
        Good("""
            import equinox as eqx

            names = ["weight", "bias"]
            spec = eqx.filter(model, lambda x: x in names)
        """, "a list of strings, not arrays"),
        Good("""
            import jax

            mask = jax.tree.map(lambda x: x in allowed, model)
        """, "a collection of unknown content"),
        Good("""
            import equinox as eqx

            def spec(frozen):
                return eqx.filter(model, lambda x: x not in frozen)
        """, "the collection is a parameter"),
        Good("""
            import equinox as eqx

            frozen = jax.tree.leaves(model.encoder)
            for x in frozen:
                if x in checked:
                    pass
        """, "not inside a filter predicate"),
        Good("""
            import jax

            frozen = jax.tree.leaves(model.encoder)
            mask = jax.tree.map(lambda x: x.shape in shapes, model)
        """, "the leaf's shape, not the leaf"),
        Good("""
            import equinox as eqx

            spec = eqx.filter(model, lambda x: type(x) in (int, float))
        """, "types"),
        Good("""
            import equinox as eqx

            frozen = jax.tree.leaves(model.encoder)
            spec = eqx.filter(model, eqx.is_array)
        """, "a predicate without membership"),
    )
    fix_examples = (
        FixCase("""
            import equinox as eqx

            frozen = [model.layers[0].weight]
            spec = eqx.filter(model, lambda x: eqx.is_array(x) and x not in frozen)
        """, """
            import equinox as eqx

            frozen = [model.layers[0].weight]
            spec = eqx.filter(model, lambda x: eqx.is_array(x) and not any(x is item for item in frozen))
        """),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Only where a lambda tests membership, or a def is given to a filter or a map.

        Sound: the check follows lambdas written inside the call's brackets (their
        whole body is scanned, up to the comma or bracket that ends it) and
        module-level defs passed by name.
        """
        if not super().may_fire(source, look):
            return False
        if _RENAMED.search(source):
            return True  # `from equinox import filter as keep`: the call is not recognisable
        for call in _LEAF_CALL.finditer(source):
            arguments = _bracketed(source, call.end())
            if any(_MEMBERSHIP.search(_lambda_body(arguments, match.end()))
                   for match in _LAMBDA.finditer(arguments)):
                return True
        for first, second in _NAMED_CALLBACK.findall(source):
            body = _module_level_def_body(source, first or second)
            if body is not None and _MEMBERSHIP.search(_FOR_IN.sub(b" ", body)):
                return True
        return False

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        definitions = _definitions(semantics.module)
        for site in semantics.calls:
            position = LEAF_CALLBACKS.get(site.qualname or "")
            if position is None:
                continue
            callback_node = argument(site.node, *position)
            callback: Optional[Callback] = None
            if isinstance(callback_node, cst.Lambda):
                callback = callback_node
            elif isinstance(callback_node, cst.Name) and callback_node.value in definitions:
                callback = definitions[callback_node.value]
            if callback is None:
                continue
            leaves = {param.name.value for param in callback.params.params}
            for comparison in descendants(callback.body, cst.Comparison):
                finding = _check_comparison(semantics, site, comparison, leaves)
                if finding is not None:
                    yield finding


def _module_level_def_body(source: bytes, name: bytes) -> Optional[bytes]:
    """The text of `def name(...)` at the top of the module, up to the next top-level line."""
    match = re.search(rb"(?m)^(?:async\s+)?def\s+" + re.escape(name) + rb"\s*\(", source)
    if match is None:
        return None
    end = re.compile(rb"(?m)^\S").search(source, match.end())
    return source[match.end():end.start() if end else len(source)]


def _bracketed(source: bytes, start: int) -> bytes:
    """The text from `start` to the bracket that closes the one just before it."""
    depth = 0
    for position in range(start, len(source)):
        char = source[position]
        if char in b"([{":
            depth += 1
        elif char in b")]}":
            if depth == 0:
                return source[start:position]
            depth -= 1
    return source[start:]


def _lambda_body(source: bytes, start: int) -> bytes:
    """The text of a lambda's body: up to the comma, bracket or line end that ends it."""
    depth = 0
    position = start
    while position < len(source):
        char = source[position:position + 1]
        if char in (b"(", b"[", b"{"):
            depth += 1
        elif char in (b")", b"]", b"}"):
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and char in (b",", b"\n"):
            break
        position += 1
    return source[start:position] + b" "


def _definitions(module: cst.Module) -> dict[str, cst.FunctionDef]:
    return {statement.name.value: statement for statement in module.body
            if isinstance(statement, cst.FunctionDef)}


def _check_comparison(semantics: Semantics, site: CallSite, comparison: cst.Comparison,
                      leaves: set[str]) -> Optional[Finding]:
    if not isinstance(comparison.left, cst.Name) or comparison.left.value not in leaves:
        return None
    for target in comparison.comparisons:
        if not isinstance(target.operator, (cst.In, cst.NotIn)):
            continue
        if not _holds_arrays(semantics, site, target.comparator):
            continue
        leaf = comparison.left.value
        collection = semantics.module.code_for_node(target.comparator)
        negated = isinstance(target.operator, cst.NotIn)
        item = "item" if leaf != "item" else "other"
        identity = f"{'not ' if negated else ''}any({leaf} is {item} for {item} in {collection})"
        replacements: tuple = ()
        if len(comparison.comparisons) == 1:
            replacements = ((comparison, cst.parse_expression(identity)),)
        operator = "not in" if negated else "in"
        return Finding(
            node=comparison,
            message=(f"`{leaf} {operator} {collection}` compares the leaf `{leaf}` with arrays "
                     f"by value (elementwise): it raises, or matches the wrong leaf"),
            hint=f"Compare by identity: `{identity}`, or build a boolean filter spec with "
                 f"`eqx.tree_at`",
            replacements=replacements,
            fix_message=f"Compare by identity: `{identity}`",
            anchor=site.node,
        )
    return None


def _holds_arrays(semantics: Semantics, site: CallSite, collection: cst.BaseExpression) -> bool:
    if isinstance(collection, (cst.List, cst.Tuple, cst.Set)):
        return bool(collection.elements) and all(
            _is_module_field(semantics, site, element.value) for element in collection.elements)
    if isinstance(collection, cst.Call):
        return _are_array_leaves(semantics.infer(collection, at=site), semantics, site)
    if isinstance(collection, cst.Name):
        binding = semantics.lookup(collection.value, site.scope, site.seq)
        if binding is None or binding.value is None:
            return False
        if isinstance(binding.value, (cst.List, cst.Tuple, cst.Set)) and binding.index is None:
            return _holds_arrays(semantics, site, binding.value)
        return _are_array_leaves(semantics.infer_binding(binding), semantics, site)
    return False


def _are_array_leaves(value: Optional[Value], semantics: Semantics, site: CallSite) -> bool:
    """Tree leaves that may be arrays (not, e.g., the ints of `tree_map(id, tree)`, nor
    of a tree picked out of such an id-tree: `node_ids = where(id_tree)`)."""
    if value is None or value.kind != "leaves":
        return False
    if value.leaf is not None:
        return value.leaf in ARRAY_KINDS
    source = value.source
    if isinstance(source, cst.Name):
        binding = semantics.lookup(source.value, site.scope, site.seq)
        picked = binding.value if binding is not None else None
        if isinstance(picked, cst.Call) and any(
                _is_id_tree(semantics.infer(arg.value, at=site)) for arg in picked.args):
            return False
    return True


def _is_id_tree(value: Optional[Value]) -> bool:
    return value is not None and value.kind == "mapped" and value.leaf not in ARRAY_KINDS


def _is_module_field(semantics: Semantics, site: CallSite, element: cst.BaseExpression) -> bool:
    """`model.layers[0].weight`: an attribute path from a local name (not an import)."""
    if not isinstance(element, cst.Attribute):
        return False
    node: cst.BaseExpression = element
    while isinstance(node, (cst.Attribute, cst.Subscript)):
        node = node.value
    return isinstance(node, cst.Name) and node.value not in semantics.imports
