"""EQX101: `eqx.apply_updates` given a filtered model, and its result used as the model."""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from eqxlint.diagnostics import Diagnostic
from eqxlint.rules.base import Bad, Finding, FixCase, Good, Rule
from eqxlint.rules.first_look import (BETWEEN_TOKENS, FirstLook, ast_dotted_name, call_argument,
                                      import_spellings, mentioned_in_project, statement_blocks,
                                      trigger_matches, walk)
from eqxlint.rules.value_flow import FILTERS, FILTER_WORDS, may_be_filtered
from eqxlint.semantics import Binding, CallSite, Semantics, Value, argument, dotted_name
from eqxlint.semantics.values import TREE_MAP_FUNCTIONS

if TYPE_CHECKING:
    from eqxlint.runtime.checker import RuntimeContext


class ApplyUpdatesToFilteredModel(Rule):
    code = "EQX101"
    name = "apply-updates-to-filtered-model"
    summary = "`eqx.apply_updates` on a filtered model turns every non-array field into None"
    fix_applicability = "safe"
    # `eqx.apply_updates` or a tree map (`jax.tree.map`, `from jax.tree import map`).
    triggers = ((b"apply_updates", b"tree_map", b"map"),)
    what_it_does = """
        Checks for `eqx.apply_updates(params, updates)` where `params` is the result of
        `eqx.filter(model, ...)` or the first half of `eqx.partition(model, ...)` (inline,
        or through a name bound to either), and the result is then used as the model
        instead of being combined back with `eqx.combine(new_params, static)`.
    """
    why_bad = """
        A filtered model has `None` wherever the filter said no: activation functions,
        `Dropout`'s rate, `None`-able submodules, Python scalars. `apply_updates` returns a
        tree of the same shape, so every one of those fields is `None` in the "updated
        model". Nothing fails at the update: the error (below) comes the next time the
        model is called, many lines or steps later.

        `eqx.apply_updates` does not need a filtered model: the updates from
        `eqx.filter_grad` are `None` where the model holds non-arrays, and `apply_updates`
        leaves those fields as they are.
    """
    example = """
        updates, opt_state = optim.update(grads, opt_state)
        model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)
    """
    use_instead = """
        updates, opt_state = optim.update(grads, opt_state)
        model = eqx.apply_updates(model, updates)
    """
    fix_safety = """
        Safe. The fix passes the unfiltered model (`eqx.apply_updates(model, updates)`):
        the array leaves get exactly the same updates, and the non-array fields keep their
        values instead of becoming `None`. When the filtered tree comes through a name, the
        fix is offered only if the filtered model has not been rebound in between.
    """
    runtime = """
        `check_model(model)` / `assert_trainable(model)` report every module field that is
        `None` although its class does not allow `None` there (its annotation is not
        `Optional` and it has no `None` default), with its pytree path, e.g.
        `model.layers[0].activation`. `check_step(step, model, ...)` traces the step on
        shapes and reports every leaf that is a function or a Python value in the model
        given and None in the model returned.
    """
    real_error = "TypeError: 'NoneType' object is not callable"
    known_limits = """
        The result must be assigned or returned: a filtered tree passed straight into
        another function is not flagged (that function may combine it). The rule is quiet
        when the result name is given to `eqx.combine` anywhere in the same function,
        including earlier in a loop body.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx

            def step(model, grads, optim, opt_state):
                updates, opt_state = optim.update(grads, opt_state)
                model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)  # expect: EQX101
                return model, opt_state
        """, "inline filter"),
        Bad("""
            import equinox

            def step(model, updates):
                params = equinox.filter(model, equinox.is_inexact_array)
                new_model = equinox.apply_updates(params, updates)  # expect: EQX101
                return new_model
        """, "filtered tree bound to a name first"),
        Bad("""
            from equinox import apply_updates, filter as eqx_filter, is_array

            def step(model, updates):
                return apply_updates(eqx_filter(model, is_array), updates)  # expect: EQX101
        """, "from-imports with an alias, result returned"),
        Bad("""
            import equinox as eqx

            def step(model, grads, opt_state):
                params = eqx.filter(model, eqx.is_array)
                updates, opt_state = optim.update(grads, opt_state, params)
                return eqx.apply_updates(params, updates), opt_state  # expect: EQX101
        """, "returned as an item of a tuple"),
        Bad("""
            import equinox as eqx

            def step(model, updates):
                params, static = eqx.partition(model, eqx.is_array)
                model = eqx.apply_updates(params, updates)  # expect: EQX101
                return model
        """, "first half of partition, static half dropped"),
        Bad("""
            import equinox as eqx

            def step(model, updates):
                model = eqx.apply_updates(eqx.partition(model, eqx.is_array)[0], updates)  # expect: EQX101
                return model
        """, "partition indexed inline"),
        Bad("""
            import equinox as eqx

            class Trainer:
                def step(self, grads):
                    updates, self.opt_state = self.optim.update(grads, self.opt_state)
                    self.model = eqx.apply_updates(  # expect: EQX101
                        eqx.filter(self.model, eqx.is_array), updates
                    )
        """, "method, multi-line call, attribute target"),
        Bad("""
            import equinox as eqx
            import jax

            def sgd_step(model, grads, lr):
                model = jax.tree.map(lambda p, g: p - lr * g,  # expect: EQX101
                                     eqx.filter(model, eqx.is_array), grads)
                return model
        """, "the update done by hand with jax.tree.map, bound back to the model"),
        Bad("""
            import equinox as eqx
            import jax.tree_util as jtu

            params = eqx.filter(model, eqx.is_inexact_array)
            for batch in batches:
                grads = eqx.filter_grad(loss)(model, batch)
                model = jtu.tree_map(lambda p, g: p - 1e-3 * g, params, grads)  # expect: EQX101
        """, "by hand through a name, with jax.tree_util"),
        Bad("""
            import equinox as eqx

            def step(model, updates, x):
                params, static = eqx.partition(model, eqx.is_array)
                new_model = eqx.apply_updates(params, updates)  # expect: EQX101
                return new_model(x)
        """, "the updated tree is called as the model"),
        Bad("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            optim = optax.adam(1e-3)
            params = eqx.filter(model, eqx.is_inexact_array)
            opt_state = optim.init(params)
            for batch in batches:
                grads = eqx.filter_grad(loss)(model, batch)
                updates, opt_state = optim.update(grads, opt_state)
                model = eqx.apply_updates(params, updates)  # expect: EQX101
        """, "script-level training loop"),
        Bad("""
            import equinox as eqx
            from jax.tree import map as tmap

            def sgd(model, grads):
                model = tmap(lambda p, g: p - 0.1 * g, eqx.filter(model, eqx.is_array), grads)  # expect: EQX101
                return model
        """, "the tree map imported under another name"),
        Bad("""
            import equinox as eqx
            import jax

            def descend(params, grads):
                model = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)  # expect: EQX101
                return model

            model = descend(eqx.filter(model, eqx.is_array), grads)
        """, "the filtered tree given by the caller, bound to the name of what it filtered"),
    )
    good_examples = (
        Good("""
            import equinox as eqx

            def step(model, grads, optim, opt_state):
                updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_array))
                model = eqx.apply_updates(model, updates)
                return model, opt_state
        """, "the filter is only given to optim.update"),
        Good("""
            import equinox as eqx

            def step(model, updates):
                params, static = eqx.partition(model, eqx.is_array)
                params = eqx.apply_updates(params, updates)
                model = eqx.combine(params, static)
                return model
        """, "the partition pattern, combined back"),
        Good("""
            import equinox as eqx

            def step(params, static, updates):
                new_params = eqx.apply_updates(params, updates)
                return eqx.combine(new_params, static)
        """, "params arrive as an argument: the code does not say they are filtered"),
        Good("""
            import equinox as eqx

            def step(model, updates):
                diff, static = eqx.partition(model, eqx.is_inexact_array)
                return eqx.combine(eqx.apply_updates(diff, updates), static)
        """, "combined inline"),
        Good("""
            import equinox as eqx

            params, static = eqx.partition(model, eqx.is_array)
            for batch in batches:
                model = eqx.combine(params, static)
                grads = eqx.filter_grad(loss)(model, batch)
                updates, opt_state = optim.update(grads, opt_state)
                params = eqx.apply_updates(params, updates)
        """, "combined at the top of the loop body"),
        Good("""
            import optax

            params = optax.apply_updates(params, updates)
        """, "optax.apply_updates on a params dict"),
        Good("""
            import equinox as eqx
            import jax

            def update(params, grads, opt_state):
                updates, opt_state = optim.update(grads, opt_state, params)
                new_params = eqx.apply_updates(params, updates)
                return new_params, opt_state

            params, static = eqx.partition(model, eqx.is_inexact_array)
            for batch in batches:
                grads = jax.grad(loss)(params, static, batch)
                params, opt_state = update(params, grads, opt_state)
                model = eqx.combine(params, static)
        """, "a helper updates params its caller partitioned; the caller combines them"),
        Good("""
            import equinox as eqx

            def step(model, updates):
                params, static = eqx.partition(model, eqx.is_array)
                new_params = eqx.apply_updates(params, updates)
                return new_params, static
        """, "the static half is returned beside the params: the caller can combine"),
        Good("""
            import equinox as eqx

            def step(model, updates):
                params, static = eqx.partition(model, eqx.is_array)
                return eqx.apply_updates(params, updates), static
        """, "the update itself returned beside the static half"),
        Good("""
            import equinox as eqx
            import jax

            params = eqx.filter(model, eqx.is_array)
            params = jax.tree.map(lambda p, g: p - 1e-3 * g, params, grads)
            model = eqx.combine(params, eqx.filter(model, eqx.is_array, inverse=True))
        """, "the update by hand on the params, combined back"),
        Good("""
            import equinox as eqx
            import jax

            def scale(model):
                arrays = eqx.filter(model, eqx.is_array)
                doubled = jax.tree.map(lambda p: 2 * p, arrays)
                return eqx.combine(doubled, model)
        """, "tree_map over a filtered tree bound to a fresh name and combined"),
        Good("""
            from equinox import apply_updates, filter

            def step(model, updates):
                filtered = filter(model, lambda x: True)
                model = apply_updates(model, updates)
                return model
        """, "a filtered tree exists but is not what is updated"),
        Good("""
            import equinox as eqx

            def step(model, updates):
                params = eqx.filter(model, eqx.is_array)
                params = params_from_checkpoint()
                model = eqx.apply_updates(params, updates)
                return model
        """, "the name was rebound to something the code does not know"),
        Good("""
            import equinox as eqx

            def filter(tree, spec):
                return tree

            model = eqx.apply_updates(filter(model, eqx.is_array), updates)
        """, "a local function named filter is not eqx.filter"),
        Good("""
            import equinox as eqx
            import jax.tree_util as jtu

            def to_float(tree):
                tree = jtu.tree_map(lambda x: x * 1.0, tree)
                return tree

            params = eqx.filter(model, eqx.is_array)
            model = to_float(model)
        """, "a tree map over what the callers give: never a filtered tree"),
    )
    fix_examples = (
        FixCase("""
            import equinox as eqx

            model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)  # keep me
        """, """
            import equinox as eqx

            model = eqx.apply_updates(model, updates)  # keep me
        """),
        FixCase("""
            import equinox as eqx

            def step(model, updates):
                params, static = eqx.partition(model, eqx.is_array)
                model = eqx.apply_updates(params, updates)
                return model
        """, """
            import equinox as eqx

            def step(model, updates):
                params, static = eqx.partition(model, eqx.is_array)
                model = eqx.apply_updates(model, updates)
                return model
        """),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Is there an `eqx.apply_updates` or tree map whose result can take a filtered
        model's place?

        Python's `ast` of the file is searched for the statements the check reports, the
        callees read from the imports as `Semantics.qualname` reads them
        (`import_spellings`): `target = tree_map(...)` (the check wants the target to be
        the filtered model's name), `targets = eqx.apply_updates(...)` (annotated too;
        every target a dotted name), and `return eqx.apply_updates(...)` (or inside a
        returned or assigned tuple). A filtered tree comes from `eqx.filter`/`eqx.partition`
        called in this file (spelled through its imports) or in a project module it imports
        (which must then write `filter(`/`partition(`, or call a name it imports one of
        them as, with the target's spelling as the first argument). With only the file's own filter
        calls, the model a filtered tree stands for is one of their first arguments, so:
        - a tree map needs its target to be one of them;
        - an assigned update needs a target to be one of them, or to be called somewhere
          in the file, or (with a filter call in the file) to be returned somewhere;
        - a returned update needs a filter call in the file.
        A file `ast` cannot parse goes to the full check.
        """
        if not super().may_fire(source, look):
            return False
        # First the text: an update or a tree map (`tree_map`, `jax.tree.map`, `from
        # jax.tree import map`), and a filter here or in a project module it imports.
        if b"apply_updates" not in source and b"tree_map" not in source and \
                not (b"tree" in source and b"map" in source
                     and _TREE.search(source) and _MAP.search(source)):
            return False
        if not FILTER_WORDS.search(source) and \
                not mentioned_in_project(source, look, FILTER_WORDS):  # perhaps aliased
            return False
        tree = (look or FirstLook(source)).tree()
        if tree is None:
            return True
        return _may_fire(source, look, tree)

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for site in semantics.calls:
            if site.qualname == "equinox.apply_updates":
                tree = argument(site.node, 0, "model")
            elif site.qualname in TREE_MAP_FUNCTIONS:
                tree = argument(site.node, 1, "tree")
            else:
                continue
            if tree is None:
                continue
            filtered = semantics.infer(tree, at=site)
            if filtered is None or filtered.kind != "filtered":
                continue
            if site.qualname in TREE_MAP_FUNCTIONS:
                if _bound_back_to_source(site, filtered):
                    yield _by_hand_finding(semantics, site, filtered)
                continue
            if not _result_used_as_model(semantics, site, filtered):
                continue
            unfiltered = _unfiltered_replacement(semantics, site, tree, filtered)
            source = filtered.source
            model_text = semantics.module.code_for_node(source) if source is not None else "model"
            updates = argument(site.node, 1, "updates")
            updates_text = semantics.module.code_for_node(updates) if updates is not None \
                else "updates"
            hint = f"Pass the unfiltered model: `eqx.apply_updates({model_text}, {updates_text})`"
            yield Finding(
                node=site.node,
                message=(
                    "`eqx.apply_updates` is given a filtered model, so every non-array field "
                    "(activations, Dropout rates, Python scalars) of its result is None"
                ),
                hint=hint,
                replacements=((tree, unfiltered),) if unfiltered is not None else (),
                fix_message=f"Replace with the unfiltered model `{model_text}`",
            )

    def check_runtime(self, context: "RuntimeContext") -> Iterator[Diagnostic]:
        from eqxlint.runtime.tree import allows_none

        for path, module in context.modules:
            cls = type(module).__name__
            for spec in dataclasses.fields(module):
                if spec.metadata.get("static") or spec.default is None:
                    continue
                if getattr(module, spec.name, ...) is not None or allows_none(spec.type):
                    continue
                yield context.diagnostic(
                    self, f"{path}.{spec.name}",
                    f"is None, but `{cls}.{spec.name}` is annotated "
                    f"`{_short_annotation(spec.type)}`: the model was rebuilt from a filtered "
                    f"tree, which sets every non-array field to None",
                    "Update the unfiltered model: `model = eqx.apply_updates(model, updates)` "
                    "(or combine back: `eqx.combine(params, static)`)")


def _short_annotation(annotation: object) -> str:
    """`collections.abc.Hashable | typing.Sequence[int]` -> `Hashable | Sequence[int]`."""
    import re

    text = annotation if isinstance(annotation, str) else \
        getattr(annotation, "__name__", None) if isinstance(annotation, type) else repr(annotation)
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", str(text))


def _result_used_as_model(semantics: Semantics, site: CallSite, filtered: Value) -> bool:
    """True when the updated filtered tree takes the model's place and is never combined back.

    It does when it is bound back to the name of the model it was filtered from, bound
    to a name that is then called, or returned from the function that filtered it
    (its caller cannot combine it: the static half stayed here, or never existed).
    It does not when it is combined, or when the filtering happened elsewhere (the
    caller that gave us the params holds the static half and combines them).
    """
    parent = site.parent
    if isinstance(parent, cst.Call) and semantics.qualname(parent.func) == "equinox.combine":
        return False
    source_name = dotted_name(filtered.source) if filtered.source is not None else None
    returned = _return_of(semantics, site)
    if returned is not None:
        return _lost_when_returned(semantics, site, filtered, returned)
    if not isinstance(parent, (cst.Assign, cst.AnnAssign)):
        return False
    targets: list[cst.BaseExpression] = (
        [t.target for t in parent.targets] if isinstance(parent, cst.Assign) else [parent.target]
    )
    names = [dotted_name(target) for target in targets]
    if any(name is None for name in names):
        return False
    if _combined_in_scope(semantics, site, names):
        return False
    if source_name is not None and source_name in names:
        return True  # `model = eqx.apply_updates(eqx.filter(model, ...), ...)`
    later = [other for other in semantics.calls if other.scope is site.scope
             and other.seq > site.seq]
    for other in later:
        if dotted_name(other.node.func) in names:
            return True  # the updated tree is called as the model
    for statement in semantics.returns.get(id(site.scope.node), []):
        if statement.value is not None and any(
                dotted_name(node) in names for node in _returned_items(statement.value)):
            return _lost_when_returned(semantics, site, filtered, statement)
    return False


def _bound_back_to_source(site: CallSite, filtered: Value) -> bool:
    """`model = jax.tree.map(f, eqx.filter(model, ...), grads)`: the model is replaced."""
    parent = site.parent
    if not isinstance(parent, cst.Assign) or filtered.source is None:
        return False
    source_name = dotted_name(filtered.source)
    return source_name is not None and any(
        dotted_name(target.target) == source_name for target in parent.targets)


def _by_hand_finding(semantics: Semantics, site: CallSite, filtered: Value) -> Finding:
    function = site.qualname or "jax.tree.map"
    model_text = semantics.code_of(filtered.source) if filtered.source is not None else "model"
    return Finding(
        node=site.node,
        message=(f"`{function}` over a filtered model replaces `{model_text}`: every non-array "
                 f"field (activations, Dropout rates, Python scalars) of the new "
                 f"`{model_text}` is None"),
        hint=(f"Update the arrays and keep the rest: `{model_text} = eqx.apply_updates("
              f"{model_text}, jax.tree.map(lambda g: -lr * g, grads))`, or partition and "
              f"`eqx.combine(new_params, static)`"),
    )


def _return_of(semantics: Semantics, site: CallSite) -> Optional[cst.Return]:
    """The `return` statement of the call's function that returns the call's result,
    alone or as an item of a tuple (`return eqx.apply_updates(p, u), opt_state`)."""
    for statement in semantics.returns.get(id(site.scope.node), []):
        if statement.value is not None and any(
                item is site.node for item in _returned_items(statement.value)):
            return statement
    return None


def _returned_items(value: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(value, cst.Tuple):
        return [element.value for element in value.elements]
    return [value]


def _lost_when_returned(semantics: Semantics, site: CallSite, filtered: Value,
                        statement: Optional[cst.CSTNode]) -> bool:
    """Returned to the caller: wrong only when this function did the filtering and does
    not hand the caller the static half to combine with."""
    filter_call = filtered.node
    filter_site = semantics.site(filter_call) if isinstance(filter_call, cst.Call) else None
    if filter_site is None or not filter_site.scope.is_within(site.scope):
        return False  # filtered by a caller or an enclosing scope: it holds the static half
    if filter_site.qualname == "equinox.partition" and isinstance(statement, cst.Return) \
            and statement.value is not None:
        static_names = _partition_static_names(semantics, filter_site)
        if any(dotted_name(item) in static_names for item in _returned_items(statement.value)):
            return False  # `return new_params, static`: the caller can combine
    return True


def _partition_static_names(semantics: Semantics, filter_site: CallSite) -> set[str]:
    """The names the static half of `eqx.partition(...)` was bound to."""
    names: set[str] = set()
    for bindings in filter_site.scope.bindings.values():
        for binding in bindings:
            if binding.value is filter_site.node and binding.index == 1:
                names.add(binding.name)
    return names


def _combined_in_scope(semantics: Semantics, site: CallSite, names: list[Optional[str]]) -> bool:
    for combine in semantics.calls_to("equinox.combine"):
        if not combine.scope.is_within(site.scope):
            continue
        for arg in combine.node.args:
            if dotted_name(arg.value) in names:
                return True
    return False


def _unfiltered_replacement(semantics: Semantics, site: CallSite, tree: cst.BaseExpression,
                            filtered: Value) -> Optional[cst.BaseExpression]:
    """The expression to pass instead of the filtered tree, when that is certain."""
    source = filtered.source
    if source is None:
        return None
    if filtered.node is not None and _contains(tree, filtered.node):
        return source  # the filter call is inline: its first argument is the model
    # Through a name: the model must still be what was filtered when the update happens.
    model_name = dotted_name(source)
    filter_call = filtered.node
    if model_name is None or not isinstance(filter_call, cst.Call):
        return None
    filter_site = semantics.site(filter_call)
    if filter_site is None or filter_site.scope is not site.scope:
        return None
    rebinds: list[Binding] = []
    if "." in model_name:
        method = site.scope
        while method is not None and method.method_of is None:
            method = method.parent
        if method is not None and method.method_of is not None:
            rebinds = method.method_of.self_assignments.get(model_name.split(".", 1)[1], [])
    else:
        rebinds = site.scope.bindings.get(model_name, [])
    if any(filter_site.seq < binding.seq < site.seq for binding in rebinds):
        return None
    return source.deep_clone()


def _contains(tree: cst.CSTNode, node: cst.CSTNode) -> bool:
    if tree is node:
        return True
    if isinstance(tree, cst.Subscript):
        return tree.value is node
    return False


_TREE = re.compile(rb"(?<![A-Za-z0-9_])tree(?![A-Za-z0-9_])")
_MAP = re.compile(rb"(?<![A-Za-z0-9_])map(?![A-Za-z0-9_])")


def _may_fire(source: bytes, look: Optional[FirstLook], tree: ast.Module) -> bool:
    """See ApplyUpdatesToFilteredModel.may_fire."""
    updates = import_spellings(tree, ("equinox.apply_updates",))
    maps = import_spellings(tree, TREE_MAP_FUNCTIONS)
    if not updates and not maps:
        return False
    filters = import_spellings(tree, FILTERS)
    candidates: list[tuple[ast.stmt, ast.Call, bool]] = []  # (statement, call, a tree map)
    returned: set[str] = set()
    for block in statement_blocks(tree):
        for statement in block:
            if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.Return)):
                value = statement.value
                if value is None:
                    continue
                if isinstance(statement, ast.Return):
                    returned.update(name for item in _items(value)
                                    if (name := ast_dotted_name(item)) is not None)
                for item in [value] + (value.elts if isinstance(value, ast.Tuple) else []):
                    if not isinstance(item, ast.Call):
                        continue
                    callee = ast_dotted_name(item.func)
                    if callee in updates or (callee in maps and item is value
                                             and isinstance(statement, ast.Assign)):
                        candidates.append((statement, item, callee in maps))
    if not candidates:
        return False
    sources: set[str] = set()
    local_filters = False
    called: set[str] = set()  # every dotted callee of the file
    for node in walk(tree):
        if isinstance(node, ast.Call):
            callee = ast_dotted_name(node.func)
            if callee is None:
                continue
            called.add(callee)
            if callee in filters:
                local_filters = True
                first = next((a for a in node.args if not isinstance(a, ast.Starred)), None)
                if first is None:
                    first = next((k.value for k in node.keywords if k.arg == "pytree"), None)
                name = ast_dotted_name(first) if first is not None else None
                if name is not None:
                    sources.add(name)
    # A filtered tree a project module makes: the model's name is spelled there.
    project = _ProjectFilters(source, look)
    if not local_filters and not project.any():
        return False
    values = may_be_filtered(tree, source, look)
    for statement, call, is_map in candidates:
        given = call_argument(call, 1, "tree") if is_map else call_argument(call, 0, "model")
        if given is None or not values.may_hold(given):
            continue  # the check infers this argument, and wants it filtered
        if isinstance(statement, ast.Return) or call is not statement.value:
            if local_filters:
                return True  # returned (or in a tuple): the filtering must be in this file
            continue
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        names = [ast_dotted_name(target) for target in targets]
        if any(name is None for name in names):
            continue
        if any(name in sources or project.spells(name) for name in names if name is not None):
            return True
        if is_map:
            continue
        if called.intersection(names):  # type: ignore[arg-type]
            return True  # the updated tree is called as the model
        if local_filters and returned.intersection(names):  # type: ignore[arg-type]
            return True
    return False


class _ProjectFilters:
    """The project modules the file imports that call `filter(`/`partition(`."""

    def __init__(self, source: bytes, look: Optional[FirstLook]) -> None:
        self.source = source
        self.look = look
        # Each such module's text, and the names it imports a filter as.
        self._texts: Optional[list[tuple[bytes, tuple[bytes, ...]]]] = None
        self._spelled: dict[str, bool] = {}

    def texts(self) -> list[tuple[bytes, tuple[bytes, ...]]]:
        if self._texts is None:
            imported = self.look.imported if self.look is not None else None
            if imported is None:  # nothing to read: any project import may hold one
                self._texts = [(self.source, ())] \
                    if mentioned_in_project(self.source, None) else []
            else:
                self._texts = []
                for text in imported.sources():
                    aliases = _filter_aliases(text)
                    if aliases or trigger_matches(b"filter (", text) \
                            or trigger_matches(b"partition (", text):
                        self._texts.append((text, aliases))
        return self._texts

    def any(self) -> bool:
        return bool(self.texts())

    def spells(self, dotted: str) -> bool:
        """Could a filter call there have `dotted` as its first argument? (The check
        compares the target with the filtered tree's source, the filter's first argument
        or `pytree=`, as dotted names.) Its text must then follow `filter(` or
        `partition(` (or a name the module imports one of them as; parentheses around it
        allowed), or `pytree=`."""
        if self.look is None or self.look.imported is None:
            return True  # the project's modules cannot be read here
        known = self._spelled.get(dotted)
        if known is None:
            last = dotted.rsplit(".", 1)[-1].encode()
            known = self._spelled[dotted] = any(
                _first_filter_argument(dotted, aliases).search(text)
                for text, aliases in self.texts() if last in text)
        return known


# `from equinox import partition as split`: the helper then calls `split(model, ...)`.
_FILTER_ALIAS = re.compile(rb"(?<![A-Za-z0-9_])(?:filter|partition)" + BETWEEN_TOKENS
                           + rb"as" + BETWEEN_TOKENS + rb"([A-Za-z_][A-Za-z0-9_]*)")


def _filter_aliases(text: bytes) -> tuple[bytes, ...]:
    return tuple(_FILTER_ALIAS.findall(text)) if b"as" in text else ()


def _first_filter_argument(dotted: str, aliases: tuple[bytes, ...] = ()) -> "re.Pattern[bytes]":
    gap = BETWEEN_TOKENS
    name = (gap + rb"\." + gap).join(re.escape(part.encode()) for part in dotted.split("."))
    opening = rb"(?:\(" + gap + rb")*"
    callees = b"|".join((b"filter", b"partition") + tuple(re.escape(a) for a in aliases))
    return re.compile(rb"(?:(?<![A-Za-z0-9_])(?:" + callees + rb")" + gap + rb"\(" + gap
                      + rb"|(?<![A-Za-z0-9_])pytree" + gap + rb"=" + gap + rb")"
                      + opening + name + rb"(?![A-Za-z0-9_])")


def _items(value: ast.expr) -> list[ast.expr]:
    return list(value.elts) if isinstance(value, ast.Tuple) else [value]
