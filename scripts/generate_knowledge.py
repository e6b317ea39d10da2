"""Generate eqxlint/knowledge/*.py from the installed jax, equinox and optax.

The linter never imports jax, so what it knows about `equinox.nn` layers and
optax transformations is measured here, once, by building each layer and each
optimizer for real, and written out as plain Python data. A test re-runs the
measurement and fails when the committed files disagree with the library.

    python scripts/generate_knowledge.py          # rewrite the files
    python scripts/generate_knowledge.py --check  # exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import difflib
import pprint
import re
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


def _build_layer(build: Callable[[], Any]) -> Any:
    """Build a layer abstractly: its arrays become ShapeDtypeStructs, everything else is real.

    Eager construction compiles every random initialiser (about a minute on a busy
    machine); tracing it gives the same fields and kinds in well under a second.
    """
    import equinox as eqx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eqx.filter_eval_shape(build)


def _is_array(leaf: Any) -> bool:
    import equinox as eqx
    import jax

    return eqx.is_array(leaf) or isinstance(leaf, jax.ShapeDtypeStruct)


def measure_equinox_nn() -> dict[str, Any]:
    """Which equinox.nn layers hold non-array leaves, and which hold state."""
    import equinox as eqx
    import jax

    non_array: dict[str, str] = {}
    arrays_only: list[str] = []
    stateful: list[str] = []
    for name, build in sorted(_equinox_nn_constructors().items()):
        layer = _build_layer(build)
        leaves = jax.tree_util.tree_leaves_with_path(layer)
        odd = [
            f"{jax.tree_util.keystr(path)[1:]}: {_describe_leaf(leaf)}"
            for path, leaf in leaves
            if not _is_array(leaf)
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
        **measure_equinox_nn_fields(),
    }


def _extra_equinox_nn_constructors() -> dict[str, Callable[[], Any]]:
    """The public eqx.nn Modules not in `_equinox_nn_constructors`: wrappers and bases."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    nn = eqx.nn

    def linear() -> Any:
        return nn.Linear(2, 2, key=key)

    return {
        "AdaptivePool": lambda: nn.AdaptivePool(2, 1, jnp.mean),
        "Conv": lambda: nn.Conv(1, 2, 2, 3, key=key),
        "ConvTranspose": lambda: nn.ConvTranspose(1, 2, 2, 3, key=key),
        "Pool": lambda: nn.Pool(0.0, jax.lax.add, 1, 2),
        "Sequential": lambda: nn.Sequential([linear(), nn.Lambda(jax.nn.relu)]),
        "Shared": lambda: nn.Shared((linear(), linear()), lambda pair: pair[1].weight,
                                    lambda pair: pair[0].weight),
        "SpectralNorm": lambda: nn.SpectralNorm(linear(), "weight", key=key),
        "StateIndex": lambda: nn.StateIndex(jnp.zeros(2)),
        "WeightNorm": lambda: nn.WeightNorm(linear()),
    }


def _constructor_variants() -> dict[str, list[Callable[[], Any]]]:
    """Other cheap constructions, to see which fields' kinds follow the arguments."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    nn = eqx.nn
    return {
        "Linear": [lambda: nn.Linear(2, 2, use_bias=False, key=key)],
        "Conv1d": [lambda: nn.Conv1d(2, 2, 3, use_bias=False, key=key)],
        "Conv2d": [lambda: nn.Conv2d(2, 2, 3, use_bias=False, key=key)],
        "Conv3d": [lambda: nn.Conv3d(2, 2, 3, use_bias=False, key=key)],
        "ConvTranspose1d": [lambda: nn.ConvTranspose1d(2, 2, 3, use_bias=False, key=key)],
        "ConvTranspose2d": [lambda: nn.ConvTranspose2d(2, 2, 3, use_bias=False, key=key)],
        "ConvTranspose3d": [lambda: nn.ConvTranspose3d(2, 2, 3, use_bias=False, key=key)],
        "GRUCell": [lambda: nn.GRUCell(2, 2, use_bias=False, key=key)],
        "LSTMCell": [lambda: nn.LSTMCell(2, 2, use_bias=False, key=key)],
        "LayerNorm": [lambda: nn.LayerNorm(2, use_weight=False, use_bias=False)],
        "RMSNorm": [lambda: nn.RMSNorm(2, use_weight=False, use_bias=True)],
        "GroupNorm": [lambda: nn.GroupNorm(2, 4, channelwise_affine=False)],
        "BatchNorm": [lambda: nn.BatchNorm(3, "batch", channelwise_affine=False, mode="batch")],
        "MultiheadAttention": [lambda: nn.MultiheadAttention(
            2, 4, use_query_bias=True, use_key_bias=True, use_value_bias=True,
            use_output_bias=True, key=key)],
        "MLP": [lambda: nn.MLP(2, 2, 2, 1, activation=lambda x: x,
                               final_activation=jax.nn.sigmoid, key=key)],
        "Lambda": [lambda: nn.Lambda(lambda x: x), lambda: nn.Lambda(_plain_function)],
        "Dropout": [lambda: nn.Dropout(0.1, inference=True)],
        "PReLU": [lambda: nn.PReLU(jnp.array([0.1, 0.2]))],
    }


def _field_kind(value: Any, static: bool) -> str:
    """A field's kind in the jax_transforms vocabulary, plus static/module/modules/state_index."""
    import types

    import equinox as eqx
    import numpy as np

    if static:
        return "static"
    if isinstance(value, eqx.nn.StateIndex):
        return "state_index"
    if isinstance(value, eqx.Module):
        return "module"
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(item, eqx.Module) for item in value):
        return "modules"
    if _is_array(value):
        dtype = np.dtype(value.dtype)
        if np.issubdtype(dtype, np.inexact):
            return "inexact_array"
        return "bool_array" if dtype == np.bool_ else "integer_array"
    simple = {bool: "python_bool", int: "python_int", float: "python_float", str: "str",
              type(None): "none"}
    if type(value) in simple:
        return simple[type(value)]
    if isinstance(value, types.FunctionType):
        return "lambda" if value.__name__ == "<lambda>" else "python_function"
    if callable(value):
        return "function"
    return f"other: {_describe_leaf(value)}"


def _field_kinds(layer: Any) -> dict[str, str]:
    import dataclasses

    return {field.name: _field_kind(getattr(layer, field.name), bool(field.metadata.get("static")))
            for field in dataclasses.fields(layer)}


def measure_equinox_nn_fields() -> dict[str, Any]:
    """FIELD_KINDS of every public eqx.nn Module as default-built; which kinds follow arguments."""
    import equinox as eqx

    builders = {**_equinox_nn_constructors(), **_extra_equinox_nn_constructors()}
    field_kinds: dict[str, dict[str, str]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, build in sorted(builders.items()):
            field_kinds[name] = _field_kinds(_build_layer(build))
        dependent: dict[str, dict[str, list[str]]] = {}
        for name, variants in sorted(_constructor_variants().items()):
            seen = {field: {kind} for field, kind in field_kinds[name].items()}
            for build in variants:
                for field, kind in _field_kinds(_build_layer(build)).items():
                    seen.setdefault(field, set()).add(kind)
            changed = {field: sorted(kinds) for field, kinds in seen.items() if len(kinds) > 1}
            if changed:
                dependent[name] = changed
    public = sorted(name for name in dir(eqx.nn) if isinstance(getattr(eqx.nn, name), type)
                    and issubclass(getattr(eqx.nn, name), eqx.Module))
    return {
        "FIELD_KINDS": field_kinds,
        "CONSTRUCTOR_DEPENDENT_FIELDS": dependent,
        "NOT_CONSTRUCTED": [name for name in public if name not in field_kinds],
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


# ---------------------------------------------------------------------------
# What `update(..., params=MODULE)` and `init(eqx.filter(model, eqx.is_array_like))` do.


def _optax_probe_models() -> tuple[Any, Any]:
    """(Linear then Lambda(jax.nn.relu), Linear then Dropout: a Python float and bool).

    The Linear has _probe's shapes, so eager optax ops reuse its compiled kernels.
    """
    import equinox as eqx
    import jax

    linear = eqx.nn.Linear(3, 3, key=jax.random.PRNGKey(0))
    return (eqx.nn.Sequential([linear, eqx.nn.Lambda(jax.nn.relu)]),
            eqx.nn.Sequential([linear, eqx.nn.Dropout(0.1)]))


def _module_params_probe(transformation: Any, models: tuple[Any, Any]) -> dict[str, Any]:
    """How `transformation` treats a whole module as `params`, and is_array_like params.

    accepts_module_params(_jit) is None when update fails even with filtered params
    (the transformation needs more than grads/state/params, e.g. lbfgs's `value`).
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    with_activation, dropout_like = models
    params = eqx.filter(with_activation, eqx.is_inexact_array)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    facts: dict[str, Any] = {}
    errors: dict[str, str] = {}
    state_holder: list[Any] = []

    def init() -> Any:
        state_holder.append(transformation.init(params))
        return state_holder[-1]

    if _attempt(init) is not None or _attempt(
            lambda: transformation.update(grads, state_holder[-1], params)) is not None:
        facts["accepts_module_params"] = None
        facts["accepts_module_params_jit"] = None
    else:
        state = state_holder[-1]
        eager = _attempt(lambda: transformation.update(grads, state, with_activation))
        update = eqx.filter_jit(lambda g, s, p: transformation.update(g, s, p))
        jitted = _attempt(lambda: update.lower(grads, state, with_activation))
        facts["accepts_module_params"] = eager is None
        facts["accepts_module_params_jit"] = jitted is None
        if eager is not None:
            errors["module_params"] = eager
        if jitted is not None:
            errors["module_params_jit"] = jitted
    array_like = eqx.filter(dropout_like, eqx.is_array_like)
    array_like_grads = eqx.filter_grad(lambda m: jnp.sum(m.layers[0].weight))(dropout_like)
    state_holder.clear()

    def init_array_like() -> Any:
        state_holder.append(transformation.init(array_like))
        return state_holder[-1]

    init_error = _attempt(init_array_like)
    facts["array_like_init"] = init_error is None
    if init_error is not None:
        errors["array_like_init"] = init_error
        facts["array_like_update"] = None
    else:
        update_error = _attempt(
            lambda: transformation.update(array_like_grads, state_holder[-1], array_like))
        facts["array_like_update"] = update_error is None
        if update_error is not None:
            errors["array_like_update"] = update_error
    return {"facts": facts, "errors": errors}


def _optax_wrappers() -> dict[str, Callable[[], Any]]:
    """Wrapped optimizers as users build them (MultiSteps is a class, not a factory)."""
    import jax
    import optax

    return {
        "MultiSteps(adam)": lambda: optax.MultiSteps(optax.adam(0.1), every_k_schedule=2),
        "MultiSteps(adamw)": lambda: optax.MultiSteps(optax.adamw(0.1), every_k_schedule=2),
        "MultiSteps(sgd)": lambda: optax.MultiSteps(optax.sgd(0.1), every_k_schedule=2),
        "inject_hyperparams(adam)": lambda: optax.inject_hyperparams(optax.adam)(
            learning_rate=0.1),
        "inject_hyperparams(adamw)": lambda: optax.inject_hyperparams(optax.adamw)(
            learning_rate=0.1),
        "chain(clip_by_global_norm, adam)": lambda: optax.chain(
            optax.clip_by_global_norm(1.0), optax.adam(0.1)),
        "chain(clip_by_global_norm, adamw)": lambda: optax.chain(
            optax.clip_by_global_norm(1.0), optax.adamw(0.1)),
        "apply_if_finite(adam)": lambda: optax.apply_if_finite(optax.adam(0.1), 3),
        "apply_if_finite(adamw)": lambda: optax.apply_if_finite(optax.adamw(0.1), 3),
        "masked(adamw)": lambda: optax.masked(
            optax.adamw(0.1), lambda tree: jax.tree_util.tree_map(lambda _: True, tree)),
        "contrib.schedule_free(adam)": lambda: optax.contrib.schedule_free(
            optax.adam(0.1), learning_rate=0.1),
    }


def measure_optax() -> dict[str, Any]:
    """Which optax factories build transformations, and how they treat modules."""
    import optax

    models = _optax_probe_models()
    transformations: dict[str, dict[str, Any]] = {}
    errors: dict[tuple[str, str], str] = {}
    for name, factory in sorted(_optax_factories().items()):
        transformation = _build_transformation(factory)
        if transformation is None:
            continue
        accepts_module, reads_params = _probe(transformation)
        probed = _module_params_probe(transformation, models)
        transformations[name] = {"accepts_module": accepts_module, "reads_params": reads_params,
                                 **probed["facts"]}
        errors.update({(name, probe): line for probe, line in probed["errors"].items()})
    wrapped: dict[str, dict[str, Any]] = {}
    for name, build in _optax_wrappers().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            transformation = build()
        accepts_module, reads_params = _probe(transformation)
        probed = _module_params_probe(transformation, models)
        wrapped[name] = {"accepts_module": accepts_module, "reads_params": reads_params,
                         **probed["facts"]}
        errors.update({(name, probe): line for probe, line in probed["errors"].items()})
    # Arguments that make an otherwise stateless transformation keep state.
    stateful_with: dict[str, str] = {}
    if transformations.get("sgd", {}).get("accepts_module"):
        if not _probe(optax.sgd(0.1, momentum=0.9))[0]:
            stateful_with["sgd"] = "momentum"
    return {
        "OPTAX_VERSION": optax.__version__,
        "TRANSFORMATIONS": transformations,
        "STATEFUL_WITH_ARGUMENT": stateful_with,
        "WRAPPED": wrapped,
        "ERRORS": errors,
    }


# ---------------------------------------------------------------------------
# What JAX transforms and lax control flow accept inside an Equinox module.

# The leaf kinds the tables speak of, in a fixed order. Each is held as the
# `leaf` field of a small module next to a float array field `x`.
LEAF_KINDS = (
    "inexact_array", "integer_array", "bool_array", "python_int", "python_float",
    "python_bool", "str", "none", "function", "python_function", "lambda", "object",
)


def _plain_function(value: Any) -> Any:
    """A plain `def`, the "python_function" leaf kind."""
    return value


def _leaf_values() -> dict[str, tuple[Any, Any]]:
    """Two different values of every leaf kind: the first is probed, both are used for retraces."""
    import jax
    import jax.numpy as jnp

    def other_plain_function(value: Any) -> Any:
        return value

    return {
        "inexact_array": (jnp.ones(3), 2 * jnp.ones(3)),  # both strongly typed
        "integer_array": (jnp.arange(3), jnp.arange(1, 4)),
        "bool_array": (jnp.ones(3, bool), jnp.zeros(3, bool)),
        "python_int": (1, 2),
        "python_float": (1.0, 2.0),
        "python_bool": (True, False),
        "str": ("a", "b"),
        "none": (None, None),
        "function": (jax.nn.relu, jax.nn.gelu),
        "python_function": (_plain_function, other_plain_function),
        "lambda": (lambda value: value, lambda value: value),
        "object": (object(), object()),
    }


def _holder_class() -> type:
    import equinox as eqx
    import jax

    class Holder(eqx.Module):
        """A float array next to the leaf under test; callable, for `jax.jit(model)`."""

        x: jax.Array
        leaf: Any

        def __call__(self, y: jax.Array) -> jax.Array:
            return self.x * y

    # Errors quote the class; keep the quote the same however the script is run.
    Holder.__module__, Holder.__qualname__ = "probe", "Holder"
    return Holder


def _transform_consumers() -> dict[str, Callable[[Any], Any]]:
    """Each consumer takes the module the way user code hands it over.

    `jax.jit`-family consumers are lowered (`.lower(...)`) and lax control flow is
    traced (`jax.make_jaxpr`): that is where inputs are rejected; compiling the
    lowered program to XLA would only cost time. grad and vmap run eagerly.
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    def total(module: Any) -> jax.Array:
        return jnp.sum(module.x)

    def traced(run: Callable[[], Any]) -> Any:
        return jax.make_jaxpr(run)()

    ones = jnp.ones(3)
    return {
        "jax.jit": lambda m: jax.jit(total).lower(m),
        "jax.jit(static_argnums)": lambda m: jax.jit(total, static_argnums=0).lower(m),
        "jax.grad": lambda m: jax.grad(total)(m),
        "jax.value_and_grad": lambda m: jax.value_and_grad(total)(m),
        "jax.vmap(in_axes=0)": lambda m: jax.vmap(lambda m: m.x * 2, in_axes=(0,))(m),
        "jax.vmap(in_axes=None)": lambda m: jax.vmap(lambda m, y: m.x * y,
                                                     in_axes=(None, 0))(m, ones),
        "jax.lax.scan(carry)": lambda m: traced(
            lambda: jax.lax.scan(lambda carry, _: (carry, None), m, None, length=2)),
        "jax.lax.scan(xs)": lambda m: traced(
            lambda: jax.lax.scan(lambda carry, row: (carry + jnp.sum(row.x), None), 0.0, m)),
        "jax.lax.cond": lambda m: traced(
            lambda: jax.lax.cond(jnp.array(True), total, total, m)),
        "jax.lax.switch": lambda m: traced(
            lambda: jax.lax.switch(jnp.array(0), [total, total], m)),
        "jax.lax.while_loop": lambda m: traced(
            lambda: jax.lax.while_loop(lambda s: s[0] < 2, lambda s: (s[0] + 1, s[1]), (0, m))),
        "jax.lax.fori_loop": lambda m: traced(
            lambda: jax.lax.fori_loop(0, 2, lambda i, carried: carried, m)),
        "jax.jit(model)": lambda m: jax.jit(m).lower(ones),
        "jax.jit(model.__call__)": lambda m: jax.jit(m.__call__).lower(ones),
        "eqx.filter_jit": lambda m: eqx.filter_jit(total).lower(m),
        "eqx.filter_grad": lambda m: eqx.filter_grad(total)(m),
        "eqx.filter_vmap": lambda m: eqx.filter_vmap(lambda m: m.x * 2)(m),
    }


def first_error_line(error: BaseException) -> str:
    """`Type: first line`, with addresses removed so the text is the same every run.

    An indented second line continues the first (optax's "different types at key
    path" names the path there), so it is kept, after a colon.
    """
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else ""
    if len(lines) > 1 and lines[1][:1].isspace() and lines[1].strip():
        message = f"{message}: {lines[1].strip()}"
    message = re.sub(r" at 0x[0-9a-fA-F]+", "", message)
    message = re.sub(r"0x[0-9a-fA-F]{6,}", "0x…", message)
    return f"{type(error).__name__}: {message}"


def _attempt(run: Callable[[], Any]) -> str | None:
    """None when `run` works, else its first error line."""
    import jax

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            jax.block_until_ready(run())
    except Exception as error:  # noqa: BLE001 - every failure is a measured fact
        return first_error_line(error)
    return None


def _retraces(wrap: Callable[[Callable[..., Any]], Callable[..., Any]], holder: type,
              first: Any, second: Any) -> bool | None:
    """Does calling the wrapped function again, with only the leaf changed, trace again?"""
    import jax.numpy as jnp

    traces: list[None] = []

    def total(module: Any) -> Any:
        traces.append(None)
        return jnp.sum(module.x)

    compiled = wrap(total)
    if _attempt(lambda: compiled(holder(jnp.ones(3), first))) is not None:
        return None
    if _attempt(lambda: compiled(holder(jnp.ones(3), second))) is not None:
        return None
    return len(traces) > 1


def measure_jax_transforms() -> dict[str, Any]:
    """Which leaf kinds each JAX transform / lax primitive / eqx filter transform accepts."""
    import equinox as eqx
    import jax

    holder = _holder_class()
    values = _leaf_values()
    accepts: dict[str, dict[str, bool]] = {}
    errors: dict[tuple[str, str], str] = {}
    for consumer, probe in _transform_consumers().items():
        accepts[consumer] = {}
        for kind in LEAF_KINDS:
            module = holder(jax.numpy.ones(3), values[kind][0])
            error = _attempt(lambda: probe(module))
            accepts[consumer][kind] = error is None
            if error is not None:
                errors[(consumer, kind)] = error
    retraces: dict[str, dict[str, bool | None]] = {}
    for consumer, wrap in (("jax.jit", jax.jit), ("eqx.filter_jit", eqx.filter_jit)):
        retraces[consumer] = {
            kind: _retraces(wrap, holder, *values[kind])
            for kind in LEAF_KINDS if kind != "none"
        }
    return {
        "JAX_VERSION": jax.__version__,
        "EQUINOX_VERSION": eqx.__version__,
        "LEAF_KINDS": list(LEAF_KINDS),
        "ACCEPTS": accepts,
        "ERRORS": errors,
        "RETRACES_ON_CHANGE": retraces,
    }


def render(doc: str, data: dict[str, Any]) -> str:
    lines = [f'"""{doc}', "", "Generated by scripts/generate_knowledge.py; do not edit.", '"""', ""]
    for name, value in data.items():
        lines.append(f"{name} = {pprint.pformat(value, width=88, sort_dicts=True)}")
        lines.append("")
    return "\n".join(lines)


def _versions() -> str:
    import equinox
    import jax
    import optax

    return f"jax {jax.__version__}, equinox {equinox.__version__}, optax {optax.__version__}"


EQUINOX_NN_DOC = """What each equinox.nn layer holds, measured by building it.

NON_ARRAY_LEAVES / ARRAYS_ONLY / STATEFUL: the pytree leaves of each default-built
layer. FIELD_KINDS: every dataclass field of every public eqx.nn Module, default-built,
in the vocabulary of jax_transforms.LEAF_KINDS plus "static" (a static field),
"module", "modules" (a list/tuple of modules) and "state_index".
CONSTRUCTOR_DEPENDENT_FIELDS: fields whose kind changed when the layer was built
again with other cheap arguments (use_bias=False, another activation, ...), with
every kind seen. NOT_CONSTRUCTED: public Module classes that were not built."""

OPTAX_DOC = """Which optax factories build transformations, measured by running them.

Per transformation (and per WRAPPED optimizer, built as users build them):
accepts_module: init and update on a whole Sequential(Linear, Lambda(relu)).
reads_params: update without params raises about params.
accepts_module_params / accepts_module_params_jit: state = init(filtered params),
then update(grads, state, params=MODULE) with MODULE = Sequential(Linear,
Lambda(jax.nn.relu)), eagerly / traced and lowered under eqx.filter_jit (where a
non-array leaf is rejected; XLA compilation skipped); None when update fails
even with the filtered params (the transformation needs more arguments).
array_like_init / array_like_update: init on eqx.filter(model, eqx.is_array_like)
of Sequential(Linear, Dropout) (Dropout holds a Python float p and bool inference),
then update with grads from eqx.filter_grad (None: init failed).
ERRORS[(name, probe)]: the first line of each failure, addresses removed."""

JAX_TRANSFORMS_DOC = """What JAX transforms, lax control flow and eqx filter transforms accept.

Each leaf kind of LEAF_KINDS is held as the `leaf` field of a small eqx.Module next
to a float array `x` and handed to each consumer the way user code does.
ACCEPTS[consumer][kind]: it works. ERRORS[(consumer, kind)]: the exception type and
first line of its message, addresses removed. jit-family consumers are measured by
`.lower(...)` and lax control flow by jax.make_jaxpr (where inputs are rejected;
XLA compilation is skipped); grad and vmap run eagerly.
RETRACES_ON_CHANGE[consumer][kind]: calling again with only the leaf's value changed
traces again (None: the consumer rejects the kind)."""


def generated_files() -> dict[Path, str]:
    versions = f"\n\nMeasured with {_versions()}."
    return {
        KNOWLEDGE_DIR / "equinox_nn.py": render(EQUINOX_NN_DOC + versions, measure_equinox_nn()),
        KNOWLEDGE_DIR / "optax_transforms.py": render(OPTAX_DOC + versions, measure_optax()),
        KNOWLEDGE_DIR / "jax_transforms.py": render(JAX_TRANSFORMS_DOC + versions,
                                                    measure_jax_transforms()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    options = parser.parse_args()
    import jax

    # XLA's optimisation passes change how fast a program runs, never whether a
    # transform accepts its inputs; skipping them halves the time of the eager probes.
    jax.config.update("jax_disable_most_optimizations", True)
    stale = []
    for path, text in generated_files().items():
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if old == text:
            continue
        stale.append(path)
        if options.check:
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=f"committed {path.name}", tofile=f"measured {path.name}"))
        else:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if options.check else 'wrote'}: {path}")
    return 1 if options.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
