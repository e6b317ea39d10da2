"""EQX602: the runtime checker called on traced values, inside jit/grad/vmap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from eqxlint.diagnostics import Diagnostic
from eqxlint.rules.base import Rule

if TYPE_CHECKING:
    from eqxlint.runtime.checker import RuntimeContext


class TracedModel(Rule):
    code = "EQX602"
    name = "traced-model"
    summary = "The runtime checker was called inside jit/grad/vmap on traced values"
    static = False
    what_it_does = """
        Says so plainly when `check_model` or `assert_trainable` is given traced values
        (inside `jax.jit`, `eqx.filter_jit`, `jax.grad`, `jax.vmap`), instead of failing
        on a tracer. No other check runs then.
    """
    why_bad = """
        Inside a transformation, arrays are tracers: their values are not known, and
        Python checks on them raise `TracerBoolConversionError` far from the call.
    """
    example = """
        @eqx.filter_jit
        def step(model, x):
            assert_trainable(model)
            ...
    """
    use_instead = """
        assert_trainable(model)
        model = step(model, x)
    """
    fix_safety = "No automatic fix: move the check outside the transformed function."
    runtime = """
        `check_model` returns a single EQX602 diagnostic (and `assert_trainable` raises
        it) when any array of the model, state or optimizer state is a tracer.
    """

    def check_runtime(self, context: "RuntimeContext") -> Iterator[Diagnostic]:
        import jax

        from eqxlint.runtime.tree import leaves_with_paths

        for root, tree in (("model", context.model), ("state", context.state),
                           ("opt_state", context.opt_state)):
            if tree is None:
                continue
            for path, leaf in leaves_with_paths(tree, root):
                if isinstance(leaf, jax.core.Tracer):
                    yield context.diagnostic(
                        self, path,
                        "is a tracer: the checker was called inside `jax.jit`, `jax.grad` or "
                        "`jax.vmap` (or their `eqx.filter_*` forms), where values are unknown",
                        "Call it outside the transformed function, on the concrete model")
                    return
