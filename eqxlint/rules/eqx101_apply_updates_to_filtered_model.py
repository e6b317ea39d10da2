"""EQX101: `eqx.apply_updates` given a filtered model, and its result used as the model."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from eqxlint.diagnostics import Diagnostic
from eqxlint.rules.base import Bad, FixCase, Finding, Good, Rule
from eqxlint.semantics import Binding, CallSite, Semantics, Value, argument, dotted_name

if TYPE_CHECKING:
    from eqxlint.runtime.checker import RuntimeContext


class ApplyUpdatesToFilteredModel(Rule):
    code = "EQX101"
    name = "apply-updates-to-filtered-model"
    summary = "`eqx.apply_updates` on a filtered model turns every non-array field into None"
    fix_applicability = "safe"
    triggers = ((b"apply_updates",), (b"filter", b"partition"))
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
        `model.layers[0].activation`.
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

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for site in semantics.calls_to("equinox.apply_updates"):
            tree = argument(site.node, 0, "model")
            if tree is None:
                continue
            filtered = semantics.infer(tree, at=site)
            if filtered is None or filtered.kind != "filtered":
                continue
            if not _result_used_as_model(semantics, site):
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


def _result_used_as_model(semantics: Semantics, site: CallSite) -> bool:
    """True when the updated tree is kept (assigned or returned) and never combined back."""
    parent = site.parent
    if isinstance(parent, cst.Call) and semantics.qualname(parent.func) == "equinox.combine":
        return False
    if isinstance(parent, (cst.Return, cst.Assign, cst.AnnAssign)):
        pass
    else:
        return False
    if isinstance(parent, cst.Return):
        return True
    targets: list[cst.BaseExpression] = (
        [t.target for t in parent.targets] if isinstance(parent, cst.Assign) else [parent.target]
    )
    names = [dotted_name(target) for target in targets]
    if any(name is None for name in names):
        return False
    for combine in semantics.calls_to("equinox.combine"):
        if not combine.scope.is_within(site.scope):
            continue
        for arg in combine.node.args:
            if dotted_name(arg.value) in names:
                return False
    return True


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
