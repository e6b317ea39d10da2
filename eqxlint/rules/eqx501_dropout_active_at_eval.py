"""EQX501: Dropout or BatchNorm still in training mode when the model is evaluated."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from eqxlint.diagnostics import Diagnostic
from eqxlint.rules.base import Bad, Finding, FirstLook, FixCase, Good, Rule
from eqxlint.semantics import Semantics, argument, dotted_name

SWITCHES = ("equinox.nn.inference_mode", "equinox.tree_inference")
# A call that starts a statement (its result can only be discarded there).
_STATEMENT_CALL = re.compile(rb"(?:^|;)[ \t]*[\w.]*(?:inference_mode|tree_inference)\s*\(",
                             re.MULTILINE)

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
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Only where such a call starts a statement (after a line start or a `;`)."""
        return super().may_fire(source, look) and _STATEMENT_CALL.search(source) is not None

    def check(self, semantics: Semantics) -> Iterator[Finding]:
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
