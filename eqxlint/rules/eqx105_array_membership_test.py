"""EQX105: `leaf in frozen` inside a filter predicate, where `frozen` holds arrays."""

from __future__ import annotations

import ast
import re
from typing import Iterator, Optional, Union

import libcst as cst

from eqxlint.rules.base import Bad, Finding, FixCase, Good, Rule
from eqxlint.rules.first_look import (FirstLook, call_argument, calls_resolving_to,
                                      qualified_names, trigger_matches, walk)
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


class ArrayMembershipTest(Rule):
    code = "EQX105"
    name = "array-membership-test"
    summary = "`leaf in frozen` on arrays inside a filter predicate"
    fix_applicability = "unsafe"
    # may_fire also asks for a call of one of LEAF_CALLBACKS, however it is imported.
    triggers = ((b" in ",),)
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
        Bad("""
            import jax
            from jax.tree import map

            frozen = jax.tree.leaves(model.encoder)
            mask = map(lambda p: p not in frozen, model)  # expect: EQX105
        """, "jax.tree.map imported as `map`"),
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
        """The check's shape on Python's `ast`: a call of `eqx.filter`, `eqx.partition`,
        `jax.tree.map`, `jax.tree_util.tree_map` or `jax.tree_map` (as the file's imports
        resolve it: `from jax.tree import map` too), given a lambda, or the name of a
        module-level def, whose body compares one of its parameters with `in` or
        `not in` against a name, a call, or a list, tuple or set of attribute paths.

        Sound: the check looks at nothing else; which names and calls hold arrays is
        left to it. First the text: the `in`, the callee's own name (`filter`, `map`, ...:
        an alias is still imported under it), and such a call (the imports read from the
        text, a superset) whose brackets hold a lambda and an `in`, or the name of a
        module-level def followed by an `in`; brackets holding a string or a comment
        (which may hide a bracket) are taken to hold both. A file neither the text nor
        `ast` can read says yes.
        """
        if not super().may_fire(source, look) or _CALLEE_WORD.search(source) is None:
            return False
        look = look or FirstLook(source)
        table = look.text_imports()
        if table is None:
            table = look.imports()
            if table is None:
                return True
        relevant = {name: quals for name, quals in table.items()
                    if any(key == qual or key.startswith(qual + ".")
                           for qual in quals for key in LEAF_CALLBACKS)}
        sites = calls_resolving_to(source, relevant, LEAF_CALLBACKS.__contains__)
        rows: Optional[set[int]] = None
        if sites is not None:
            definitions = set(_MODULE_DEF.findall(source))
            sites = [at for at in sites if _may_give_callback(source, at, definitions)]
            if not sites:
                return False
            rows = {source.count(b"\n", 0, at) + 1 for at in sites}
        tree = look.tree()
        exact = look.imports()
        if tree is None or exact is None:
            return True
        return _membership_callback(tree, exact, rows)

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


_CALL_NAME = re.compile(rb"[A-Za-z_\x80-\xff][\w\x80-\xff]*")
# However a callee is imported or aliased, its own name is spelled somewhere in the file
# (`eqx.filter`, `from jax.tree_util import tree_map as tm`, `jax.tree.map`).
_CALLEE_WORD = re.compile(rb"\b(?:" + b"|".join(sorted({re.escape(qual.rsplit(".", 1)[-1].encode())
                                                       for qual in LEAF_CALLBACKS})) + rb")\b")
_MODULE_DEF = re.compile(rb"(?m)^(?:async[ \t]+)?def[ \t]+([A-Za-z_\x80-\xff][\w\x80-\xff]*)")


def _may_give_callback(source: bytes, at: int, definitions: set[bytes]) -> bool:
    """Whether the call whose callee starts at `at` may be given a callback that tests
    membership (a text test: see may_fire)."""
    opened = source.find(b"(", at)
    arguments = _bracketed(source, opened + 1)
    if b"#" in arguments or b"'" in arguments or b'"' in arguments:
        return True  # a bracket may hide in a string or a comment: the span is unsure
    if b"lambda" in arguments and trigger_matches(b" in ", arguments):
        return True
    for name in set(_CALL_NAME.findall(arguments)) & definitions:
        definition = re.search(rb"(?m)^(?:async[ \t]+)?def[ \t]+" + re.escape(name)
                               + rb"\b", source)
        if definition is not None and trigger_matches(b" in ", source[definition.end():]):
            return True
    return False


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


def _membership_callback(tree: ast.Module, table: dict[str, frozenset[str]],
                         rows: Optional[set[int]]) -> bool:
    """A leaf callback (see may_fire) that tests a parameter's membership. `rows`: the
    lines where the callee of such a call may start (None: anywhere); only the
    top-level statements spanning them are walked."""
    definitions: dict[str, list[ast.AST]] = {}
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            definitions.setdefault(statement.name, []).append(statement)
    statements = [statement for statement in tree.body if rows is None or any(
        _first_row(statement) <= row <= (statement.end_lineno or statement.lineno)
        for row in rows)]
    for node in (node for statement in statements for node in walk(statement)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, (ast.Name, ast.Attribute)):
            continue
        for qual in qualified_names(node.func, table):
            position = LEAF_CALLBACKS.get(qual)
            if position is None:
                continue
            given = call_argument(node, *position)
            callbacks = [given] if isinstance(given, ast.Lambda) else \
                definitions.get(given.id, []) if isinstance(given, ast.Name) else []
            if any(_tests_membership(callback) for callback in callbacks):
                return True
    return False


def _first_row(statement: ast.stmt) -> int:
    """A statement's first line, its decorators' included."""
    return min([statement.lineno] + [decorator.lineno for decorator in
                                     getattr(statement, "decorator_list", [])])


def _tests_membership(callback: ast.AST) -> bool:
    """`param in <name, call, or display of attributes>` in the callback's body
    (libcst's `params.params`: the positional-or-keyword parameters)."""
    leaves = {arg.arg for arg in callback.args.args}  # type: ignore[attr-defined]
    body = callback.body  # type: ignore[attr-defined]
    for part in body if isinstance(body, list) else [body]:
        for node in walk(part):
            if not (isinstance(node, ast.Compare) and isinstance(node.left, ast.Name)
                    and node.left.id in leaves):
                continue
            for operator, comparator in zip(node.ops, node.comparators):
                if not isinstance(operator, (ast.In, ast.NotIn)):
                    continue
                if isinstance(comparator, (ast.Name, ast.Call)):
                    return True
                if isinstance(comparator, (ast.List, ast.Tuple, ast.Set)) and comparator.elts \
                        and all(isinstance(e, ast.Attribute) for e in comparator.elts):
                    return True
    return False
