"""EQX501: Dropout or BatchNorm still in training mode when the model is evaluated."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from eqxlint.diagnostics import Diagnostic
from eqxlint.rules.base import Bad, FixCase, Finding, Good, Rule
from eqxlint.semantics import Binding, CallSite, Semantics, argument, dotted_name

SWITCHES = ("equinox.nn.inference_mode", "equinox.tree_inference")
# Callables that capture the model they are built from: (qualified name, keyword of the model).
WRAPPERS = {"jax.vmap": "fun", "equinox.filter_vmap": "fun", "functools.partial": "func",
            "equinox.Partial": "func", "equinox.filter_jit": "fun", "jax.jit": "fun",
            "equinox.filter_pmap": "fun", "jax.pmap": "fun"}
# A call that starts a statement (its result can only be discarded there).
_STATEMENT_CALL = re.compile(rb"(?:^|;)[ \t]*[\w.]*(?:inference_mode|tree_inference)\s*\(",
                             re.MULTILINE)

# `model = eqx.nn.inference_mode(model ...`: the same name on both sides.
_SWITCHED_IN_PLACE = re.compile(rb"\b(\w+)[ \t]*=[ \t]*[\w.]*(?:inference_mode|tree_inference)\s*\(\s*"
                                rb"(?:model\s*=\s*|pytree\s*=\s*)?\1\b")
_WRAPPER_CALL = re.compile(rb"(?:vmap|partial|Partial|jit|pmap)\s*\(")

if TYPE_CHECKING:
    from eqxlint.runtime.checker import RuntimeContext


class DropoutActiveAtEval(Rule):
    code = "EQX501"
    name = "dropout-active-at-eval"
    summary = "A model evaluated with Dropout/BatchNorm still in training mode"
    fix_applicability = "safe"
    triggers = ((b"inference_mode", b"tree_inference"),)
    what_it_does = """
        Statically: `eqx.nn.inference_mode(model)` (or `eqx.tree_inference(model, True)`)
        whose result is thrown away. It returns a new model, as everything in Equinox
        does; unlike PyTorch's `model.eval()` it changes nothing in place, so `model` is
        still in training mode.

        At runtime, with `check_model(model, mode="eval")`: every layer whose `inference`
        flag is `False` (`eqx.nn.Dropout`, `eqx.nn.BatchNorm`, the dropout inside
        `eqx.nn.MultiheadAttention`, modules of your own that follow the convention).
        A dropout with rate 0 is the identity in either mode and is not reported.
    """
    why_bad = """
        In training mode Dropout zeroes activations at random (and needs a `key`), and
        BatchNorm uses the batch's statistics and updates its running ones. Evaluation
        numbers come out noisy and wrong, with no error at all.
    """
    example = """
        eqx.nn.inference_mode(model)
        accuracy = evaluate(model, test_data)
    """
    use_instead = """
        model = eqx.nn.inference_mode(model)
        accuracy = evaluate(model, test_data)
    """
    fix_safety = """
        Safe: the fix assigns the result back to the name or attribute it was computed
        from (`model = eqx.nn.inference_mode(model)`), which is what the call was for.
    """
    runtime = """
        `check_model(model, mode="eval")` reports each layer in training mode by path
        (`model.layers[2]`) and points to `eqx.nn.inference_mode(model)`.
    """
    real_error = "(none: the results are silently wrong)"
    known_limits = """
        Statically only the discarded result is provable; whether a model reaching an
        evaluation function is in inference mode needs the runtime check.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx

            eqx.nn.inference_mode(model)  # expect: EQX501
            accuracy = evaluate(model, test_data)
        """, "the headline case"),
        Bad("""
            import equinox

            def evaluate(model, data):
                equinox.nn.inference_mode(model, value=True)  # expect: EQX501
                return sum(model(x) for x in data)
        """, "module import, value=True"),
        Bad("""
            import equinox as eqx

            eqx.tree_inference(model, True)  # expect: EQX501
        """, "the older tree_inference"),
        Bad("""
            from equinox.nn import inference_mode

            class Trainer:
                def validate(self):
                    inference_mode(self.model)  # expect: EQX501
                    return self.loss(self.model)
        """, "from-import, attribute of self"),
        Bad("""
            import equinox as eqx

            for checkpoint in checkpoints:
                model = load(checkpoint)
                eqx.nn.inference_mode(model)  # expect: EQX501
                scores.append(score(model))
        """, "in a loop"),
        Bad("""
            import equinox as eqx

            if evaluating:
                eqx.nn.inference_mode(model=net)  # expect: EQX501
        """, "keyword argument, in a branch"),
        Bad("""
            import equinox as eqx
            import jax

            batched_model = jax.vmap(model)
            for x, y in train_loader:
                model, opt_state = step(model, opt_state, x, y)
            model = eqx.nn.inference_mode(model)
            test_logits = batched_model(x_test)  # expect: EQX501
        """, "jax.vmap built from the training model, evaluated after the switch"),
        Bad("""
            import functools
            import equinox as eqx

            def evaluate(model, dataset):
                forward = functools.partial(model, key=None)
                model = eqx.nn.inference_mode(model)
                return [forward(x) for x in dataset]  # expect: EQX501
        """, "functools.partial of the model, in an evaluation function"),
        Bad("""
            import equinox as eqx

            def test_accuracy(model, x, y):
                batched = eqx.filter_vmap(model, in_axes=(0, None))
                model = eqx.nn.inference_mode(model)
                logits = batched(x, None)  # expect: EQX501
                return (logits.argmax(-1) == y).mean()
        """, "eqx.filter_vmap with in_axes"),
        Bad("""
            import equinox as eqx

            predict = eqx.filter_jit(model)
            model = eqx.tree_inference(model, True)
            print(predict(x_test))  # expect: EQX501
        """, "eqx.filter_jit of the module, the older tree_inference"),
        Bad("""
            import equinox as eqx
            import jax

            for epoch in range(num_epochs):
                batched = jax.vmap(model)
                model = train_one_epoch(model, batched, loader)
                model = eqx.nn.inference_mode(model, value=True)
                val_logits = batched(x_val)  # expect: EQX501
                model = eqx.nn.inference_mode(model, value=False)
        """, "inside the epoch loop, value=True"),
        Bad("""
            from functools import partial
            from equinox.nn import inference_mode

            net_fn = partial(net, state=state)
            net = inference_mode(net)
            y_pred, _ = net_fn(x_test)  # expect: EQX501
        """, "from-imports, a partial holding the state too"),
    )
    good_examples = (
        Good("""
            import equinox as eqx

            model = eqx.nn.inference_mode(model)
        """, "assigned back"),
        Good("""
            import equinox as eqx

            eval_model = eqx.nn.inference_mode(model)
        """, "assigned to another name"),
        Good("""
            import equinox as eqx

            return_value = evaluate(eqx.nn.inference_mode(model), data)
        """, "used directly"),
        Good("""
            import equinox as eqx

            def to_eval(model):
                return eqx.nn.inference_mode(model)
        """, "returned"),
        Good("""
            import equinox as eqx

            train_model = eqx.nn.inference_mode(model, value=False)
        """, "switching back to training, assigned"),
        Good("""
            def inference_mode(model):
                print(model)

            inference_mode(model)
        """, "a function of the user's"),
        Good("""
            import torch

            model.eval()
        """, "PyTorch's in-place eval"),
        Good("""
            import equinox as eqx

            models = [eqx.nn.inference_mode(m) for m in models]
        """, "in a comprehension"),
        Good("""
            import equinox as eqx
            import jax

            batched = jax.vmap(model)
            train(batched, data)
            model = eqx.nn.inference_mode(model)
            batched = jax.vmap(model)
            accuracy = batched(x_test)
        """, "the batched callable built again after switching"),
        Good("""
            import equinox as eqx
            import jax

            model = eqx.nn.inference_mode(model)
            batched = jax.vmap(model)
            accuracy = batched(x_test)
        """, "switched before the callable is built"),
        Good("""
            import equinox as eqx
            import jax

            batched = jax.vmap(model, in_axes=(0, None))
            eval_model = eqx.nn.inference_mode(model)
            loss = batched(x, key)
            accuracy = jax.vmap(eval_model)(x_test)
        """, "the inference model under another name; the old callable keeps training"),
        Good("""
            import equinox as eqx
            import jax

            batched_loss = jax.vmap(loss_fn, in_axes=(None, 0, 0))
            model = eqx.nn.inference_mode(model)
            test_loss = batched_loss(model, x_test, y_test)
        """, "the callable takes the model as an argument: it gets the new one"),
        Good("""
            import equinox as eqx
            import jax

            predict = jax.vmap(model)
            model = eqx.nn.inference_mode(model, value=False)
            preds = predict(x)
        """, "switched back to training: not an evaluation with dropout"),
        Good("""
            import equinox as eqx
            import jax

            batched = jax.vmap(model)
            train_logits = batched(x_train)
            model = eqx.nn.inference_mode(model)
            test_logits = jax.vmap(model)(x_test)
        """, "the old callable is used only before the switch"),
        Good("""
            import equinox as eqx
            import jax

            def train(model, x):
                batched = jax.vmap(model)
                return batched(x)

            def evaluate(model, x):
                model = eqx.nn.inference_mode(model)
                batched = jax.vmap(model)
                return batched(x)
        """, "each function builds its own callable"),
        Good("""
            import functools
            import equinox as eqx

            forward = functools.partial(model, key=None)
            model = eqx.tree_inference(model, True)
            forward = functools.partial(model, key=None)
            scores = [forward(x) for x in test_set]
        """, "tree_inference, and the partial rebuilt"),
    )
    fix_examples = (
        FixCase("""
            import equinox as eqx

            eqx.nn.inference_mode(model)  # switch dropout off
        """, """
            import equinox as eqx

            model = eqx.nn.inference_mode(model)  # switch dropout off
        """),
    )

    @classmethod
    def may_fire(cls, source: bytes) -> bool:
        """Only where such a call starts a statement (after a line start or a `;`), or
        switches a name in place in a file that wraps a callable (`vmap`, `partial`, a jit)."""
        if not super().may_fire(source):
            return False
        if _STATEMENT_CALL.search(source) is not None:
            return True
        return _WRAPPER_CALL.search(source) is not None and \
            _SWITCHED_IN_PLACE.search(source) is not None

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        yield from _discarded(semantics)
        yield from _stale_callables(semantics)

    def check_runtime(self, context: "RuntimeContext") -> Iterator[Diagnostic]:
        if context.mode != "eval":
            return
        for path, module in context.modules:
            if getattr(module, "inference", None) is not False:
                continue
            if isinstance(getattr(module, "p", None), (int, float)) and module.p == 0:
                continue  # dropout with rate 0 is the identity in either mode
            yield context.diagnostic(
                self, path,
                f"is a {type(module).__name__} in training mode (`inference=False`) while the "
                f"model is evaluated",
                "Switch every layer to inference: `model = eqx.nn.inference_mode(model)`")


def _discarded(semantics: Semantics) -> Iterator[Finding]:
    """`eqx.nn.inference_mode(model)` as a statement: its result thrown away."""
    for site in semantics.calls:
        if site.qualname not in SWITCHES or not isinstance(site.parent, cst.Expr):
            continue
        model = argument(site.node, 0, "model" if site.qualname == SWITCHES[0] else "pytree")
        target = dotted_name(model) if model is not None else None
        call_text = semantics.code_of(site.node)
        replacements: tuple = ()
        if target is not None:
            assignment = cst.parse_statement(f"{target} = {call_text}\n").body[0]
            replacements = ((site.parent, assignment),)
        shown = target or "model"
        yield Finding(
            node=site.node,
            message=(f"`{call_text}` returns a new model and the result is discarded: "
                     f"`{shown}` is still in training mode (nothing in Equinox changes in "
                     f"place)"),
            hint=f"Keep the result: `{shown} = {call_text}`",
            replacements=replacements,
            fix_message=f"Assign the result to `{shown}`",
        )


def _stale_callables(semantics: Semantics) -> Iterator[Finding]:
    """`batched = jax.vmap(model)`, then `model = eqx.nn.inference_mode(model)`, then
    `batched(x)`: the callable still holds the model in training mode."""
    for site in semantics.calls:
        if site.qualname not in SWITCHES:
            continue
        switched = _rebound_name(site)
        if switched is None or not _switches_on(site):
            continue
        switch_binding = next((b for b in site.scope.bindings.get(switched, [])
                               if b.value is site.node), None)
        if switch_binding is None:
            continue
        for name, bindings in site.scope.bindings.items():
            for wrapper in bindings:
                if wrapper.seq >= site.seq or wrapper.index is not None \
                        or not isinstance(wrapper.value, cst.Call):
                    continue
                wrap = semantics.qualname(wrapper.value.func)
                if wrap not in WRAPPERS:
                    continue
                wrapped = argument(wrapper.value, 0, WRAPPERS[wrap])
                if not isinstance(wrapped, cst.Name) or wrapped.value != switched:
                    continue
                stale = _first_call_after(semantics, name, wrapper, site)
                if stale is None:
                    continue
                spelled = wrap.replace("equinox.", "eqx.")
                yield Finding(
                    node=stale.node,
                    message=(f"`{name}` was built by `{spelled}({switched}, ...)` before "
                             f"`{switched} = {semantics.code_of(site.node)}`: it still holds "
                             f"the model in training mode, so this call runs with dropout "
                             f"active (and BatchNorm on batch statistics)"),
                    hint=f"Build it again after switching: `{name} = "
                         f"{semantics.code_of(wrapper.value)}`",
                )
                break


def _switches_on(site: CallSite) -> bool:
    """The call switches inference on: `value` left out or the literal `True`."""
    value = argument(site.node, 1, "value")
    if value is None:
        return site.qualname == SWITCHES[0]  # tree_inference has no default
    return isinstance(value, cst.Name) and value.value == "True"


def _rebound_name(site: CallSite) -> Optional[str]:
    """`model = eqx.nn.inference_mode(model)`: the name switched in place, else None."""
    line = site.line
    if not isinstance(line, cst.SimpleStatementLine):
        return None
    model = argument(site.node, 0, "model" if site.qualname == SWITCHES[0] else "pytree")
    if not isinstance(model, cst.Name):
        return None
    for statement in line.body:
        if isinstance(statement, cst.Assign) and statement.value is site.node \
                and len(statement.targets) == 1 \
                and isinstance(statement.targets[0].target, cst.Name) \
                and statement.targets[0].target.value == model.value:
            return model.value
    return None


def _first_call_after(semantics: Semantics, name: str, wrapper: Binding, switch: CallSite
                      ) -> Optional[CallSite]:
    """The first call of `name` after the switch that still sees `wrapper`'s binding."""
    for site in semantics.calls:
        if site.seq <= switch.seq or not isinstance(site.node.func, cst.Name) \
                or site.node.func.value != name or not site.scope.is_within(switch.scope):
            continue
        if semantics.lookup(name, site.scope, site.seq) is wrapper:
            return site
    return None
