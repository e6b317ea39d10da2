"""EQX201: `jax.jit`/`jax.grad`/`jax.vmap` given a function that receives an Equinox module."""

from __future__ import annotations

import re
from typing import Iterator, Optional

import libcst as cst

from eqxlint.rules.base import Bad, FixCase, Finding, Good, Rule
from eqxlint.semantics import (LOCAL_PREFIX, CallSite, Semantics, Value, argument, dotted_name,
                               keyword_arg, positional_args)

# jax transformation -> (its equinox counterpart, keywords the counterpart also accepts)
TRANSFORMS = {
    "jax.jit": ("filter_jit", ()),
    "jax.grad": ("filter_grad", ("has_aux",)),
    "jax.value_and_grad": ("filter_value_and_grad", ("has_aux",)),
    "jax.vmap": ("filter_vmap", ("in_axes", "out_axes", "axis_name", "axis_size")),
}


_DECORATED = re.compile(rb"@\s*(?:[\w.]*\.)?(?:jit|grad|value_and_grad|vmap)\b")
_APPLIED_TO_NAME = re.compile(rb"\b(?:jit|grad|value_and_grad|vmap)\s*\(\s*([A-Za-z_]\w*)\s*[,)]")


class JaxTransformOnModule(Rule):
    code = "EQX201"
    name = "jax-transform-on-module"
    summary = "`jax.jit`/`grad`/`vmap` on a function that takes a module holding non-arrays"
    fix_applicability = "unsafe"
    triggers = ((b"jax",), (b"jit", b"grad", b"vmap"), (b"Module", b"nn."))
    what_it_does = """
        Checks for `jax.jit`, `jax.grad`, `jax.value_and_grad` and `jax.vmap` applied to a
        function defined in the file that receives an Equinox module holding non-array
        leaves (an `eqx.nn.MLP`'s activation, a `Dropout`'s rate, ...). That the function
        receives one is known from a call site in the file (`jax.jit(loss)(model, x)`,
        `step = jax.jit(step)` then `step(model, ...)`), from a parameter's annotation
        (`model: eqx.nn.MLP`), or from `self` in a method of such a module.
    """
    why_bad = """
        JAX transformations need every argument to be an array (or declared static). A
        module holding a function fails (the error is quoted below); with
        `static_argnums` it fails with `Non-hashable static arguments are not
        supported`; `jax.grad` says `... is not a valid JAX type`. Equinox's filtered
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
        always takes the gradient with respect to the first argument. The fix is offered
        only when the call uses no keyword the Equinox version lacks (`static_argnums`,
        `argnums`, ...).
    """
    runtime = "None: this rule is static only."
    real_error = ("TypeError: Error interpreting argument to <function loss at 0x...> as an "
                  "abstract array. The problematic value is of type <class "
                  "'jax._src.custom_derivatives.custom_jvp'> and was passed to the function at "
                  "path m.activation.")
    known_limits = """
        Quiet for `jax.vmap` when the module's `in_axes` entry is `None` (not mapped: that
        works), for `jax.grad` when the module is not at a differentiated position, and
        when the function or the module is not visible in the file.
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
            model = equinox.nn.Sequential([equinox.nn.Linear(2, 2, key=k), equinox.nn.Dropout(0.1)])
            for batch in data:
                model, opt_state = step(model, opt_state, batch)
        """, "transformed once, called later with a module holding a Dropout"),
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

            @jax.jit  # expect: EQX201
            def evaluate(model: eqx.nn.Dropout, x):
                return model(x, inference=True)
        """, "annotation with a Dropout"),
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
    def may_fire(cls, source: bytes) -> bool:
        """Only where a transformation decorates a def, or is applied to a def's name.

        Sound: the check itself looks at nothing else (a transformation of a lambda or
        of an imported function is not followed).
        """
        if not super().may_fire(source):
            return False
        if _DECORATED.search(source):
            return True
        return any(b"def " + name + b"(" in source for name in _APPLIED_TO_NAME.findall(source))

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for function, transform, node, call in _transformed_functions(semantics):
            culprit = _module_argument(semantics, function, transform, call)
            if culprit is None:
                continue
            parameter, leaf = culprit
            counterpart, allowed = TRANSFORMS[transform]
            eqx_alias = semantics.local_name_for("equinox")
            better = f"{eqx_alias or 'eqx'}.{counterpart}"
            replacements: tuple = ()
            keywords = [a.keyword.value for a in call.args if a.keyword is not None] \
                if call is not None else []
            target = call.func if call is not None else node
            if eqx_alias is not None and all(k in allowed for k in keywords):
                replacements = ((target, cst.parse_expression(better)),)
            name = function.name.value
            yield Finding(
                node=node,
                message=(f"`{transform}` is given `{name}`, whose argument `{parameter}` is an "
                         f"Equinox module with non-array leaves ({leaf}): JAX cannot trace it"),
                hint=f"Use `{better}`, which treats non-arrays as static",
                replacements=replacements,
                fix_message=f"Replace `{transform}` with `{better}`",
                anchor=call,
            )


def _transformed_functions(semantics: Semantics
                           ) -> Iterator[tuple[cst.FunctionDef, str, cst.CSTNode, Optional[cst.Call]]]:
    """(function, transform, node to report, the transform's call if not a bare decorator)."""
    definitions = semantics.function_defs
    for site in semantics.calls:
        if site.qualname in TRANSFORMS:
            target = argument(site.node, 0, "fun")
            name = dotted_name(target) if target is not None else None
            if name in definitions:
                yield definitions[name], site.qualname, site.node, site.node
    for function in definitions.values():
        for decorator in function.decorators:
            qual = semantics.qualname(decorator.decorator)
            if qual in TRANSFORMS:
                yield function, qual, decorator.decorator, None
            elif isinstance(decorator.decorator, cst.Call) and \
                    semantics.qualname(decorator.decorator.func) in TRANSFORMS:
                yield function, semantics.qualname(decorator.decorator.func) or "", \
                    decorator.decorator, decorator.decorator


def _module_argument(semantics: Semantics, function: cst.FunctionDef, transform: str,
                     call: Optional[cst.Call]) -> Optional[tuple[str, str]]:
    """(parameter, the non-array leaf) when a traced argument is such a module."""
    params = list(function.params.posonly_params) + list(function.params.params)
    traced = _traced_positions(semantics, transform, call, len(params))
    for position, param in enumerate(params):
        if position not in traced:
            continue
        value = _parameter_value(semantics, function, param, position)
        if value is not None:
            leaf = semantics.non_array_leaf(value)
            if leaf:
                return param.name.value, leaf
        for passed in _passed_at(semantics, function, call, position):
            leaf = semantics.non_array_leaf(passed)
            if leaf:
                return param.name.value, leaf
    return None


def _traced_positions(semantics: Semantics, transform: str, call: Optional[cst.Call],
                      count: int) -> set[int]:
    if transform in ("jax.grad", "jax.value_and_grad"):
        argnums = keyword_arg(call, "argnums") if call is not None else None
        if argnums is None:
            return {0}
        if isinstance(argnums, cst.Integer):
            return {int(argnums.value)}
        if isinstance(argnums, cst.Tuple):
            return {int(e.value.value) for e in argnums.elements
                    if isinstance(e.value, cst.Integer)}
        return set()
    if transform == "jax.vmap":
        in_axes = keyword_arg(call, "in_axes") if call is not None else None
        if in_axes is None and call is not None and len(positional_args(call)) > 1:
            in_axes = positional_args(call)[1]
        if in_axes is None or isinstance(in_axes, cst.Integer):
            return set(range(count))
        if isinstance(in_axes, (cst.Tuple, cst.List)):
            return {i for i, e in enumerate(in_axes.elements)
                    if not (isinstance(e.value, cst.Name) and e.value.value == "None")}
        return set()
    return set(range(count))


def _parameter_value(semantics: Semantics, function: cst.FunctionDef, param: cst.Param,
                     position: int) -> Optional[Value]:
    if param.annotation is not None:
        qual = semantics.qualname(param.annotation.annotation)
        if qual is not None and (qual.startswith("equinox.nn.") or qual.startswith(LOCAL_PREFIX)):
            return Value("module", None, cls=qual)
    if position == 0 and param.name.value == "self":
        scope = semantics.scope_of_node.get(id(function))
        owner = scope.method_of if scope is not None else None
        if owner is not None:
            return Value("module", None, cls=LOCAL_PREFIX + owner.name)
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
        elif call is None and isinstance(func, cst.Name) and func.value == function.name.value:
            callers.append(site)  # @jax.jit def f: f(model, ...)
    for site in callers:
        arguments = positional_args(site.node)
        if position < len(arguments):
            value = semantics.infer(arguments[position], at=site)
            if value is not None:
                yield value
