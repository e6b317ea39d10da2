"""EQX603: a training step returns a model or optimizer state shaped unlike the one it got."""

from __future__ import annotations

from eqxlint.rules.base import Rule


class StepStructureDrift(Rule):
    code = "EQX603"
    name = "step-structure-drift"
    summary = "A training step returns its model or optimizer state with another structure"
    static = False
    fix_applicability = "unsafe"
    what_it_does = """
        `check_step(step, model, opt_state, ...)` compares the model, the optimizer state
        and the `eqx.nn.State` the step returns with those it was given: tree structure,
        and for each leaf its shape and dtype (arrays) or its value (Python scalars and
        other static leaves).
    """
    why_bad = """
        The next call of the step gets the returned values. Under `eqx.filter_jit` a new
        structure, shape, dtype or static value means a new trace and compile, every step
        when it keeps changing (a Python `int` step counter kept in the model); optax and
        `eqx.combine` fail when the structure no longer matches the gradients.
    """
    example = """
        @eqx.filter_jit
        def step(model, opt_state, x, y):
            ...
            model = eqx.tree_at(lambda m: m.step, model, model.step + 1)  # a Python int
            return model, opt_state
    """
    use_instead = """
        class Net(eqx.Module):
            step: jax.Array  # jnp.asarray(0): traced, not static
    """
    fix_safety = "No automatic fix: the step decides what it returns."
    runtime = """
        `check_step` only: the step is traced once on shapes and the returned tree is
        matched to the given one by structure and type. A returned model that only has
        None where the given one had non-arrays is EQX101, not this.
    """
