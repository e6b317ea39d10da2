"""EQX104: integer or boolean arrays in the trainable set or the optimizer state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from eqxlint.diagnostics import Diagnostic
from eqxlint.rules.base import Rule

if TYPE_CHECKING:
    from eqxlint.runtime.checker import RuntimeContext


class IntegerLeavesTrained(Rule):
    code = "EQX104"
    name = "integer-leaves-trained"
    summary = "Integer or boolean arrays in the trainable set or the optimizer state"
    static = False
    what_it_does = """
        Checks the optimizer state against the model: when `optim.init` was given
        `eqx.filter(model, eqx.is_array)` and the model holds integer or boolean arrays
        (indices, masks, counters), the optimizer keeps state for them.
    """
    why_bad = """
        `eqx.filter_grad` differentiates floating-point arrays only: its gradient is `None`
        at every integer array. The optimizer state, built from `eqx.is_array`, has a slot
        there, and optax (0.2.7 and later) refuses the mismatched structures at the first
        `optim.update` (the error is quoted below).
    """
    example = """
        opt_state = optim.init(eqx.filter(model, eqx.is_array))
    """
    use_instead = """
        opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
    """
    fix_safety = """
        No automatic fix yet: the static side (a visible `eqx.is_array` filter given to
        `optim.init`) is not implemented. The message gives the line to write.
    """
    runtime = """
        `check_model(model, opt_state=opt_state)` names every integer or boolean array of
        the model that has optimizer state, by path (`model.embedding.indices`).
    """
    real_error = ("ValueError: pytree structure error: different types at key path\n"
                  "    tree_map tree.idx\n"
                  "At that key path, the prefix pytree tree_map tree has a subtree of type\n"
                  "    <class 'NoneType'>\n"
                  "but at the same key path the full pytree has a subtree of different type\n"
                  "    <class 'jaxlib._jax.ArrayImpl'>.")
    known_limits = "Runtime only for now: the static side described in RULES.md is not built yet."

    def check_runtime(self, context: "RuntimeContext") -> Iterator[Diagnostic]:
        if context.opt_state is None:
            return
        from eqxlint.runtime.optimizer import stray_leaves
        from eqxlint.runtime.tree import describe

        for stray in stray_leaves(context.model, context.opt_state):
            if stray.integer_array:
                yield context.diagnostic(
                    self, stray.path,
                    f"is {describe(stray.leaf)}, yet the optimizer state has a slot for it: "
                    f"`optim.init` was given `eqx.filter(model, eqx.is_array)`, and "
                    f"`eqx.filter_grad` gives None there",
                    "Train floating-point arrays only: "
                    "`optim.init(eqx.filter(model, eqx.is_inexact_array))`")
