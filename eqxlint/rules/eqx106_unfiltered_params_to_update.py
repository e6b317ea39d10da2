"""EQX106: `optim.update(grads, opt_state, model)` with the whole module as params."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from eqxlint.knowledge import optax_transforms
from eqxlint.rules.base import PROJECT_IMPORT, Bad, Finding, FixCase, Good, Rule
from eqxlint.rules.first_look import IMPORTS_PUBLIC_OPTAX, FirstLook, optax_factory_named
from eqxlint.semantics import Semantics, argument

if TYPE_CHECKING:
    from eqxlint.diagnostics import Diagnostic
    from eqxlint.runtime.checker import RuntimeContext

_WRAPPERS = ("MultiSteps", "inject_hyperparams")


class UnfilteredParamsToUpdate(Rule):
    code = "EQX106"
    name = "unfiltered-params-to-update"
    summary = "`optim.update(grads, opt_state, model)` with the whole module as params"
    fix_applicability = "safe"
    triggers = ((b".update(",), (IMPORTS_PUBLIC_OPTAX, PROJECT_IMPORT))

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Only where this file or a module it imports may build an optimizer that
        `rejects_module_params` can name (`MultiSteps`, `inject_hyperparams`, or a factory
        measured to reject a module holding functions), spelled through an optax import.

        Sound: the check needs `optim` inferred as an optimizer with such a factory, and
        the semantics learns factories only from `optax.<factory>` names written in some
        module of the file's imports, the optimizer's own module included (see
        optax_factory_named; an optimizer built in an imported module counts). It looks
        only at `update` calls without `*`/`**` whose params (third positional argument,
        or `params=`) are a name or an attribute (read from the `ast` when there is one).
        """
        if not super().may_fire(source, look) or \
                not optax_factory_named(source, look, _REJECTING):
            return False
        calls = look.method_calls("update") if look is not None else None
        return calls is None or any(_params_named(call) for call in calls)
    what_it_does = """
        Checks for `optim.update(grads, opt_state, model)` (or `params=model`) where
        `model` is an Equinox module that holds a function (an activation, an
        `eqx.nn.Lambda`) and `optim` is built from an optax transformation that cannot
        take such a leaf among its params: `optax.MultiSteps(...)`,
        `optax.inject_hyperparams(...)`, `lamb`, `lars`, `fromage`, `adafactor`,
        `novograd`, `optax.contrib.muon`, ... directly or inside `optax.chain`.

        Which transformations fail is measured from the installed optax by
        `scripts/generate_knowledge.py` (`update` given a `Sequential(Linear,
        Lambda(relu))` as params, eagerly and under `jit`), not typed by hand: a bare
        `optax.adam` or `optax.adamw` passes, so this rule is quiet for them.
    """
    why_bad = """
        optax treats `params` as a pytree of arrays. Transformations that trace params
        through `lax.cond` (`MultiSteps`), turn them into arrays (`inject_hyperparams`)
        or map over them beside their own state (`lamb`, `lars`, ...) meet the module's
        function leaves and fail at the first step.
    """
    example = """
        model = eqx.nn.MLP(2, 1, 32, 2, key=jax.random.PRNGKey(0))
        optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)
        opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
        updates, opt_state = optim.update(grads, opt_state, model)
    """
    use_instead = """
        model = eqx.nn.MLP(2, 1, 32, 2, key=jax.random.PRNGKey(0))
        optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)
        opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
    """
    fix_safety = """
        Safe: the params become `eqx.filter(model, eqx.is_inexact_array)`, the same
        filter the gradients and the optimizer state have; the arrays optax reads are
        the same ones.
    """
    runtime = """
        `check_model(model, optim=optim)` runs `optim.update` once on abstract shapes
        (`jax.eval_shape`, no data) with the whole model as params and reports EQX106
        when it fails where the filtered model passes.
    """
    real_error = """
        Measured (jax 0.10.2, equinox 0.13.8, optax 0.2.8), `optim.update(grads,
        opt_state, model)` for a model holding `jax.nn.relu`:
        `optax.MultiSteps(optax.adam(1e-3), every_k_schedule=2)` raises
        `TypeError: Argument '<jax._src.custom_derivatives.custom_jvp object>' of type
        '<class 'jax._src.custom_derivatives.custom_jvp'>' is not a valid JAX type`;
        `optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)` raises `TypeError:
        Value '<jax._src.custom_derivatives.custom_jvp object>' with dtype object is not
        a valid JAX array type`; `optax.lamb(1e-3)` raises `ValueError: pytree structure
        error: different types at key path`. `optax.adamw(1e-3)` passes.
    """
    known_limits = """
        The optimizer and the module must be visible in the file (what they are built
        from). Only function leaves are counted: that is what was measured. A wrapper
        around a transformation that was not measured inside it is judged by the
        wrapper's measured cases only when they all agree.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx
            import jax
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=jax.random.PRNGKey(0))
            optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)
            opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
            grads = eqx.filter_grad(loss)(model, x, y)
            updates, opt_state = optim.update(grads, opt_state, model)  # expect: EQX106
        """, "gradient accumulation with MultiSteps (reported upstream)"),
        Bad("""
            import equinox as eqx
            import jax
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=jax.random.PRNGKey(0))
            optim = optax.inject_hyperparams(optax.adamw)(learning_rate=1e-3)
            opt_state = optim.init(eqx.filter(model, eqx.is_array))
            updates, opt_state = optim.update(grads, opt_state, params=model)  # expect: EQX106
        """, "inject_hyperparams to schedule the learning rate, params= keyword"),
        Bad("""
            from typing import Callable

            import equinox as eqx
            import jax
            import optax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                activation: Callable

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(2, 8, key=key)
                    self.activation = jax.nn.relu

            model = Net(jax.random.PRNGKey(0))
            optim = optax.lamb(1e-3)
            opt_state = optim.init(eqx.filter(model, eqx.is_array))
            updates, opt_state = optim.update(grads, opt_state, model)  # expect: EQX106
        """, "a module of this file holding jax.nn.relu, with lamb"),
        Bad("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(4, 4, 8, 2, key=key)
            optim = optax.chain(optax.clip_by_global_norm(1.0), optax.lars(1e-2))
            opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
            for x, y in loader:
                grads = eqx.filter_grad(loss)(model, x, y)
                updates, opt_state = optim.update(grads, opt_state, model)  # expect: EQX106
                model = eqx.apply_updates(model, updates)
        """, "lars inside optax.chain, in a training loop"),
        Bad("""
            import equinox as eqx
            import jax
            import optax

            model = eqx.nn.Sequential([eqx.nn.Linear(2, 2, key=key), eqx.nn.Lambda(jax.nn.gelu)])
            optim = optax.MultiSteps(optax.sgd(0.1), every_k_schedule=8)
            opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
            for step, batch in enumerate(batches):
                grads = eqx.filter_grad(loss)(model, batch)
                updates, opt_state = optim.update(
                    grads,
                    opt_state,
                    model,  # expect: EQX106
                )
                model = eqx.apply_updates(model, updates)
        """, "Sequential with a Lambda, the call over several lines"),
        Bad("""
            import equinox as eqx
            import optax
            from optax import contrib

            model = eqx.nn.MLP(8, 8, 64, 3, key=key)
            optim = optax.contrib.muon(learning_rate=0.02)
            state = optim.init(eqx.filter(model, eqx.is_inexact_array))
            updates, state = optim.update(grads, state, model)  # expect: EQX106
        """, "optax.contrib.muon"),
        Bad("""
            import equinox as eqx
            try:
                import optax.contrib as oc
            except ImportError:
                oc = None

            model = eqx.nn.MLP(8, 8, 64, 3, key=key)
            optim = oc.dog()
            updates, state = optim.update(grads, state, model)  # expect: EQX106
        """, "`import optax.contrib as oc` inside a try block: the first look reads every import"),
        Bad("""
            import equinox as eqx
            from optax import MultiSteps as Accumulate, adam

            model = eqx.nn.MLP(8, 8, 64, 3, key=key)
            optim = Accumulate(adam(1e-3), every_k_schedule=4)
            updates, state = optim.update(grads, state, model)  # expect: EQX106
        """, "from-imported under another name"),
    )
    good_examples = (
        Good("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)
            opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
            updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        """, "filtered params"),
        Good("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            optim = optax.adamw(1e-3)
            opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
            updates, opt_state = optim.update(grads, opt_state, model)
        """, "adamw takes the whole module (measured): the Equinox docs' own pattern"),
        Good("""
            import equinox as eqx
            import optax

            model = eqx.nn.Linear(2, 2, key=key)
            optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)
            opt_state = optim.init(model)
            updates, opt_state = optim.update(grads, opt_state, model)
        """, "a Linear holds only arrays"),
        Good("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)
            params, static = eqx.partition(model, eqx.is_inexact_array)
            updates, opt_state = optim.update(grads, opt_state, params)
        """, "partitioned params"),
        Good("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            optim = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
            updates, opt_state = optim.update(grads, opt_state, model)
        """, "chain of transformations that all take it (measured)"),
        Good("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            updates, opt_state = optim.update(grads, opt_state, model)
        """, "an optimizer the file does not show"),
        Good("""
            import equinox as eqx
            import torch

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            optim = torch.optim.SGD(params, lr=0.1)
            optim.update(grads, opt_state, model)
        """, "not optax"),
        Good("""
            import optax

            optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)
            updates, opt_state = optim.update(grads, opt_state, params)
        """, "params of unknown content (a Flax or Haiku tree)"),
        Good("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)
            updates, opt_state = optim.update(grads, opt_state)
        """, "no params at all (adam does not read them)"),
    )
    fix_examples = (
        FixCase("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)
            updates, opt_state = optim.update(grads, opt_state, model)
        """, """
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)
            updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        """),
        FixCase("""
            import equinox
            import optax

            model = equinox.nn.MLP(2, 1, 32, 2, key=key)
            optim = optax.lamb(1e-3)
            updates, opt_state = optim.update(grads, opt_state, params=model)
        """, """
            import equinox
            import optax

            model = equinox.nn.MLP(2, 1, 32, 2, key=key)
            optim = optax.lamb(1e-3)
            updates, opt_state = optim.update(grads, opt_state, params=equinox.filter(model, equinox.is_inexact_array))
        """),
    )

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for site in semantics.calls:
            func = site.node.func
            if not isinstance(func, cst.Attribute) or func.attr.value != "update":
                continue
            call = site.node
            if any(arg.star for arg in call.args):
                continue
            params = argument(call, 2, "params")
            if params is None or not isinstance(params, (cst.Name, cst.Attribute)):
                continue
            optimizer = semantics.infer(func.value, at=site)
            if optimizer is None or optimizer.kind != "optimizer":
                continue
            module = semantics.infer(params, at=site)
            if module is None or module.kind != "module":
                continue
            leaf = semantics.non_array_leaf(module)
            if leaf is None or "function" not in leaf:
                continue
            failing = rejects_module_params(optimizer.factories)
            if failing is None:
                continue
            name, error = failing
            optim_text = semantics.code_of(func.value)
            model_text = semantics.code_of(params)
            eqx_alias = semantics.local_name_for("equinox")
            filtered = f"{eqx_alias or 'eqx'}.filter({model_text}, " \
                       f"{eqx_alias or 'eqx'}.is_inexact_array)"
            replacements: tuple = ()
            if eqx_alias is not None:
                replacements = ((params, cst.parse_expression(filtered)),)
            yield Finding(
                node=params,
                message=(f"`{model_text}` is given whole as the params of `{optim_text}.update`, "
                         f"and {leaf}: `{name}` cannot take it (optax raises {error})"),
                hint=f"Pass the arrays only: `{optim_text}.update(grads, opt_state, {filtered})`",
                replacements=replacements,
                fix_message=f"Pass `{filtered}` as params",
                anchor=call,
            )

    def check_runtime(self, context: "RuntimeContext") -> Iterator["Diagnostic"]:
        if context.optim is None:
            return
        import equinox as eqx
        import jax

        params = eqx.filter(context.model, eqx.is_inexact_array)
        if not any(callable(leaf) and not eqx.is_array(leaf)
                   for leaf in jax.tree_util.tree_leaves(context.model)):
            return

        def update(whole: object) -> object:
            state = context.optim.init(params)
            return context.optim.update(params, state, whole)

        try:
            jax.eval_shape(update, params)
        except Exception:
            return  # the filtered update itself fails: another rule's business
        try:
            eqx.filter_eval_shape(update, context.model)
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            yield context.diagnostic(
                self, "model",
                f"cannot be the params of this optimizer's `update` as it is (it holds "
                f"functions): {type(error).__name__}: {first[:160]}",
                "Pass `eqx.filter(model, eqx.is_inexact_array)` as params")


def rejects_module_params(factories: tuple[str, ...]) -> Optional[tuple[str, str]]:
    """(what fails, the measured error) when the optimizer built from `factories` is
    measured to reject a module holding functions as params; None when it takes it or
    the data does not say."""
    if not factories:
        return None
    head, rest = factories[0], factories[1:]
    if head in _WRAPPERS:
        inner = ",".join(rest)
        key = f"{head}({inner})" if inner else head
        measured = optax_transforms.WRAPPED.get(key)
        if measured is None:
            cases = {k: v for k, v in optax_transforms.WRAPPED.items() if k.startswith(head + "(")}
            verdicts = {v.get("accepts_module_params") for v in cases.values()}
            if not cases or verdicts != {False}:
                return None
            key = sorted(cases)[0]
            measured = cases[key]
        if measured.get("accepts_module_params") is False:
            return f"optax.{head}", _error(key)
        return None
    if head in ("chain", "named_chain"):
        for factory in rest:
            found = rejects_module_params((factory,))
            if found is not None:
                return found
        return None
    measured = optax_transforms.TRANSFORMATIONS.get(head)
    if measured is not None and measured.get("accepts_module_params") is False:
        return f"optax.{head}", _error(head)
    return None


def _error(key: str) -> str:
    error = optax_transforms.ERRORS.get((key, "module_params"), "")
    error = error.strip().splitlines()[0] if error else ""
    return f"`{error[:120]}`" if error else "at the first step"


# The factories of which `rejects_module_params` can say yes, alone or inside a chain.
_REJECTING = frozenset([name for name in optax_transforms.TRANSFORMATIONS
                        if rejects_module_params((name,)) is not None] + list(_WRAPPERS))


def _params_named(call: ast.Call) -> bool:
    """The check's condition on an `update` call, read from the `ast`."""
    if any(isinstance(arg, ast.Starred) for arg in call.args) or \
            any(keyword.arg is None for keyword in call.keywords):
        return False
    if len(call.args) > 2:
        params: Optional[ast.expr] = call.args[2]
    else:
        params = next((k.value for k in call.keywords if k.arg == "params"), None)
    return isinstance(params, (ast.Name, ast.Attribute))
