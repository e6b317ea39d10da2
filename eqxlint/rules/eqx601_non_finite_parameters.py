"""EQX601: NaN or Inf in a trainable array."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from eqxlint.diagnostics import Diagnostic
from eqxlint.rules.base import Rule

if TYPE_CHECKING:
    from eqxlint.runtime.checker import RuntimeContext


class NonFiniteParameters(Rule):
    code = "EQX601"
    name = "non-finite-parameters"
    summary = "NaN or Inf in a trainable array"
    static = False
    what_it_does = """
        Reports every floating-point array of the model that holds a NaN or an Inf, by path.
    """
    why_bad = """
        One non-finite weight makes every output and every gradient NaN; the loss curve
        shows it only as a flat line of `nan`.
    """
    example = """
        assert_trainable(model)  # after a step with a learning rate that was too high
    """
    use_instead = """
        optim = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-4))
    """
    fix_safety = "No automatic fix: find the step that produced it (`jax.debug_nans`)."
    runtime = """
        `check_model(model)` tests each concrete floating-point array with `jnp.isfinite`
        on its device, one reduction per array, and moves one boolean per array to the
        host; arrays already in host memory (the CPU backend, NumPy arrays loaded from a
        checkpoint) are read in place with NumPy. The cost is
        linear in the number of arrays. Abstract models are skipped.
    """
    real_error = "(none: the loss becomes nan)"

    def check_runtime(self, context: "RuntimeContext") -> Iterator[Diagnostic]:
        import jax
        import jax.numpy as jnp
        import numpy as np

        flags: list[tuple[str, object, object]] = []
        for path, leaf in context.leaves:
            if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jnp.inexact):
                host = _host_view(leaf)
                if host is not None:  # a CPU array: NumPy reads its memory, no dispatch
                    flags.append((path, leaf, np.isfinite(host).all()))
                else:  # one reduction per array on its device
                    flags.append((path, leaf, _all_finite()(leaf)))
            elif isinstance(leaf, np.ndarray) and np.issubdtype(leaf.dtype, np.inexact):
                flags.append((path, leaf, np.isfinite(leaf).all()))  # on the host, where it is
        if not flags:
            return
        # One transfer for every flag: per array a scalar, never a stack of them all
        # (XLA compiles a stack of 10k operands superlinearly).
        values = jax.device_get([flag for _, _, flag in flags])
        for (path, leaf, _), ok in zip(flags, values):
            if not bool(ok):
                yield context.diagnostic(
                    self, path, f"holds NaN or Inf ({leaf.dtype}, shape {tuple(leaf.shape)})",
                    "Find the step that made it: `jax.config.update('jax_debug_nans', True)`; "
                    "clip gradients or lower the learning rate")


_ALL_FINITE: list = []


def _host_view(leaf):  # type: ignore[no-untyped-def]
    """The NumPy view of a JAX array that lives in host memory (the CPU backend), else None.

    On CPU `np.asarray` shares the buffer: nothing is copied, and NumPy's `isfinite` costs
    microseconds where a device dispatch costs a fraction of a millisecond.
    """
    import numpy as np

    try:
        if not all(device.platform == "cpu" for device in leaf.devices()):
            return None
        return np.asarray(leaf)
    except Exception:  # deleted, sharded across hosts, a dtype NumPy cannot view
        return None


def _all_finite():  # type: ignore[no-untyped-def]
    """`jnp.isfinite(x).all()` compiled once per shape and dtype (jit caches it)."""
    if not _ALL_FINITE:
        import jax
        import jax.numpy as jnp

        _ALL_FINITE.append(jax.jit(lambda x: jnp.isfinite(x).all()))
    return _ALL_FINITE[0]
