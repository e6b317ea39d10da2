"""check_model: run every rule's runtime predicate over one live model."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eqxlint.diagnostics import Diagnostic, Diagnostics, Fix
from eqxlint.runtime import require_jax

MODES = ("train", "eval")


@dataclass
class RuntimeContext:
    """What the runtime predicates look at; expensive views are computed once."""

    model: Any
    opt_state: Any = None
    optim: Any = None
    state: Any = None
    mode: str = "train"

    @cached_property
    def leaves(self) -> list[tuple[str, Any]]:
        from eqxlint.runtime.tree import leaves_with_paths

        return leaves_with_paths(self.model, "model")

    @cached_property
    def modules(self) -> list[tuple[str, Any]]:
        from eqxlint.runtime.tree import modules_with_paths

        return list(modules_with_paths(self.model, "model"))

    @cached_property
    def stray_leaves(self) -> list[Any]:
        """Model leaves with optimizer state that are not trained (EQX102 and EQX104)."""
        if self.opt_state is None:
            return []
        from eqxlint.runtime.optimizer import stray_leaves

        return stray_leaves(self.model, self.opt_state)

    def diagnostic(self, rule: Any, path: str, predicate: str, hint: str) -> Diagnostic:
        """A finding about `path`; `predicate` completes the sentence "`path` ..."."""
        applicability = rule.fix_applicability or "unsafe"
        return Diagnostic(code=rule.code, message=f"`{path}` {predicate}", hint=hint, path=path,
                          fix=Fix(applicability, hint))


def validate_model(model: Any, role: str = "check_model") -> None:
    """A model is an eqx.Module or a pytree holding modules or arrays; anything else is a
    TypeError, not a silent "no problems". A tree that contains itself is a ValueError."""
    import equinox as eqx
    import jax

    from eqxlint.runtime.tree import describe, is_array_like, modules_with_paths

    if isinstance(model, (eqx.Module, list, tuple, dict)):
        modules = list(modules_with_paths(model, "model"))  # raises on a cycle
        if modules or any(is_array_like(leaf) for leaf in jax.tree_util.tree_leaves(model)):
            return
    raise TypeError(f"{role} expects an Equinox module (or a pytree of modules and arrays) "
                    f"as `model`, got {describe(model)}: pass the model itself, e.g. "
                    f"`{role}(model)` after `model = eqx.nn.MLP(...)`")


def check_model(model: Any, *, opt_state: Any = None, optim: Any = None, state: Any = None,
                mode: str = "train") -> Diagnostics:
    require_jax()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    validate_model(model)
    from eqxlint.rules import all_rules, get_rule

    context = RuntimeContext(model, opt_state=opt_state, optim=optim, state=state, mode=mode)
    traced = list(get_rule("EQX602")().check_runtime(context))
    if traced:  # nothing else can be said about tracers
        return Diagnostics(traced)
    found: list[Diagnostic] = []
    for rule in all_rules():
        if rule.code != "EQX602":
            found.extend(rule().check_runtime(context))
    return Diagnostics(found)
