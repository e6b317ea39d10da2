"""Generate eqxlint/knowledge/*.py from the installed equinox and optax.

The linter never imports jax, so what it knows about `equinox.nn` layers and
optax transformations is measured here, once, by building each layer and each
optimizer for real, and written out as plain Python data. A test re-runs the
measurement and fails when the committed files disagree with the library.

    python scripts/generate_knowledge.py          # rewrite the files
    python scripts/generate_knowledge.py --check  # exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import pprint
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "eqxlint" / "knowledge"


def _equinox_nn_constructors() -> dict[str, Callable[[], Any]]:
    """Small, valid constructor calls for every concrete layer in equinox.nn."""
    import equinox as eqx
    import jax

    key = jax.random.PRNGKey(0)
    nn = eqx.nn
    return {
        "AdaptiveAvgPool1d": lambda: nn.AdaptiveAvgPool1d(2),
        "AdaptiveAvgPool2d": lambda: nn.AdaptiveAvgPool2d(2),
        "AdaptiveAvgPool3d": lambda: nn.AdaptiveAvgPool3d(2),
        "AdaptiveMaxPool1d": lambda: nn.AdaptiveMaxPool1d(2),
        "AdaptiveMaxPool2d": lambda: nn.AdaptiveMaxPool2d(2),
        "AdaptiveMaxPool3d": lambda: nn.AdaptiveMaxPool3d(2),
        "AvgPool1d": lambda: nn.AvgPool1d(2),
        "AvgPool2d": lambda: nn.AvgPool2d(2),
        "AvgPool3d": lambda: nn.AvgPool3d(2),
        "BatchNorm": lambda: nn.BatchNorm(3, "batch"),
        "Conv1d": lambda: nn.Conv1d(2, 2, 3, key=key),
        "Conv2d": lambda: nn.Conv2d(2, 2, 3, key=key),
        "Conv3d": lambda: nn.Conv3d(2, 2, 3, key=key),
        "ConvTranspose1d": lambda: nn.ConvTranspose1d(2, 2, 3, key=key),
        "ConvTranspose2d": lambda: nn.ConvTranspose2d(2, 2, 3, key=key),
        "ConvTranspose3d": lambda: nn.ConvTranspose3d(2, 2, 3, key=key),
        "Dropout": lambda: nn.Dropout(0.1),
        "Embedding": lambda: nn.Embedding(4, 2, key=key),
        "GRUCell": lambda: nn.GRUCell(2, 2, key=key),
        "GroupNorm": lambda: nn.GroupNorm(2, 4),
        "Identity": lambda: nn.Identity(),
        "LSTMCell": lambda: nn.LSTMCell(2, 2, key=key),
        "Lambda": lambda: nn.Lambda(jax.nn.relu),
        "LayerNorm": lambda: nn.LayerNorm(2),
        "Linear": lambda: nn.Linear(2, 2, key=key),
        "MLP": lambda: nn.MLP(2, 2, 2, 1, key=key),
        "MaxPool1d": lambda: nn.MaxPool1d(2),
        "MaxPool2d": lambda: nn.MaxPool2d(2),
        "MaxPool3d": lambda: nn.MaxPool3d(2),
        "MultiheadAttention": lambda: nn.MultiheadAttention(2, 4, key=key),
        "PReLU": lambda: nn.PReLU(),
        "RMSNorm": lambda: nn.RMSNorm(2),
        "RotaryPositionalEmbedding": lambda: nn.RotaryPositionalEmbedding(4),
    }


# Layers that wrap other layers: what they hold is what they are given.
EQUINOX_NN_CONTAINERS = ("Sequential", "Shared", "SpectralNorm", "WeightNorm")


def _describe_leaf(leaf: Any) -> str:
    kind = type(leaf)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def measure_equinox_nn() -> dict[str, Any]:
    """Which equinox.nn layers hold non-array leaves, and which hold state."""
    import equinox as eqx
    import jax

    non_array: dict[str, str] = {}
    arrays_only: list[str] = []
    stateful: list[str] = []
    for name, build in sorted(_equinox_nn_constructors().items()):
        layer = build()
        leaves = jax.tree_util.tree_leaves_with_path(layer)
        odd = [
            f"{jax.tree_util.keystr(path)[1:]}: {_describe_leaf(leaf)}"
            for path, leaf in leaves
            if not eqx.is_array(leaf)
        ]
        if any(isinstance(leaf, eqx.nn.StateIndex) for leaf in jax.tree_util.tree_leaves(
                layer, is_leaf=lambda x: isinstance(x, eqx.nn.StateIndex))):
            stateful.append(name)
        if odd:
            non_array[name] = ", ".join(odd)
        else:
            arrays_only.append(name)
    return {
        "EQUINOX_VERSION": eqx.__version__,
        "NON_ARRAY_LEAVES": non_array,
        "ARRAYS_ONLY": sorted(arrays_only),
        "CONTAINERS": list(EQUINOX_NN_CONTAINERS),
        "STATEFUL": sorted(stateful + ["SpectralNorm", "StateIndex"]),
    }


def _optax_factories() -> dict[str, Callable[..., Any]]:
    import optax
    import optax.contrib

    found: dict[str, Callable[..., Any]] = {}
    for prefix, namespace in (("", optax), ("contrib.", optax.contrib)):
        for name in dir(namespace):
            obj = getattr(namespace, name)
            if name.startswith("_") or not callable(obj) or isinstance(obj, type):
                continue
            found[prefix + name] = obj
    return found


def _build_transformation(factory: Callable[..., Any]) -> Any:
    """Call an optax factory with the simplest arguments that construct it."""
    import optax

    for args, kwargs in (((), {"learning_rate": 0.1}), ((0.1,), {}), ((), {})):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = factory(*args, **kwargs)
        except Exception:
            continue
        if isinstance(result, optax.GradientTransformation):
            return result
    return None


def _probe(transformation: Any) -> tuple[bool, bool]:
    """(accepts a whole module unfiltered, reads params in update)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    model = eqx.nn.Sequential([eqx.nn.Linear(3, 3, key=key), eqx.nn.Lambda(jax.nn.relu)])
    params = eqx.filter(model, eqx.is_inexact_array)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            state = transformation.init(model)
            transformation.update(grads, state, params)
            accepts_module = True
        except Exception:
            accepts_module = False
        try:
            state = transformation.init(params)
        except Exception:
            return accepts_module, False
        try:
            transformation.update(grads, state)
            reads_params = False
        except (TypeError, ValueError) as error:
            # optax says so in words (ValueError) or Python does (a missing `params`).
            reads_params = "params" in str(error)
    return accepts_module, reads_params


def measure_optax() -> dict[str, Any]:
    """Which optax factories build transformations, and how they treat modules."""
    import optax

    transformations: dict[str, dict[str, bool]] = {}
    for name, factory in sorted(_optax_factories().items()):
        transformation = _build_transformation(factory)
        if transformation is None:
            continue
        accepts_module, reads_params = _probe(transformation)
        transformations[name] = {"accepts_module": accepts_module, "reads_params": reads_params}
    # Arguments that make an otherwise stateless transformation keep state.
    stateful_with: dict[str, str] = {}
    if transformations.get("sgd", {}).get("accepts_module"):
        if not _probe(optax.sgd(0.1, momentum=0.9))[0]:
            stateful_with["sgd"] = "momentum"
    return {
        "OPTAX_VERSION": optax.__version__,
        "TRANSFORMATIONS": transformations,
        "STATEFUL_WITH_ARGUMENT": stateful_with,
    }


def render(doc: str, data: dict[str, Any]) -> str:
    lines = [f'"""{doc}', "", "Generated by scripts/generate_knowledge.py; do not edit.", '"""', ""]
    for name, value in data.items():
        lines.append(f"{name} = {pprint.pformat(value, width=88, sort_dicts=True)}")
        lines.append("")
    return "\n".join(lines)


def generated_files() -> dict[Path, str]:
    return {
        KNOWLEDGE_DIR / "equinox_nn.py": render(
            "What each equinox.nn layer holds, measured by building it.", measure_equinox_nn()
        ),
        KNOWLEDGE_DIR / "optax_transforms.py": render(
            "Which optax factories build transformations, measured by running them.",
            measure_optax(),
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    options = parser.parse_args()
    stale = []
    for path, text in generated_files().items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not options.check:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if options.check else 'wrote'}: {path}")
    return 1 if options.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
