"""EQX103: `optim.update(grads, opt_state)` without params, for an optimizer that reads them."""

from __future__ import annotations

import ast
import re
from typing import Iterator, Optional

import libcst as cst

from eqxlint.knowledge import optax_transforms
from eqxlint.rules.base import PROJECT_IMPORT, Bad, Finding, FixCase, Good, Rule
from eqxlint.rules.first_look import IMPORTS_PUBLIC_OPTAX, FirstLook, optax_factory_named
from eqxlint.semantics import CallSite, Semantics, Value, argument, keyword_arg, positional_args

# The optax factories that read params (what `_reads_params` looks for).
READS_PARAMS = frozenset(name for name, known in optax_transforms.TRANSFORMATIONS.items()
                         if known["reads_params"])
GRAD_TRANSFORMS = ("equinox.filter_grad", "equinox.filter_value_and_grad")


class OptimizerUpdateWithoutParams(Rule):
    code = "EQX103"
    name = "optimizer-update-without-params"
    summary = "`optim.update(grads, opt_state)` without params, for an optimizer that reads them"
    fix_applicability = "unsafe"
    triggers = ((b".update(",), (IMPORTS_PUBLIC_OPTAX, PROJECT_IMPORT))

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Only where some `.update(` call has a second argument (`dict.update(x)` has not),
        and this file or a module it imports may build an optimizer from a factory that
        reads params (`adamw`, `lion`, `contrib.muon`, ...) through an optax import.

        Sound: the rule looks only at `update(grads, opt_state)` calls (two positional
        arguments, or two arguments in all; no `*`/`**`, no `params=`; read from the `ast`,
        else from the text: a comma between the brackets), and only when
        `optim` is inferred as an optimizer holding such a factory, which the semantics
        learns only from `optax.<factory>` names written in some module of the file's
        imports (see optax_factory_named).
        """
        if not super().may_fire(source, look) or \
                not optax_factory_named(source, look, READS_PARAMS):
            return False
        updates = look.method_calls("update") if look is not None else None
        if updates is not None:  # the `ast`'s calls: the check's own condition, loosened
            return any(_may_lack_params(call) for call in updates)
        calls = list(_UPDATE_CALL.finditer(source))
        return not calls or any(_has_second_argument(source, call.end()) for call in calls)
    what_it_does = """
        Checks for `optim.update(grads, opt_state)` with no third argument (and no
        `params=`), where `optim` is built from an optax transformation that reads the
        parameters: `optax.adamw`, `nadamw`, `adamaxw`, `adan`, `adadelta`, `lion`, `lamb`,
        `lars`, `fromage`, `adafactor`, `add_decayed_weights`, `optax.contrib.muon`, ...
        directly or inside `optax.chain`, `optax.MultiSteps` or `optax.inject_hyperparams`.

        The list is measured from the installed optax by `scripts/generate_knowledge.py`
        (calling `update` without params on a tiny model), not typed by hand. `adamw` and
        `lion` read the parameters even with `weight_decay=0`.
    """
    why_bad = """
        Weight decay (and the other parameter-aware transformations) needs the current
        parameters; without them optax stops at the first step (the error is quoted below).
    """
    example = """
        optim = optax.adamw(1e-3)
        updates, opt_state = optim.update(grads, opt_state)
    """
    use_instead = """
        optim = optax.adamw(1e-3)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
    """
    fix_safety = """
        Unsafe: the fix passes `eqx.filter(model, eqx.is_inexact_array)`, where `model` is
        the first argument of the `eqx.filter_grad`/`eqx.filter_value_and_grad` call that
        produced `grads` in the same function: those are the parameters the gradients
        belong to. Review it when the model changed in between. No fix is offered when the
        gradients' origin is not visible.
    """
    runtime = """
        `check_step(step, model, opt_state, ...)` traces the step on shapes; when an
        optax `update` inside it fails for want of `params`, the finding names the
        line of that call. `check_model` has no EQX103: whether params are passed is a
        property of the call, not of the model.
    """
    real_error = ("ValueError: You are using a transformation that requires the current value "
                  "of parameters, but you are not passing `params` when calling `update`.")
    known_limits = """
        Quiet when the optimizer is not built in the same file from an optax factory, or
        when `update` receives `*args`/`**kwargs`.
    """

    bad_examples = (
        Bad("""
            import optax

            optim = optax.adamw(1e-3)
            updates, opt_state = optim.update(grads, opt_state)  # expect: EQX103
        """, "the headline case"),
        Bad("""
            import optax as ox

            tx = ox.chain(ox.clip_by_global_norm(1.0), ox.adamw(3e-4, weight_decay=0.0))

            def step(grads, state):
                return tx.update(grads, state)  # expect: EQX103
        """, "alias, chain, weight_decay=0 still reads params"),
        Bad("""
            import equinox as eqx
            import optax

            optim = optax.lion(1e-4)

            @eqx.filter_jit
            def step(model, opt_state, x, y):
                loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
                updates, opt_state = optim.update(grads, opt_state)  # expect: EQX103
                return eqx.apply_updates(model, updates), opt_state
        """, "lion inside a filter_jit step"),
        Bad("""
            import optax

            class Trainer:
                def __init__(self):
                    self.optim = optax.MultiSteps(optax.lamb(1e-3), every_k_schedule=2)

                def step(self, grads):
                    updates, self.opt_state = self.optim.update(  # expect: EQX103
                        grads, self.opt_state
                    )
        """, "MultiSteps around lamb, attributes of self"),
        Bad("""
            from optax import inject_hyperparams, adamw

            optimizer = inject_hyperparams(adamw)(learning_rate=1e-3)
            updates, state = optimizer.update(grads, state)  # expect: EQX103
        """, "inject_hyperparams, from-imports"),
        Bad("""
            import optax

            optim = optax.add_decayed_weights(1e-4)
            updates, state = optim.update(updates=grads, state=state)  # expect: EQX103
        """, "keywords, add_decayed_weights"),
        Bad("""
            import optax.contrib
            import optax

            optim = optax.contrib.muon(0.02)
            updates, opt_state = optim.update(grads, opt_state)  # expect: EQX103
        """, "optax.contrib.muon"),
        Bad("""
            import jax, optax as ox

            def make():
                from optax import contrib
                return contrib.sophia(1e-3)

            optim = make()
            updates, state = optim.update(grads, state)  # expect: EQX103
        """, "an import list, and `from optax import contrib` inside a def"),
    )
    good_examples = (
        Good("""
            import equinox as eqx
            import optax

            optim = optax.adamw(1e-3)
            updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        """, "params passed"),
        Good("""
            import optax

            optim = optax.adamw(1e-3)
            updates, opt_state = optim.update(grads, opt_state, params=params)
        """, "params by keyword"),
        Good("""
            import optax

            optim = optax.adam(1e-3)
            updates, opt_state = optim.update(grads, opt_state)
        """, "adam does not read params"),
        Good("""
            import optax

            optim = optax.chain(optax.clip(1.0), optax.sgd(1e-2, momentum=0.9))
            updates, opt_state = optim.update(grads, opt_state)
        """, "a chain of transformations that do not read params"),
        Good("""
            import torch

            optim = torch.optim.AdamW(model.parameters())
            optim.update(grads, state)
        """, "not optax"),
        Good("""
            import optax

            def step(optim, grads, opt_state):
                return optim.update(grads, opt_state)
        """, "the optimizer comes from outside: its kind is not known"),
        Good("""
            import optax

            optim = optax.adamw(1e-3)
            cache = {}
            cache.update(grads, opt_state)
        """, "dict.update"),
        Good("""
            from optax._src import alias

            def lion(learning_rate):
                '''`optim = optax.lion(1e-4)`; `optim.update(grads, opt_state)` fails.'''
                return alias.lion(learning_rate)

            optim = lion(1e-4)
            updates, opt_state = optim.update(grads, opt_state)
        """, "optax's own source: `optax._src` names are not `optax.lion`, docstrings not code"),
        Good("""
            import optax

            optim = optax.adamw(1e-3)
            args = (grads, opt_state, params)
            updates, opt_state = optim.update(*args)
        """, "star arguments"),
        Good("""
            import optax

            optim = optax.adamw(1e-3)
            optim = optax.adam(1e-3)
            updates, opt_state = optim.update(grads, opt_state)
        """, "rebound to adam before the call"),
    )
    fix_examples = (
        FixCase("""
            import equinox as eqx
            import optax

            optim = optax.adamw(1e-3)

            def step(model, opt_state, x):
                grads = eqx.filter_grad(loss)(model, x)
                updates, opt_state = optim.update(grads, opt_state)
                return eqx.apply_updates(model, updates), opt_state
        """, """
            import equinox as eqx
            import optax

            optim = optax.adamw(1e-3)

            def step(model, opt_state, x):
                grads = eqx.filter_grad(loss)(model, x)
                updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
                return eqx.apply_updates(model, updates), opt_state
        """),
    )

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for site in semantics.calls:
            func = site.node.func
            if not isinstance(func, cst.Attribute) or func.attr.value != "update":
                continue
            call = site.node
            if any(arg.star for arg in call.args) or keyword_arg(call, "params") is not None:
                continue
            if len(positional_args(call)) != 2 and not (
                    argument(call, 0, "updates") is not None and argument(call, 1, "state")
                    is not None and len(call.args) == 2):
                continue
            optimizer = semantics.infer(func.value, at=site)
            if optimizer is None or optimizer.kind != "optimizer":
                continue
            reader = _reads_params(optimizer)
            if reader is None:
                continue
            optim_text = semantics.module.code_for_node(func.value)
            model = _model_of_grads(semantics, site, argument(call, 0, "updates"))
            eqx_alias = semantics.local_name_for("equinox")
            model_text = semantics.module.code_for_node(model) if model is not None else "model"
            params = f"{eqx_alias or 'eqx'}.filter({model_text}, {eqx_alias or 'eqx'}.is_inexact_array)"
            replacements: tuple = ()
            if model is not None and eqx_alias is not None and len(positional_args(call)) == 2:
                last = call.args[-1]
                new_args = [*call.args[:-1], last.with_changes(comma=cst.Comma(
                    whitespace_after=cst.SimpleWhitespace(" "))),
                    cst.Arg(cst.parse_expression(params))]
                replacements = ((call, call.with_changes(args=new_args)),)
            yield Finding(
                node=call,
                message=(f"`{optim_text}.update` is called without params, but `optax.{reader}` "
                         f"reads them: optax raises at the first step"),
                hint=f"Pass the parameters: `{optim_text}.update(grads, opt_state, {params})`",
                replacements=replacements,
                fix_message=f"Pass `{params}` as params",
            )


def _reads_params(optimizer: Value) -> Optional[str]:
    """The factory in the optimizer that reads params, if any."""
    for factory in optimizer.factories:
        known = optax_transforms.TRANSFORMATIONS.get(factory)
        if known is not None and known["reads_params"]:
            return factory
    return None


def _model_of_grads(semantics: Semantics, site: CallSite,
                    grads: Optional[cst.BaseExpression]) -> Optional[cst.BaseExpression]:
    """`model` when `grads` comes from `eqx.filter_grad(f)(model, ...)` in the same scope."""
    if not isinstance(grads, cst.Name):
        return None
    binding = semantics.lookup(grads.value, site.scope, site.seq)
    if binding is None or not isinstance(binding.value, cst.Call):
        return None
    produced = binding.value
    if not isinstance(produced.func, cst.Call) or \
            semantics.qualname(produced.func.func) not in GRAD_TRANSFORMS:
        return None
    is_value_and_grad = semantics.qualname(produced.func.func) == GRAD_TRANSFORMS[1]
    if is_value_and_grad != (binding.index == 1):
        return None
    arguments = positional_args(produced)
    if not arguments or not isinstance(arguments[0], (cst.Name, cst.Attribute)):
        return None
    model = arguments[0]
    name = model.value if isinstance(model, cst.Name) else None
    if name is not None:
        rebinds = site.scope.bindings.get(name, [])
        if any(binding.seq < b.seq < site.seq for b in rebinds):
            return None
    return model


def _may_lack_params(call: ast.Call) -> bool:
    """The check's condition on an `update` call, read from the `ast`."""
    if any(isinstance(arg, ast.Starred) for arg in call.args) or \
            any(keyword.arg in (None, "params") for keyword in call.keywords):
        return False
    return len(call.args) == 2 or len(call.args) + len(call.keywords) == 2


_UPDATE_CALL = re.compile(rb"\.\s*update\s*\(")


def _has_second_argument(source: bytes, start: int, limit: int = 5000) -> bool:
    """Is there a comma at the top level of the brackets opened just before `start`?"""
    depth, index, end = 1, start, min(len(source), start + limit)
    while index < end:
        char = source[index:index + 1]
        if char in b"([{":
            depth += 1
        elif char in b")]}":
            depth -= 1
            if depth == 0:
                return False
        elif char == b"," and depth == 1:
            return True
        elif char in b"'\"":
            closing = source.find(char, index + 1)
            while closing > 0 and source[closing - 1:closing] == b"\\":
                closing = source.find(char, closing + 1)
            if closing < 0:
                return True
            index = closing
        elif char == b"#":
            newline = source.find(b"\n", index)
            index = newline if newline >= 0 else end
        index += 1
    return True  # not read to its end: let the parse decide
