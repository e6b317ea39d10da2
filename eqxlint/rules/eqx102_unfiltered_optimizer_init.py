"""EQX102: `optim.init(model)` on a module that holds non-array leaves."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from eqxlint.diagnostics import Diagnostic
from eqxlint.knowledge import optax_transforms
from eqxlint.rules.base import PROJECT_IMPORT, Bad, Finding, FixCase, Good, Rule
from eqxlint.rules.first_look import IMPORTS_PUBLIC_OPTAX, FirstLook, optax_factory_named
from eqxlint.semantics import Semantics, Value, argument, keyword_arg, positional_args
from eqxlint.semantics.values import ARRAY_LIKE_SCALARS

if TYPE_CHECKING:
    from eqxlint.runtime.checker import RuntimeContext

# The optax factories of which `_keeps_state_per_leaf` can say yes.
STATEFUL = frozenset([name for name, known in optax_transforms.TRANSFORMATIONS.items()
                      if not known["accepts_module"]]
                     + list(optax_transforms.STATEFUL_WITH_ARGUMENT) + ["MultiSteps"])
FILTERED_INIT = "opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))"


class UnfilteredOptimizerInit(Rule):
    code = "EQX102"
    name = "unfiltered-optimizer-init"
    summary = "`optim.init(model)` on a module holding callables or Python scalars"
    fix_applicability = "safe"
    triggers = ((b".init(",), (IMPORTS_PUBLIC_OPTAX, PROJECT_IMPORT))

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Only where this file or a module it imports may build an optimizer that keeps
        state for every leaf (the factories `_keeps_state_per_leaf` accepts: measured,
        plus `MultiSteps` and `sgd` with momentum), spelled through an optax import.

        And only where some `<x>.init(<one argument>)` is not given `eqx.filter(...)`
        spelled through an import of equinox, unless the file says `is_array_like`.

        Sound: the check needs `optim` inferred as an optimizer with such a factory, and
        the semantics learns factories only from `optax.<factory>` names written in some
        module of the file's imports (see optax_factory_named). It looks only at `init`
        calls with one argument, positional, not starred; given `eqx.filter(...)` it
        reports only a filter spec whose qualified name is `equinox.is_array_like`.
        """
        if not super().may_fire(source, look) or not optax_factory_named(source, look, STATEFUL):
            return False
        calls = look.method_calls("init") if look is not None else None
        if calls is None:
            return True
        imports = look.import_bindings() or {}  # type: ignore[union-attr]
        return any(_may_be_unfiltered_init(call, source, imports) for call in calls)
    what_it_does = """
        Checks for `optim.init(model)` where `optim` is an optax transformation and `model`
        an Equinox module that holds non-array leaves: an `eqx.nn.MLP` (its activation
        functions), `eqx.nn.Dropout` (its rate), `eqx.nn.BatchNorm` (its axis name),
        pooling layers, `eqx.nn.Lambda`, or a module of your own with such a field.

        Which `equinox.nn` layers hold non-array leaves is measured from the installed
        equinox by `scripts/generate_knowledge.py`, not typed by hand.
    """
    why_bad = """
        optax builds its state with `zeros_like` on every leaf of what it is given, and a
        function is not an array (the error is quoted below). A string (BatchNorm's `axis_name`) fails with `data type 'batch' not understood`.
        Python scalars (a `Dropout(p=0.1)`, an `int` field) pass `init` and break the first
        `optim.update`, whose gradients have `None` there (`pytree structure error:
        different types at key path`).
    """
    example = """
        model = eqx.nn.MLP(2, 1, width_size=32, depth=2, key=key)
        optim = optax.adam(1e-3)
        opt_state = optim.init(model)
    """
    use_instead = """
        model = eqx.nn.MLP(2, 1, width_size=32, depth=2, key=key)
        optim = optax.adam(1e-3)
        opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
    """
    fix_safety = """
        Safe. The fix wraps the model in `eqx.filter(model, eqx.is_inexact_array)`, the
        same filter `eqx.filter_grad` uses, so the optimizer state has exactly the
        structure of the gradients it will receive. The fix is offered when the file
        imports `equinox` as a module (`import equinox as eqx`); otherwise the message
        shows the line to write.
    """
    runtime = """
        `check_model(model, opt_state=opt_state)` compares the optimizer state's
        parameter-shaped subtrees with `eqx.filter(model, eqx.is_inexact_array)`;
        `check_model(model, optim=optim)` runs `optim.init` and one `optim.update` on
        abstract shapes (`jax.eval_shape`, no data). Any init filter that keeps a
        non-trainable leaf is found (`lambda x: not callable(x)` keeps a Python float).
        `check_step(step, model, opt_state, ...)` reports the same leaves when the
        step's `optim.update` fails on them. A model alone is never EQX102: holding
        callables is normal.
    """
    real_error = ("TypeError: zeros_like requires ndarray or scalar arguments, got <class "
                  "'jax._src.custom_derivatives.custom_jvp'> at position 0.")
    known_limits = """
        Quiet unless the code shows both sides: the optimizer built from an `optax` factory
        (directly, or through `optax.chain`, `optax.MultiSteps`, `optax.inject_hyperparams`)
        and the model built from an `equinox.nn` constructor or a class of the project
        (this file or one it imports) that provably holds a non-array leaf: what a field
        holds comes from the value the code gives it (the constructor's arguments, the
        assignments in `__init__`, list elements, factories that return it); a field's
        annotation speaks only when no code gives it a value, and then `float` fields
        are not taken for Python floats (arrays are often annotated `float`). Quiet for
        optimizers that keep no per-parameter state (`optax.sgd` without momentum):
        those work unfiltered.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx
            import jax
            import jax.numpy as jnp
            import optax

            class CNN(eqx.Module):
                layers: list

                def __init__(self, key):
                    key1, key2 = jax.random.split(key)
                    self.layers = [
                        eqx.nn.Conv2d(1, 3, kernel_size=4, key=key1),
                        eqx.nn.MaxPool2d(kernel_size=2),
                        jax.nn.relu,
                        jnp.ravel,
                        eqx.nn.Linear(1728, 10, key=key2),
                    ]

            model = CNN(jax.random.PRNGKey(0))
            optim = optax.adamw(3e-4)
            opt_state = optim.init(model)  # expect: EQX102
        """, "the Equinox CNN tutorial's model: a list field holding jax.nn.relu"),
        Bad("""
            import equinox as eqx
            import optax

            class Classifier(eqx.Module):
                encoder: eqx.nn.Linear
                dropout: eqx.nn.Dropout

            like = Classifier(eqx.nn.Linear(4, 4, key=key), eqx.nn.Dropout(0.1))
            checkpointed_model = eqx.tree_deserialise_leaves("model.eqx", like)
            tx = optax.adam(1e-4)
            opt_state = tx.init(checkpointed_model)  # expect: EQX102
        """, "tree_deserialise_leaves keeps `like`'s structure (the official BERT example)"),
        Bad("""
            import equinox as eqx
            import optax

            def make_model(cfg, key):
                return eqx.nn.MLP(cfg.d_in, cfg.d_out, cfg.width, cfg.depth, key=key)

            def build_optimizer(lr):
                return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(lr))

            model = make_model(cfg, key)
            optim = build_optimizer(3e-4)
            opt_state = optim.init(model)  # expect: EQX102
        """, "model and optimizer built by factories"),
        Bad("""
            import equinox as eqx
            import optax

            class Trainer:
                def __init__(self, key):
                    self.model = eqx.nn.MLP(2, 2, 16, 2, key=key)
                    self.optim = optax.adam(1e-3)

                def reset(self):
                    self.opt_state = self.optim.init(self.model)  # expect: EQX102
        """, "self.model and self.optim set in __init__, used in another method"),
        Bad("""
            import dataclasses
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(4, 4, 16, 2, key=key)
            params, static = eqx.partition(model, eqx.is_inexact_array)
            model = eqx.combine(params, static)
            model = dataclasses.replace(eqx.nn.inference_mode(model, value=False))
            opt_state = optax.adam(1e-3).init(model)  # expect: EQX102
        """, "through combine, inference_mode and dataclasses.replace: still the whole MLP"),
        Bad("""
            import equinox as eqx
            import optax

            model = eqx.nn.Sequential([eqx.nn.Linear(8, 8, key=key), eqx.nn.Dropout(0.1)])
            params = eqx.filter(model, eqx.is_array_like)
            opt_state = optax.adam(1e-3).init(params)  # expect: EQX102
        """, "is_array_like keeps Dropout's p and inference (Python float and bool)"),
        Bad("""
            import equinox as eqx
            import jax
            import optax

            key1, key2 = jax.random.split(key)
            layers = [eqx.nn.Linear(2, 8, key=key1), eqx.nn.Lambda(jax.nn.gelu),
                      eqx.nn.Linear(8, 1, key=key2)]
            model = eqx.nn.Sequential(layers)
            opt_state = optax.adam(1e-3).init(model)  # expect: EQX102
        """, "Sequential built from a name"),
        Bad("""
            import equinox as eqx
            import jax
            import optax

            model = eqx.nn.MLP(2, 1, width_size=32, depth=2, key=jax.random.PRNGKey(0))
            optim = optax.adam(1e-3)
            opt_state = optim.init(model)  # expect: EQX102
        """, "the headline case"),
        Bad("""
            import equinox
            import jax
            import optax as ox

            def make(key):
                net = equinox.nn.Sequential([equinox.nn.Linear(2, 8, key=key),
                                             equinox.nn.Lambda(jax.nn.relu)])
                opt = ox.chain(ox.clip_by_global_norm(1.0), ox.adamw(1e-3))
                return net, opt.init(net)  # expect: EQX102
        """, "aliases, chain, Sequential with a Lambda"),
        Bad("""
            import equinox as eqx
            import jax
            import optax
            from typing import Callable

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                activation: Callable

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(2, 2, key=key)
                    self.activation = jax.nn.gelu

            model = Net(key)
            opt_state = optax.adam(3e-4).init(model)  # expect: EQX102
        """, "a module of the file with a Callable field, inline optimizer"),
        Bad("""
            import equinox as eqx
            import optax

            class Trainer:
                def __init__(self, key):
                    self.model = eqx.nn.MLP(4, 4, 16, 2, key=key)
                    self.optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)
                    self.opt_state = self.optim.init(self.model)  # expect: EQX102
        """, "attributes of self, MultiSteps"),
        Bad("""
            import equinox as eqx
            import optax

            class Block(eqx.Module):
                dropout: eqx.nn.Dropout
                linear: eqx.nn.Linear

            class Model(Block):
                depth: int

            model = Model(eqx.nn.Dropout(0.1), eqx.nn.Linear(2, 2, key=key), 3)
            optimizer = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
            state = optimizer.init(model)  # expect: EQX102
        """, "an int field, inherited Dropout, inject_hyperparams"),
        Bad("""
            from equinox.nn import BatchNorm
            import optax

            bn = BatchNorm(16, axis_name="batch")
            opt_state = optax.sgd(0.1, momentum=0.9).init(bn)  # expect: EQX102
        """, "from-import; sgd with momentum keeps state"),
        Bad("""
            import equinox as eqx
            import jax
            import optax

            def activation(x):
                return x * jax.nn.sigmoid(x)

            class Net(eqx.Module):
                fn: object = activation
                w: jax.Array = None

            optim = optax.lion(1e-4)
            model = Net()
            model = eqx.tree_at(lambda m: m.w, model, w)
            opt_state = optim.init(model)  # expect: EQX102
        """, "a default that is a function of the file; the model passed through tree_at"),
        Bad("""
            import equinox as eqx
            from equinox import filter as keep, is_array_like
            if True: import optax as ox

            model = eqx.nn.Sequential([eqx.nn.Linear(8, 8, key=key), eqx.nn.Dropout(0.1)])
            opt_state = ox.adam(1e-3).init(keep(model, is_array_like))  # expect: EQX102
        """, "an import after `if True:`, `eqx.filter` and its spec from-imported"),
        Bad("""
            import equinox as eqx
            import jax
            import optax
            from .architectures import CNN

            DEFAULT = CNN.with_params(width=32)

            class CNN(eqx.Module):  # this file's own CNN, defined after the import
                layers: list

                def __init__(self, key):
                    self.layers = [eqx.nn.Linear(8, 8, key=key), jax.nn.relu]

            model = CNN(jax.random.PRNGKey(0))
            opt_state = optax.adam(1e-3).init(model)  # expect: EQX102
        """, "an imported name redefined by a class of the file: the model is the file's CNN"),
        Bad("""
            import equinox as eqx
            import jax
            import jax.numpy as jnp
            import optax

            class Net(eqx.Module):
                weight: jax.Array

            class Net(eqx.Module):  # redefined, as a notebook's later cell does
                weight: jax.Array
                activation: object = jax.nn.relu

            model = Net(jnp.ones(3))
            opt_state = optax.adam(1e-3).init(model)  # expect: EQX102
        """, "a class defined twice: below its last definition, the name means that one"),
    )
    good_examples = (
        Good("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, width_size=32, depth=2, key=key)
            optim = optax.adam(1e-3)
            opt_state = optim.init(eqx.filter(model, eqx.is_array))
        """, "filtered: only `eqx.is_array_like` keeps leaves optax cannot take"),
        Good("""
            import equinox as eqx
            import jax.numpy as jnp
            import optax

            class Model(eqx.Module):
                weight: jnp.ndarray
                steady_state: float

            model = Model(jnp.zeros(3), jnp.array(0.0))
            opt_state = optax.adam(1e-3).init(model)
        """, "annotated float, given an array: the value says what the field holds"),
        Good("""
            import equinox as eqx
            import optax

            class Model(eqx.Module):
                linear: eqx.nn.Linear
                temperature: float

                def __init__(self, key, temperature):
                    self.linear = eqx.nn.Linear(2, 2, key=key)
                    self.temperature = temperature

            model = Model(key, load_temperature())
            opt_state = optax.adam(1e-3).init(model)
        """, "a float field given a value the code does not show"),
        Good("""
            import equinox as eqx
            import optax

            model = eqx.nn.Sequential([eqx.nn.Linear(8, 8, key=key), eqx.nn.Dropout(0.1)])
            params = eqx.filter(model, eqx.is_inexact_array)
            opt_state = optax.adam(1e-3).init(params)
        """, "is_inexact_array drops Dropout's Python scalars"),
        Good("""
            import equinox as eqx
            import optax

            def make_model(kind, key):
                if kind == "mlp":
                    return eqx.nn.MLP(2, 2, 8, 2, key=key)
                return load(kind)

            model = make_model(kind, key)
            opt_state = optax.adam(1e-3).init(model)
        """, "a factory whose returns the code does not all show"),
        Good("""
            import equinox as eqx
            import jax
            import optax

            model = eqx.nn.MLP(2, 1, width_size=32, depth=2, key=jax.random.PRNGKey(0))
            optim = optax.adam(1e-3)
            opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
        """, "filtered first"),
        Good("""
            import equinox as eqx
            import optax

            model = eqx.nn.Linear(2, 2, key=key)
            opt_state = optax.adam(1e-3).init(model)
        """, "Linear holds arrays only"),
        Good("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            opt_state = optax.sgd(1e-2).init(model)
        """, "sgd without momentum keeps no state"),
        Good("""
            import equinox as eqx
            import torch

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            optim = torch.optim.Adam(params, lr=1e-3)
            state = optim.init(model)
        """, "not optax"),
        Good("""
            import equinox as eqx
            import optax

            params, static = eqx.partition(model, eqx.is_array)
            optim = optax.adam(1e-3)
            opt_state = optim.init(params)
        """, "the first half of a partition"),
        Good("""
            import equinox as eqx
            import optax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                depth: int = eqx.field(static=True)

            optim = optax.adamw(1e-3)
            opt_state = optim.init(Net(eqx.nn.Linear(2, 2, key=key), 2))
        """, "an int field marked static is not a leaf"),
        Good("""
            import equinox as eqx
            import optax

            def init(model):
                return model

            model = eqx.nn.MLP(2, 2, 2, 2, key=key)
            optim = optax.adam(1e-3)
            state = init(model)
        """, "a user's own init"),
        Good("""
            import equinox as eqx
            import optax

            optim = optax.adam(1e-3)
            model = eqx.nn.MLP(2, 2, 2, 2, key=key)
            model = load_checkpoint(model)
            opt_state = optim.init(model)
        """, "the model was rebound to something the code does not know"),
        Good("""
            import equinox as eqx
            import optax

            class Net(eqx.Module):
                activation: callable

            optim = optax.adam(1e-3)
            opt_state = optim.init(Net(make_layer()))
        """, "a Callable field given something the code does not show"),
        Good("""
            import equinox as eqx
            import jax
            import jax.numpy as jnp
            import optax
            from equinox.nn import MLP

            class MLP(eqx.Module):  # this file's own MLP: arrays only
                weight: jax.Array

                def __init__(self, size):
                    self.weight = jnp.ones(size)

            model = MLP(3)
            opt_state = optax.adam(1e-3).init(model)
        """, "`eqx.nn.MLP` imported, then replaced by a class of the file that holds only "
             "arrays (eqxlint reported `MLP.activation` before)"),
        Good("""
            import equinox as eqx
            import jax
            import jax.numpy as jnp
            import optax

            class Net(eqx.Module):  # the first version: arrays only
                weight: jax.Array

            model = Net(jnp.ones(3))
            opt_state = optax.adam(1e-3).init(model)

            class Net(eqx.Module):  # redefined further down, as a notebook's later cell does
                weight: jax.Array
                activation: object = jax.nn.relu

            model = Net(jnp.ones(3))
            opt_state = optax.adam(1e-3).init(eqx.filter(model, eqx.is_array))
        """, "a class defined twice: the first `init` is given the first version, all arrays "
             "(eqxlint reported the second version's `activation` there)"),
    )
    fix_examples = (
        FixCase("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            opt_state = optax.adam(1e-3).init(model)
        """, """
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 1, 32, 2, key=key)
            opt_state = optax.adam(1e-3).init(eqx.filter(model, eqx.is_inexact_array))
        """),
    )

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for site in semantics.calls:
            func = site.node.func
            if not isinstance(func, cst.Attribute) or func.attr.value != "init":
                continue
            args = positional_args(site.node)
            if len(args) != 1 or len(site.node.args) != 1:
                continue
            optimizer = semantics.infer(func.value, at=site)
            if optimizer is None or optimizer.kind != "optimizer":
                continue
            if not _keeps_state_per_leaf(optimizer):
                continue
            model = semantics.infer(args[0], at=site)
            if model is None:
                continue
            if model.kind == "filtered":
                yield from _array_like_filter(semantics, site.node, func.value, args[0], model)
                continue
            holds = semantics.non_array_leaf(model)
            if holds is None:
                continue
            model_text = semantics.module.code_for_node(args[0])
            optim_text = semantics.module.code_for_node(func.value)
            eqx_alias = semantics.local_name_for("equinox")
            wrapped = f"{eqx_alias or 'eqx'}.filter({model_text}, {eqx_alias or 'eqx'}.is_inexact_array)"
            replacement: Optional[cst.BaseExpression] = None
            if eqx_alias is not None:
                replacement = cst.parse_expression(wrapped)
            yield Finding(
                node=site.node,
                message=(
                    f"`{optim_text}.init` is given the whole module, and not every leaf is an "
                    f"array: {holds}; optax cannot make state for it"
                ),
                hint=f"Initialise on the arrays only: `{optim_text}.init({wrapped})`",
                replacements=((args[0], replacement),) if replacement is not None else (),
                fix_message=f"Filter the model: `{wrapped}`",
            )

    def check_runtime(self, context: "RuntimeContext") -> Iterator[Diagnostic]:
        from eqxlint.runtime.tree import describe

        for stray in context.stray_leaves:
            if stray.integer_array:
                continue  # EQX104's
            yield context.diagnostic(
                self, stray.path,
                f"is {describe(stray.leaf)}, not a trainable array, yet the optimizer "
                f"state has a slot for it: `optim.init` was given the unfiltered model, and "
                f"the first `optim.update` will fail (its gradient there is None)",
                f"Initialise on the arrays only: `{FILTERED_INIT}`")
        if context.optim is not None:
            yield from _abstract_init_and_update(self, context)


def _abstract_init_and_update(rule: Rule, context: "RuntimeContext") -> Iterator[Diagnostic]:
    """Run `optim.init` and one `optim.update` on shapes only, as training would call them."""
    import equinox as eqx
    import jax

    from eqxlint.runtime.tree import abstract, is_inexact_array_like

    params = abstract(eqx.filter(context.model, is_inexact_array_like))
    try:
        state = jax.eval_shape(context.optim.init, params)
    except Exception as error:
        yield context.diagnostic(
            rule, "model", f"`optim.init` fails on the model's trainable arrays: "
            f"{type(error).__name__}: {_first_line(error)}", f"Check the optimizer: `{FILTERED_INIT}`")
        return
    try:
        # The optimizer's own function, not a new lambda: jax caches the trace by function,
        # so checking the same optimizer again costs a cache lookup, not a trace.
        jax.eval_shape(context.optim.update, params, state, params)
    except Exception as error:
        yield context.diagnostic(
            rule, "model", f"`optim.update(grads, opt_state, params)` fails on the model's "
            f"trainable arrays: {type(error).__name__}: {_first_line(error)}",
            "Check the optimizer against the model's parameters")


def _array_like_filter(semantics: Semantics, call: cst.Call, optimizer: cst.BaseExpression,
                       given: cst.BaseExpression, filtered: Value) -> Iterator[Finding]:
    """`optim.init(eqx.filter(model, eqx.is_array_like))`: Python scalars get state."""
    if filtered.factories != ("equinox.is_array_like",) or not isinstance(filtered.node, cst.Call):
        return
    scalar = semantics.first_leaf(filtered, ARRAY_LIKE_SCALARS)
    if scalar is None:
        return
    spec = argument(filtered.node, 1, "filter_spec")
    eqx_alias = semantics.local_name_for("equinox")
    optim_text = semantics.code_of(optimizer)
    better = f"{eqx_alias or 'eqx'}.is_inexact_array"
    inline = given is filtered.node
    yield Finding(
        node=call,
        message=(f"`{optim_text}.init` is given a tree filtered with `eqx.is_array_like`, "
                 f"which keeps Python scalars: {scalar.phrase()}; the gradients have None "
                 f"there, so the first `{optim_text}.update` fails"),
        hint=f"Filter with `{better}`, as `eqx.filter_grad` does",
        replacements=((spec, cst.parse_expression(better)),)
        if inline and spec is not None and eqx_alias is not None else (),
        fix_message=f"Filter with `{better}`",
    )


def _may_be_unfiltered_init(call: ast.Call, source: bytes, imports: dict[str, set[str]]) -> bool:
    """The first look at one `<x>.init(...)` call (see may_fire)."""
    if len(call.args) != 1 or call.keywords or isinstance(call.args[0], ast.Starred):
        return False
    given = call.args[0]
    if isinstance(given, ast.Call) and isinstance(given.func, ast.Attribute) \
            and given.func.attr == "filter" and isinstance(given.func.value, ast.Name) \
            and imports.get(given.func.value.id) == {"equinox"}:
        return b"is_array_like" in source  # `eqx.filter(m, spec)`: flagged for that spec only
    return True


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def _keeps_state_per_leaf(optimizer: Value) -> bool:
    """True when some part of the optimizer provably makes state for every leaf."""
    transformations = optax_transforms.TRANSFORMATIONS
    if "MultiSteps" in optimizer.factories:
        return True  # MultiSteps accumulates gradients: zeros_like of every leaf
    for factory in optimizer.factories:
        known = transformations.get(factory)
        if known is None:
            continue
        if not known["accepts_module"]:
            return True
        argument_name = optax_transforms.STATEFUL_WITH_ARGUMENT.get(factory)
        if argument_name is not None and len(optimizer.factories) == 1 \
                and isinstance(optimizer.call, cst.Call):
            value = keyword_arg(optimizer.call, argument_name)
            if value is None:
                positional = positional_args(optimizer.call)
                value = positional[1] if len(positional) > 1 and factory == "sgd" else None
            if value is not None and not (isinstance(value, cst.Name) and value.value == "None"):
                return True
    return False
