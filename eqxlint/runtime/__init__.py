"""The runtime half: checks over live model pytrees. Imports jax; the linter never does."""

from __future__ import annotations


def require_jax() -> None:
    """Import jax and equinox, or say what to install."""
    try:
        import equinox  # noqa: F401
        import jax  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"eqxlint's runtime checks need jax and equinox ({error.name} is missing): "
            "pip install 'eqxlint[runtime]'") from None
