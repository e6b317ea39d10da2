"""EQX201: `jax.jit`/`jax.grad`/`jax.vmap` given a function that receives an Equinox module."""

from __future__ import annotations

import ast
import re
from typing import Iterator, Optional

import libcst as cst

from eqxlint.rules.base import PROJECT_IMPORT, Bad, Finding, FixCase, Good, Rule
from eqxlint.rules.first_look import FirstLook
from eqxlint.rules.module_flow import FlowTooDeep, ModuleFlow, module_flow
from eqxlint.semantics import (LOCAL_PREFIX, CallSite, Leaf, Semantics, Value, argument,
                               keyword_arg, positional_args)
from eqxlint.semantics.values import ARRAY_KINDS, PYTHON_SCALAR_KINDS

# jax transformation -> (its equinox counterpart, keywords the counterpart also accepts)
TRANSFORMS = {
    "jax.jit": ("filter_jit", ()),
    "jax.grad": ("filter_grad", ("has_aux",)),
    "jax.value_and_grad": ("filter_value_and_grad", ("has_aux",)),
    "jax.vmap": ("filter_vmap", ("in_axes", "out_axes", "axis_name", "axis_size")),
}


# The measured consumer (eqxlint/knowledge/jax_transforms.py) of each transformed position.
CONSUMERS = {"jax.jit": "jax.jit", "jax.grad": "jax.grad",
             "jax.value_and_grad": "jax.value_and_grad", "jax.vmap": "jax.vmap(in_axes=0)"}
# A static argument must be hashable: a module holding arrays is not.
STATIC_CONSUMER = "jax.jit(static_argnums)"
# Leaves jit traces at the boundary but that break the module's own call under jit.
FAILS_WHEN_CALLED_UNDER_JIT: frozenset[str] = frozenset()
# A transformation's name is spelled where it is used or imported (any alias in front).
_TRANSFORM_NAME = re.compile(rb"\b(?:jit|grad|value_and_grad|vmap)\b")


class JaxTransformOnModule(Rule):
    code = "EQX201"
    name = "jax-transform-on-module"
    summary = "`jax.jit`/`grad`/`vmap` on a function that takes a module holding non-arrays"
    fix_applicability = "unsafe"
    triggers = ((b"jax",), (b"jit", b"grad", b"vmap"), (b"equinox", PROJECT_IMPORT))
    what_it_does = """
        Checks for `jax.jit`, `jax.grad`, `jax.value_and_grad` and `jax.vmap` applied to a
        function that receives an Equinox module holding a leaf *that transform* cannot
        take. What each transform takes is measured from the installed jax
        (`eqxlint/knowledge/jax_transforms.py`):

        - `jax.jit`: no functions, strings or other objects; Python `int`, `float` and
          `bool` leaves are traced as weakly typed scalars and are fine. A module in
          `static_argnums` must be hashable, and one holding arrays is not.
        - `jax.grad` / `jax.value_and_grad` (the differentiated argument): no functions,
          and no `int`/`bool` leaves (Python or array); Python floats are fine.
        - `jax.vmap` with a mapped axis for the module: every leaf must be an array with
          that axis, so no Python scalars either. `in_axes=None` for the module is fine.

        That the function receives such a module is known from a call site
        (`jax.jit(loss)(model, x)`, `step = jax.jit(step)` then `step(model, ...)`), from a
        parameter's annotation (`model: CNN`, the class in this file or another of the
        project), or from `self` in a method of such a module. A name given to a
        transform is the def that its scope sees.
    """
    why_bad = """
        JAX transformations trace arrays. A module holding a function fails at the call
        (the error is quoted below); `jax.grad` says `grad requires real- or
        complex-valued inputs ... but got int32` for an integer leaf; `jax.vmap` says `vmap
        was requested to map its argument along axis 0, which implies that its rank should
        be at least 1, but is only 0` for a Python float. Equinox's filtered
        transformations treat the arrays as arrays and everything else as static.
    """
    example = """
        @jax.jit
        def loss(model: eqx.nn.MLP, x, y):
            return jnp.mean((jax.vmap(model)(x) - y) ** 2)
    """
    use_instead = """
        @eqx.filter_jit
        def loss(model: eqx.nn.MLP, x, y):
            return jnp.mean((jax.vmap(model)(x) - y) ** 2)
    """
    fix_safety = """
        Unsafe: the fix replaces `jax.jit`, `jax.grad`, `jax.value_and_grad`, `jax.vmap` by
        `eqx.filter_jit`, `eqx.filter_grad`, `eqx.filter_value_and_grad`, `eqx.filter_vmap`.
        Those differentiate or batch the arrays of *every* argument, and `eqx.filter_grad`
        always takes the gradient with respect to the first argument. `eqx.filter_jit`
        makes every non-array leaf static, so a Python `int` that `jax.jit` traced (a step
        counter) would retrace at every change: where the module holds such a scalar of
        your own, no fix is offered and the hint says what to change first. The fix is
        offered only when the call uses no keyword the Equinox version lacks
        (`static_argnums`, `argnums`, ...).
    """
    runtime = "None: this rule is static only."
    real_error = ("TypeError: Error interpreting argument to <function loss at 0x...> as an "
                  "abstract array. The problematic value is of type <class "
                  "'jax._src.custom_derivatives.custom_jvp'> and was passed to the function at "
                  "path model.activation.")
    known_limits = """
        Quiet for `jax.vmap` when the module's `in_axes` entry is `None` (not mapped: that
        works), for `jax.grad` when the module is not at a differentiated position, and
        when the function or what it is given is not visible (an argument the code does
        not show). A `Dropout` in training mode under `jax.jit` traces at the boundary but
        fails in its own call (`TracerBoolConversionError` on its `inference` flag); that
        depends on how it is called and is left to the runtime check.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx
            import jax
            import jax.numpy as jnp

            @jax.jit  # expect: EQX201
            def loss(model: eqx.nn.MLP, x, y):
                return jnp.mean((jax.vmap(model)(x) - y) ** 2)
        """, "decorator, annotation"),
        Bad("""
            import equinox as eqx
            import jax

            def loss(model, x):
                return model(x).sum()

            model = eqx.nn.MLP(2, 1, 8, 2, key=key)
            grads = jax.grad(loss)(model, x)  # expect: EQX201
        """, "the call site says what is passed"),
        Bad("""
            import equinox
            import jax

            def train_step(model, opt_state, batch):
                return model, opt_state

            step = jax.jit(train_step)  # expect: EQX201
            model = equinox.nn.Sequential([equinox.nn.Linear(2, 2, key=k),
                                           equinox.nn.Lambda(jax.nn.relu)])
            for batch in data:
                model, opt_state = step(model, opt_state, batch)
        """, "transformed once, called later with a module holding a function"),
        Bad("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                mlp: eqx.nn.MLP

                @jax.jit  # expect: EQX201
                def __call__(self, x):
                    return self.mlp(x)
        """, "a method of a module: self is the module"),
        Bad("""
            from jax import value_and_grad
            import equinox as eqx

            def loss(model: eqx.nn.MLP, x):
                return model(x).sum()

            value, grads = value_and_grad(loss, has_aux=False)(model, x)  # expect: EQX201
        """, "from-import of value_and_grad"),
        Bad("""
            import equinox as eqx
            import jax

            def predict(model, x):
                return model(x)

            model = eqx.nn.MLP(2, 1, 8, 2, key=key)
            ys = jax.vmap(predict, in_axes=(0, 0))(model, xs)  # expect: EQX201
        """, "vmap mapping over the module"),
        Bad("""
            import equinox as eqx
            import jax

            def predict(model, x):
                return model(x)

            model = eqx.nn.MLP(2, 1, 8, 2, key=key)
            ys = jax.jit(predict, static_argnums=0)(model, xs)  # expect: EQX201
        """, "the module as a static argument: a module holding arrays is not hashable"),
        Bad("""
            import equinox as eqx
            import jax
            import jax.numpy as jnp

            class Scaled(eqx.Module):
                weight: jax.Array
                scale: float

            def apply(model, x):
                return model.scale * model.weight * x

            models = Scaled(jnp.ones((4, 3)), 0.5)
            ys = jax.vmap(apply)(models, xs)  # expect: EQX201
        """, "vmap over a module holding a Python float: it has no axis to map"),
        Bad("""
            import equinox as eqx
            import jax
            import jax.numpy as jnp

            class Counter(eqx.Module):
                weight: jax.Array
                steps: int

            def loss(model, x):
                return (model.weight * x).sum()

            model = Counter(jnp.ones(3), 0)
            grads = jax.grad(loss)(model, x)  # expect: EQX201
        """, "grad of a module holding a Python int (jit would trace it; grad refuses it)"),
        Bad("""
            import equinox as eqx
            import jax
            from typing import Callable

            class TrainState(eqx.Module):
                params: jax.Array
                activation: Callable
                step: int

            @jax.jit  # expect: EQX201
            def update(state: TrainState, grads):
                return TrainState(state.params - grads, state.activation, state.step + 1)

            state = TrainState(jnp.zeros(3), jax.nn.relu, 0)
            state = update(state, grads)
        """, "a function leaf beside a step counter: flagged, but no filter_jit swap offered"),
        Bad("""
            import equinox as eqx
            import jax

            @jax.jit  # expect: EQX201
            def evaluate(model: eqx.nn.BatchNorm, x, state):
                return model(x, state)
        """, "annotation with a BatchNorm: its axis_name is a str"),
        Bad("""
            import equinox as eqx
            from jax import jit as J

            @J  # expect: EQX201
            def loss(model: eqx.nn.MLP, x):
                return model(x).sum()
        """, "a renamed import of jit (the first look resolves it)"),
        Bad("""
            import equinox as eqx
            import jax

            def  step (model, x):
                return model(x).sum()

            model = eqx.nn.MLP(2, 1, 8, 2, key=key)
            grads = jax.grad(step)(model, x)  # expect: EQX201
        """, "odd spacing in the def"),
    )
    good_examples = (
        Good("""
            import equinox as eqx
            import jax

            @eqx.filter_jit
            def loss(model: eqx.nn.MLP, x):
                return model(x).sum()
        """, "the filtered transformation"),
        Good("""
            import equinox as eqx
            import jax

            @jax.jit
            def loss(model: eqx.nn.Linear, x):
                return model(x).sum()
        """, "a Linear holds arrays only: jax.jit works"),
        Good("""
            import equinox as eqx
            import jax

            def predict(model, x):
                return model(x)

            model = eqx.nn.MLP(2, 1, 8, 2, key=key)
            ys = jax.vmap(predict, in_axes=(None, 0))(model, xs)
        """, "vmap with the module not mapped"),
        Good("""
            import jax

            @jax.jit
            def f(x, y):
                return x + y
        """, "arrays only"),
        Good("""
            import equinox as eqx
            import jax

            params, static = eqx.partition(model, eqx.is_array)

            @jax.jit
            def loss(params, x):
                return eqx.combine(params, static)(x).sum()

            loss(params, x)
        """, "the partition pattern: only arrays cross the jit boundary"),
        Good("""
            import equinox as eqx
            import jax

            def loss(x, model):
                return model(x).sum()

            model = eqx.nn.MLP(2, 1, 8, 2, key=key)
            jax.grad(loss)(x, model)
        """, "grad with respect to x only (the module is not differentiated)"),
        Good("""
            import jax

            step = jax.jit(make_step())
            step(model, x)
        """, "the function is not visible"),
        Good("""
            import equinox as eqx
            import jax

            def loss(model, x):
                return model(x).sum()

            jax.jit(loss)(load_model(), x)
        """, "the argument's kind is not visible"),
        Good("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                linear: eqx.nn.Linear

                @jax.jit
                def __call__(self, x):
                    return self.linear(x)
        """, "a method of a module that holds arrays only"),
        Good("""
            import equinox as eqx
            import jax

            @jax.jit
            def evaluate(model: eqx.nn.Dropout, x):
                return model(x, inference=True)
        """, "a Dropout's rate and flag are Python scalars, which jax.jit traces: this runs"),
        Good("""
            import equinox as eqx
            import jax
            import jax.numpy as jnp

            class TrainState(eqx.Module):
                params: jax.Array
                step: int

            @jax.jit
            def update(state: TrainState, grads):
                return TrainState(state.params - 0.1 * grads, state.step + 1)

            state = TrainState(jnp.zeros(3), 0)
            state = update(state, grads)
        """, "a Python int counter in a jitted train state is traced, not refused (eqxrl's DDPG)"),
        Good("""
            import equinox as eqx
            import jax
            import jax.numpy as jnp

            class Counter(eqx.Module):
                weight: jax.Array
                steps: int

            def loss(model, x):
                return (model.weight * x).sum()

            model = Counter(jnp.ones(3), 0)
            value = jax.jit(loss)(model, x)
        """, "the same module under jax.jit: its Python int is traced, and this runs"),
        Good("""
            import equinox as eqx
            import jax

            def loss(scale, model):
                return model(scale).sum()

            model = eqx.nn.MLP(2, 1, 8, 2, key=key)
            jax.grad(loss)(2.0, model)
        """, "grad's differentiated argument is a float; the module is passed through"),
        Good("""
            import equinox as eqx
            import jax

            def outer(model, x):
                def call(v: jax.Array):
                    return v * 2
                return jax.jit(call)(x)

            def other(x):
                def call(model, y):
                    return model(y)
                return call(eqx.nn.MLP(2, 2, 2, 2, key=key), x)
        """, "two local defs called `call`: each name is resolved in the scope that binds it"),
        Good("""
            import equinox as eqx
            import jax

            def loss(model, x):
                return model(x).sum()

            def train(model, xs):
                def loss(v: jax.Array):
                    return (v ** 2).sum()
                return jax.grad(loss)(xs)

            train(eqx.nn.MLP(2, 2, 2, 2, key=key), xs)
        """, "a local def shadows the module-level one that takes a model"),
        Good("""
            import equinox as eqx
            import jax

            def predict(scale, x):
                return scale * x

            model = eqx.nn.MLP(2, 1, 8, 2, key=key)
            ys = jax.jit(predict, static_argnums=0)(2, model(xs))
        """, "the static argument is a Python int, not the module"),
        Good("""
            import equinox as eqx
            import jax

            @jax.jit
            def predict(params, x):
                return params @ x

            model = eqx.nn.MLP(2, 1, 8, 2, key=key)
            ys = predict(weights, model(x))
        """, "the module is used beside the jitted def, never passed to it"),
    )
    fix_examples = (
        FixCase("""
            import equinox as eqx
            import jax

            @jax.jit
            def loss(model: eqx.nn.MLP, x):
                return model(x).sum()
        """, """
            import equinox as eqx
            import jax

            @eqx.filter_jit
            def loss(model: eqx.nn.MLP, x):
                return model(x).sum()
        """),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Only where a transformation (its name resolved through any of the file's
        imports, on Python's `ast`) decorates a def or is given a def's name, and that def
        may receive an Equinox module: a parameter annotated with a class that may be a
        module (`equinox.nn`, the file's, a project class), `self` of a method of a class
        with bases, or a call that may pass one (ModuleFlow says what may hold a module).

        Sound: the check looks at nothing else (a transformation of a lambda or of an
        imported function is not followed), and reports only a module that
        `Semantics.infer` proves, which ModuleFlow over-approximates. A module needs
        `equinox` in the file or in a project module it imports, and a transformation's
        name is spelled in the file (the text screens). A file `ast` cannot parse goes to
        the full check.
        """
        if _TRANSFORM_NAME.search(source) is None or not super().may_fire(source, look):
            return False
        flow = module_flow(source, look)
        try:
            return flow is None or _may_receive_module(flow)
        except (FlowTooDeep, RecursionError):
            return True

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for function, transform, node, call in _transformed_functions(semantics):
            culprit = _module_argument(semantics, function, transform, call)
            if culprit is None:
                continue
            parameter, refused, module, consumer = culprit
            counterpart, allowed = TRANSFORMS[transform]
            eqx_alias = semantics.local_name_for("equinox")
            better = f"{eqx_alias or 'eqx'}.{counterpart}"
            replacements: tuple = ()
            keywords = [a.keyword.value for a in call.args if a.keyword is not None] \
                if call is not None else []
            target = call.func if call is not None else node
            # eqx.filter_jit makes every non-array leaf static: a Python scalar that jit
            # traced today (a step counter) would retrace on every change. No swap there.
            traced_scalar = next((leaf for leaf in semantics.leaves(module)
                                  if leaf.kind in PYTHON_SCALAR_KINDS and not leaf.from_library),
                                 None) if transform == "jax.jit" else None
            hint = f"Use `{better}`, which treats non-arrays as static"
            if traced_scalar is not None:
                hint = (f"Use `{better}` after making {traced_scalar.phrase()} an array "
                        f"(`jnp.asarray`) or a static field: `{better}` would make it static "
                        f"and retrace whenever it changes")
            elif eqx_alias is not None and all(k in allowed for k in keywords):
                replacements = ((target, cst.parse_expression(better)),)
            name = function.name.value
            message = (f"`{transform}` is given `{name}`, whose argument `{parameter}` is an "
                       f"Equinox module holding a leaf `{transform}` cannot take: "
                       f"{refused.phrase()}")
            if consumer == STATIC_CONSUMER:
                message = (f"`{transform}` is given `{name}` with `{parameter}` in "
                           f"`static_argnums`, but a static argument must be hashable, and an "
                           f"Equinox module holding arrays is not ({refused.phrase()})")
            yield Finding(
                node=node,
                message=message,
                hint=hint,
                replacements=replacements,
                fix_message=f"Replace `{transform}` with `{better}`",
                anchor=call,
            )


def _may_receive_module(flow: ModuleFlow) -> bool:
    """The first look on `ast`: could a transformed def receive a module (see
    _module_argument)? A def given by name to a transformation, or decorated with one,
    whose parameter annotation may name a module class, or that is a method of a class
    with bases (`self`), or a call that may pass it a module: `jax.jit(f)(model)`, `f(model)`,
    or `step(model)` where `step = jax.jit(f)` (any call with such a callee, whatever it
    transforms). What may hold a module: ModuleFlow.
    """
    transforms = TRANSFORMS.keys()
    transformed: list[ast.AST] = []
    callees: set[str] = set()
    for call in flow.calls:
        if flow.quals(call.func).isdisjoint(transforms):
            continue
        positional = [arg for arg in call.args if type(arg) is not ast.Starred]
        target = positional[0] if positional else next(
            (keyword.value for keyword in call.keywords if keyword.arg == "fun"), None)
        if type(target) is ast.Name:
            transformed.extend(flow.defs.get(target.id, ()))  # type: ignore[union-attr]
    for name, bindings in flow.bound_calls().items():
        if any(not flow.quals(value.func).isdisjoint(transforms) for value in bindings):
            callees.add(name)
    for functions in flow.defs.values():
        for function in functions:
            for decorator in function.decorator_list:
                head = decorator.func if type(decorator) is ast.Call else decorator  # type: ignore[attr-defined]
                if not flow.quals(head).isdisjoint(transforms) or \
                        not flow.quals(decorator).isdisjoint(transforms):
                    transformed.append(function)
    if not transformed:
        return False
    for function in transformed:
        assert isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        callees.add(function.name)
        arguments = function.args
        for arg in list(arguments.posonlyargs) + list(arguments.args) + list(arguments.kwonlyargs):
            if arg.annotation is not None and flow.annotation_holds(arg.annotation):
                return True
        if flow.methods.get(id(function)) in flow.classes_with_bases:
            return True
    for call in flow.calls:
        func = call.func
        if type(func) is ast.Call or (type(func) is ast.Name and func.id in callees):
            if any(type(arg) is not ast.Starred and flow.holds(arg) for arg in call.args):
                return True
    return False


def _transformed_functions(semantics: Semantics
                           ) -> Iterator[tuple[cst.FunctionDef, str, cst.CSTNode, Optional[cst.Call]]]:
    """(function, transform, node to report, the transform's call if not a bare decorator).

    A name given to a transform is the def its scope sees, not any def of that name.
    """
    for site in semantics.calls:
        if site.qualname in TRANSFORMS:
            target = argument(site.node, 0, "fun")
            if isinstance(target, cst.Name):
                function = semantics.function_named(target.value, site.scope, site.seq)
                if function is not None:
                    yield function, site.qualname, site.node, site.node
    for function in semantics.function_list:
        for decorator in function.decorators:
            qual = semantics.qualname(decorator.decorator)
            if qual in TRANSFORMS:
                yield function, qual, decorator.decorator, None
            elif isinstance(decorator.decorator, cst.Call) and \
                    semantics.qualname(decorator.decorator.func) in TRANSFORMS:
                yield function, semantics.qualname(decorator.decorator.func) or "", \
                    decorator.decorator, decorator.decorator


def _module_argument(semantics: Semantics, function: cst.FunctionDef, transform: str,
                     call: Optional[cst.Call]) -> Optional[tuple[str, Leaf, Value, str]]:
    """(parameter, the leaf the transform refuses, the module, the measured consumer)."""
    params = list(function.params.posonly_params) + list(function.params.params)
    traced = _traced_positions(semantics, transform, call, len(params))
    for position, param in enumerate(params):
        consumer = traced.get(position)
        if consumer is None:
            continue
        candidates = list(_passed_at(semantics, function, call, position))
        if not candidates:
            value = _parameter_value(semantics, function, param, position)
            candidates = [value] if value is not None else []
        for value in candidates:
            if value.kind != "module":
                continue
            if consumer == STATIC_CONSUMER:
                # Static arguments are hashed: a module holding arrays is not hashable.
                refused = semantics.first_leaf(value, ARRAY_KINDS)
            else:
                refused = semantics.refused_leaf(value, consumer)
            if refused is None and transform == "jax.jit":
                refused = semantics.first_leaf(value, FAILS_WHEN_CALLED_UNDER_JIT)
            if refused is not None:
                return param.name.value, refused, value, consumer
    return None


def _traced_positions(semantics: Semantics, transform: str, call: Optional[cst.Call],
                      count: int) -> dict[int, str]:
    """Position -> the measured consumer of that argument (see CONSUMERS)."""
    consumer = CONSUMERS[transform]
    if transform in ("jax.grad", "jax.value_and_grad"):
        argnums = keyword_arg(call, "argnums") if call is not None else None
        if argnums is None:
            return {0: consumer}
        if isinstance(argnums, cst.Integer):
            return {int(argnums.value): consumer}
        if isinstance(argnums, cst.Tuple):
            return {int(e.value.value): consumer for e in argnums.elements
                    if isinstance(e.value, cst.Integer)}
        return {}
    if transform == "jax.vmap":
        in_axes = keyword_arg(call, "in_axes") if call is not None else None
        if in_axes is None and call is not None and len(positional_args(call)) > 1:
            in_axes = positional_args(call)[1]
        if in_axes is None or isinstance(in_axes, cst.Integer):
            return dict.fromkeys(range(count), consumer)
        if isinstance(in_axes, (cst.Tuple, cst.List)):
            return {i: consumer for i, e in enumerate(in_axes.elements)
                    if not (isinstance(e.value, cst.Name) and e.value.value == "None")}
        return {}
    positions = dict.fromkeys(range(count), consumer)
    static = keyword_arg(call, "static_argnums") if call is not None else None
    if static is None:
        return positions
    numbers = [static] if isinstance(static, cst.Integer) else \
        [e.value for e in static.elements] if isinstance(static, (cst.Tuple, cst.List)) else None
    if numbers is None or not all(isinstance(n, cst.Integer) for n in numbers):
        return {}
    for number in numbers:
        assert isinstance(number, cst.Integer)
        positions[int(number.value)] = STATIC_CONSUMER
    return positions


def _parameter_value(semantics: Semantics, function: cst.FunctionDef, param: cst.Param,
                     position: int) -> Optional[Value]:
    """What the parameter holds when no call site of the file shows it: its annotation,
    or `self` in a method of a module class."""
    if param.annotation is not None:
        value = semantics.annotation_value(param.annotation.annotation)
        if value is not None and value.kind == "module":
            return value
    if position == 0 and param.name.value == "self":
        scope = semantics.scope_of_node.get(id(function))
        owner = scope.method_of if scope is not None else None
        if owner is not None and semantics.is_equinox_module_class(LOCAL_PREFIX + owner.name):
            return Value("module", None, cls=LOCAL_PREFIX + owner.name, site=semantics)
    return None


def _passed_at(semantics: Semantics, function: cst.FunctionDef, call: Optional[cst.Call],
               position: int) -> Iterator[Value]:
    """What call sites in the file pass at `position` to the transformed function."""
    callers: list[CallSite] = []
    for site in semantics.calls:
        func = site.node.func
        if call is not None and func is call:
            callers.append(site)  # jax.jit(f)(model, ...)
        elif isinstance(func, cst.Name) and call is not None:
            binding = semantics.lookup(func.value, site.scope, site.seq)
            if binding is not None and binding.value is call:
                callers.append(site)  # step = jax.jit(f); step(model, ...)
        elif call is None and isinstance(func, cst.Name) and func.value == function.name.value \
                and semantics.function_named(func.value, site.scope, site.seq) is function:
            callers.append(site)  # @jax.jit def f: f(model, ...)
    for site in callers:
        arguments = positional_args(site.node)
        if position < len(arguments):
            value = semantics.infer(arguments[position], at=site)
            if value is not None:
                yield value
