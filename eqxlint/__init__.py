"""eqxlint: find the mistakes that make Equinox training code crash or train the wrong thing.

Importing eqxlint does not import jax: the linter never needs it, and the runtime
checks (`check_model`, `assert_trainable`, `check_state_dict`, `check_step`,
`assert_step`) import it when first called.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from eqxlint.diagnostics import Diagnostic, Diagnostics, TrainabilityError

__version__ = "0.1.0"
__all__ = ["Diagnostic", "Diagnostics", "TrainabilityError", "assert_step", "assert_trainable",
           "check_model", "check_state_dict", "check_step", "__version__"]


def check_model(model: Any, *, opt_state: Any = None, optim: Any = None, state: Any = None,
                mode: str = "train") -> Diagnostics:
    """Every problem eqxlint can see in a live model, as a list of Diagnostic.

    `opt_state`/`optim`: also check the optimizer against the model (EQX102, EQX104).
    `state`: the model's `eqx.nn.State`, if it has stateful layers (EQX302).
    `mode="eval"`: also report layers still in training mode (EQX501).
    """
    from eqxlint.runtime.checker import check_model as _check_model

    return _check_model(model, opt_state=opt_state, optim=optim, state=state, mode=mode)


def assert_trainable(model: Any, *, opt_state: Any = None, optim: Any = None, state: Any = None,
                     mode: str = "train") -> None:
    """Silent when `check_model` finds nothing; otherwise raise TrainabilityError listing it all."""
    __tracebackhide__ = True  # pytest and IPython show the caller's line, not ours
    diagnostics = check_model(model, opt_state=opt_state, optim=optim, state=state, mode=mode)
    if diagnostics:
        raise TrainabilityError(diagnostics) from None


def check_state_dict(model: Any, state_dict: Mapping[str, Any], *, state: Any = None,
                     key_map: Optional[Mapping[str, str]] = None) -> Diagnostics:
    """Compare a PyTorch-style state dict with the model by name and shape (EQX401).

    `state`: the model's `eqx.nn.State`; BatchNorm running statistics are then expected.
    """
    from eqxlint.interop import check_state_dict as _check_state_dict

    return _check_state_dict(model, state_dict, state=state, key_map=key_map)


def check_step(step: Any, *args: Any, **kwargs: Any) -> Diagnostics:
    """A dry run of the training step `step(*args, **kwargs)` on shapes only, as diagnostics.

    The step is traced once (as `jax.eval_shape` would: no compute, no data moved); the
    model, optimizer state and `eqx.nn.State` it returns are matched to those it was given
    by structure and type, and compared: EQX101 (None where a function was), EQX503
    (returned unchanged: nothing trains), EQX603 (structure drift). A step that fails in an
    optax call gets the code that explains it (EQX102, EQX103, EQX104, EQX106); any other
    failure of the step is raised as it is. The step may be wrapped in `eqx.filter_jit`.
    """
    from eqxlint.runtime import require_jax

    require_jax()
    from eqxlint.runtime.step import check_step as _check_step

    return _check_step(step, *args, **kwargs)


def assert_step(step: Any, *args: Any, **kwargs: Any) -> None:
    """Silent when `check_step` finds nothing; otherwise raise TrainabilityError listing it all."""
    __tracebackhide__ = True  # pytest and IPython show the caller's line, not ours
    diagnostics = check_step(step, *args, **kwargs)
    if diagnostics:
        raise TrainabilityError(diagnostics, subject="this training step") from None
