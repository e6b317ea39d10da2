"""EQX302: a model with stateful layers (BatchNorm, SpectralNorm) and no eqx.nn.State."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from eqxlint.diagnostics import Diagnostic
from eqxlint.rules.base import Rule

if TYPE_CHECKING:
    from eqxlint.runtime.checker import RuntimeContext


class StatefulModelWithoutState(Rule):
    code = "EQX302"
    name = "stateful-model-without-state"
    summary = "A model with BatchNorm/SpectralNorm/StateIndex used without its eqx.nn.State"
    static = False
    what_it_does = """
        Checks that a model holding `eqx.nn.StateIndex` leaves (inside `eqx.nn.BatchNorm`,
        `eqx.nn.SpectralNorm`, or a layer of your own) comes with its `eqx.nn.State`, and
        that the state has an entry for every index.
    """
    why_bad = """
        Stateful layers keep their running statistics outside the model, in an
        `eqx.nn.State` built with it. Without it, the first call fails (the error is
        quoted below); with the state of another model, `state.get` fails deep inside.
    """
    example = """
        model = Net(key)
        check_model(model)
    """
    use_instead = """
        model, state = eqx.nn.make_with_state(Net)(key)
        check_model(model, state=state)
    """
    fix_safety = "No automatic fix: where the state comes from is the author's choice."
    runtime = """
        `check_model(model)` reports every stateful layer, by path, when no `state=` is
        given; `check_model(model, state=state)` reports indices the state has no entry for.
    """
    real_error = "TypeError: BatchNorm.__call__() missing 1 required positional argument: 'state'"
    known_limits = "Runtime only for now: the static side described in RULES.md is not built yet."

    def check_runtime(self, context: "RuntimeContext") -> Iterator[Diagnostic]:
        import equinox as eqx

        indices = [(path, module) for path, module in context.modules
                   if isinstance(module, eqx.nn.StateIndex)]
        if not indices:
            return
        if context.state is None:
            layers: dict[str, str] = {}
            for path, _ in indices:
                owner = path.rsplit(".", 1)[0]
                owner_module = dict(context.modules).get(owner)
                layers.setdefault(owner, type(owner_module).__name__ if owner_module else "layer")
            for owner, kind in layers.items():
                yield context.diagnostic(
                    self, owner,
                    f"is a {kind}, which keeps state in an `eqx.nn.State`, and no state was given",
                    "Build both: `model, state = eqx.nn.make_with_state(Net)(...)`, then "
                    "`check_model(model, state=state)` and call `model(x, state)`")
            return
        for path, index in indices:
            try:
                context.state.get(index)
            except Exception:
                yield context.diagnostic(
                    self, path, "has no entry in the given state: the state was made for "
                    "another model", "Rebuild it for this model: `state = eqx.nn.State(model)`")
