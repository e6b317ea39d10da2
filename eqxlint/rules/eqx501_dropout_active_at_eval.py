"""EQX501: Dropout or BatchNorm still in training mode when the model is evaluated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from eqxlint.diagnostics import Diagnostic
from eqxlint.rules.base import Rule

if TYPE_CHECKING:
    from eqxlint.runtime.checker import RuntimeContext


class DropoutActiveAtEval(Rule):
    code = "EQX501"
    name = "dropout-active-at-eval"
    summary = "A model evaluated with Dropout/BatchNorm still in training mode"
    static = False
    what_it_does = """
        With `check_model(model, mode="eval")`, lists every layer whose `inference` flag
        is `False`: `eqx.nn.Dropout`, `eqx.nn.BatchNorm`, the dropout inside
        `eqx.nn.MultiheadAttention`, and modules of your own that follow the convention.
        A dropout with rate 0 is the identity in either mode and is not reported.
    """
    why_bad = """
        In training mode Dropout zeroes activations at random (and needs a `key`), and
        BatchNorm uses the batch's statistics and updates its running ones. Evaluation
        numbers come out noisy and wrong, with no error at all.
    """
    example = """
        check_model(model, mode="eval")
        accuracy = evaluate(model, test_data)
    """
    use_instead = """
        model = eqx.nn.inference_mode(model)
        accuracy = evaluate(model, test_data)
    """
    fix_safety = "No automatic fix: the runtime message gives the line to write."
    runtime = """
        `check_model(model, mode="eval")` reports each layer in training mode by path
        (`model.layers[2]`) and points to `eqx.nn.inference_mode(model)`.
    """
    real_error = "(none: the results are silently wrong)"
    known_limits = "Runtime only for now: the static side described in RULES.md is not built yet."

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
