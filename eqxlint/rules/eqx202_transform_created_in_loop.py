"""EQX202: `jax.jit`/`eqx.filter_jit` of a new function object in every loop iteration."""

from __future__ import annotations

import re
from typing import Iterator, Optional

import libcst as cst

from eqxlint.rules.base import Bad, Finding, FirstLook, Good, Rule
from eqxlint.semantics import Binding, CallSite, Semantics, argument, descendants

JITS = ("jax.jit", "equinox.filter_jit", "jax.pmap", "equinox.filter_pmap")
# A jit decorator on an indented def: `@jax.jit`, `@eqx.filter_jit`, `@partial(jax.jit, ...)`.
_DECORATED = re.compile(rb"\n[ \t]+@\s*(?:[\w.]+\.)?(?:filter_)?(?:jit|pmap)\b|"
                        rb"\n[ \t]+@\s*(?:functools\s*\.\s*)?partial\s*\(\s*[\w.]*(?:jit|pmap)\b")
_COMPILED = re.compile(rb"(?:jit|pmap)\s*\(\s*(?:(lambda)\b|(?:functools\s*\.\s*)?(partial)\s*\(|"
                       rb"([A-Za-z_]\w*))")


class TransformCreatedInLoop(Rule):
    code = "EQX202"
    name = "transform-created-in-loop"
    summary = "`jax.jit`/`eqx.filter_jit` of a lambda, partial or local def inside a loop"
    triggers = ((b"jit", b"pmap"), (b"for ", b"while "))
    what_it_does = """
        Checks for `jax.jit(...)` or `eqx.filter_jit(...)` (and `pmap`) called inside a
        `for`/`while` body on a function object that the loop makes anew each
        iteration: a `lambda`, a `functools.partial(...)`, or a function defined inside
        the loop body; and for a def inside the loop body decorated with a jit
        (`@jax.jit`, `@eqx.filter_jit`, `@partial(jax.jit, ...)`). A function that a
        loop calls and that makes its jitted function anew each call is EQX204.
    """
    why_bad = """
        JAX caches compiled code by the function object. A new object each iteration
        misses the cache: every step traces and compiles again, which is slower than
        not compiling at all. Nothing fails; training is just many times slower.
    """
    example = """
        for batch in batches:
            step = eqx.filter_jit(lambda m, b: train_step(m, b, optim))
            model = step(model, batch)
    """
    use_instead = """
        step = eqx.filter_jit(train_step)
        for batch in batches:
            model = step(model, batch, optim)
    """
    fix_safety = "No automatic fix: moving code out of a loop needs the author's eye."
    runtime = "None: this rule is static only."
    real_error = "(none: each iteration compiles again)"
    known_limits = """
        Quiet for `jax.jit(f)` of a function defined outside the loop (JAX's cache is keyed
        on `f`), for functions the file does not show being created in the loop, and for
        loops over configurations written out (`for n in (10, 100):`), where a compile
        per configuration is the point.
    """

    bad_examples = (
        Bad("""
            import jax

            for x in xs:
                y = jax.jit(lambda v: v * 2)(x)  # expect: EQX202
        """, "a lambda"),
        Bad("""
            import functools
            import equinox as eqx

            for batch in batches:
                step = eqx.filter_jit(functools.partial(train_step, optim=optim))  # expect: EQX202
                model = step(model, batch)
        """, "functools.partial"),
        Bad("""
            import equinox as eqx

            while not done:
                def step(model, batch):
                    return update(model, batch)
                model = eqx.filter_jit(step)(model, next(data))  # expect: EQX202
        """, "a def inside a while body"),
        Bad("""
            from functools import partial
            from jax import jit

            def train(model, data):
                for epoch in range(10):
                    for batch in data:
                        model = jit(partial(step, lr=0.1))(model, batch)  # expect: EQX202
                return model
        """, "from-imports, nested loops inside a function"),
        Bad("""
            import jax

            class Trainer:
                def run(self):
                    for batch in self.data:
                        self.loss = jax.jit(lambda p: self.loss_fn(p, batch))(self.params)  # expect: EQX202
        """, "a method"),
        Bad("""
            import equinox as eqx

            for step_index in range(1000):
                apply = eqx.filter_jit(
                    lambda m: m  # expect: EQX202
                )
        """, "reported at the lambda, spanning lines"),
        Bad("""
            import equinox as eqx

            for epoch in range(num_epochs):
                @eqx.filter_jit  # expect: EQX202
                def step(model, batch):
                    return update(model, batch, lr=schedule(epoch))
                for batch in loader:
                    model = step(model, batch)
        """, "`@eqx.filter_jit` on a def inside the epoch loop"),
        Bad("""
            from functools import partial
            import jax

            while not converged:
                @partial(jax.jit, static_argnums=2)  # expect: EQX202
                def solve(a, b, n):
                    return iterate(a, b, n)
                x, converged = solve(a, b, 10)
        """, "a decorator through functools.partial, in a while loop"),
    )
    good_examples = (
        Good("""
            import jax

            step = jax.jit(lambda v: v * 2)
            for x in xs:
                y = step(x)
        """, "created once, before the loop"),
        Good("""
            import jax

            def double(v):
                return v * 2

            for x in xs:
                y = jax.jit(double)(x)
        """, "a module-level function: JAX's cache is keyed on it"),
        Good("""
            import equinox as eqx

            for config in configs:
                model = build(config)
            step = eqx.filter_jit(lambda m: m)
        """, "after the loop"),
        Good("""
            import jax

            def make_step():
                return jax.jit(lambda v: v + 1)

            for x in xs:
                pass
        """, "a loop elsewhere"),
        Good("""
            import jax

            for x in xs:
                def inner():
                    return jax.jit(lambda v: v)
        """, "inside a def in the loop: runs when called, not per iteration"),
        Good("""
            import jax

            steps = [jax.jit(f) for f in functions]
        """, "a comprehension over distinct functions"),
        Good("""
            import jax

            for x in xs:
                y = jax.numpy.sum(jax.vmap(lambda v: v)(x))
        """, "vmap is not compiled and cached"),
        Good("""
            import jax

            for name in names:
                step = jax.jit(getattr(module, name))
        """, "the function object is not visibly new"),
        Good("""
            import equinox as eqx

            @eqx.filter_jit
            def step(model, batch):
                return update(model, batch)

            for batch in loader:
                model = step(model, batch)
        """, "decorated once, at module level"),
        Good("""
            import jax

            for max_steps in (10_000, 100_000):
                @jax.jit
                @jax.vmap
                @jax.grad
                def run(x0):
                    return solve(x0, max_steps=max_steps)
                times[max_steps] = timeit.repeat(lambda: run(x0), number=1, repeat=10)
        """, "a benchmark over configurations written out: one compile each, on purpose (real code)"),
        Good("""
            import functools

            for name in names:
                @functools.wraps(base)
                def wrapper(*args):
                    return base(*args)
                registry[name] = wrapper
        """, "a def in a loop with a decorator that is not a jit"),
        Good("""
            import jax

            for width in widths:
                def build():
                    @jax.jit
                    def forward(x):
                        return x * width
                    return forward
        """, "a jitted def inside a def that the loop only defines"),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Only where `jit(`/`pmap(` gets a lambda, a partial, or a def nested in a block."""
        if not super().may_fire(source, look):
            return False
        if _DECORATED.search(source):
            return True
        for is_lambda, is_partial, name in _COMPILED.findall(source):
            if is_lambda or is_partial:
                return True
            if re.search(rb"\n[ \t]+def " + re.escape(name) + rb"\(", source):
                return True
        return False

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        over_configurations = _ConfigurationLoops(semantics)
        for site in semantics.calls:
            if site.qualname not in JITS or not site.loops:
                continue
            if over_configurations(site.loops[-1]):
                continue
            target = argument(site.node, 0, "fun")
            if target is None:
                continue
            made = _made_each_iteration(semantics, site, target)
            if made is None:
                continue
            transform = site.qualname.replace("equinox.", "eqx.")
            yield Finding(
                node=target,
                message=(f"`{transform}` of {made} created inside the loop: each iteration "
                         f"traces and compiles again"),
                hint=f"Create it once, before the loop: `step = {transform}(...)`",
                anchor=site.node,
            )
        for node, decorator, qualname, binding in jit_decorated_defs(semantics):
            if not binding.loops or over_configurations(binding.loops[-1]):
                continue
            transform = qualname.replace("equinox.", "eqx.")
            yield Finding(
                node=decorator,
                message=(f"`@{transform}` on `{node.name.value}`, a def inside the loop: each "
                         f"iteration makes a new function, which traces and compiles again"),
                hint=f"Define `{node.name.value}` once, before the loop, and call it inside",
            )


class _ConfigurationLoops:
    """Is a loop a walk over a few configurations written out (`for n in (10, 100):`)?
    A benchmark or a sweep compiles once per configuration on purpose."""

    def __init__(self, semantics: Semantics) -> None:
        self.semantics = semantics
        self._literal: Optional[set[int]] = None

    def __call__(self, loop_id: int) -> bool:
        if self._literal is None:
            self._literal = {id(node) for node in descendants(self.semantics.module, cst.For)
                             if isinstance(node.iter, (cst.Tuple, cst.List, cst.Set))}
        return loop_id in self._literal


def jit_of_decorator(semantics: Semantics, expression: cst.BaseExpression) -> Optional[str]:
    """The jit a decorator applies: `@jax.jit`, `@eqx.filter_jit`, `@eqx.filter_jit(...)`,
    `@partial(jax.jit, ...)`; None for any other decorator."""
    qual = semantics.qualname(expression)
    if qual in JITS:
        return qual
    if isinstance(expression, cst.Call):
        qual = semantics.qualname(expression.func)
        if qual in JITS:
            return qual
        if qual == "functools.partial" and expression.args:
            inner = semantics.qualname(expression.args[0].value)
            if inner in JITS:
                return inner
    return None


def jit_decorated_defs(semantics: Semantics
                       ) -> Iterator[tuple[cst.FunctionDef, cst.Decorator, str, Binding]]:
    """Every def decorated with a jit: (def, decorator, the jit's qualified name, the def's
    binding, whose `loops` say whether a loop runs the def statement)."""
    seen: set[int] = set()
    for scope in list(semantics.scope_of_node.values()):
        node = scope.node
        if scope.kind != "function" or id(node) in seen or not isinstance(node, cst.FunctionDef):
            continue
        seen.add(id(node))
        if not node.decorators or scope.parent is None:
            continue
        binding = next((b for b in scope.parent.bindings.get(node.name.value, [])
                        if b.target is node.name), None)
        if binding is None:
            continue
        for decorator in node.decorators:
            transform = jit_of_decorator(semantics, decorator.decorator)
            if transform is not None:
                yield node, decorator, transform, binding
                break


def _made_each_iteration(semantics: Semantics, site: CallSite,
                         target: cst.BaseExpression) -> Optional[str]:
    if isinstance(target, cst.Lambda):
        return "a lambda"
    if isinstance(target, cst.Call) and semantics.qualname(target.func) == "functools.partial":
        return "a `functools.partial`"
    if isinstance(target, cst.Name):
        binding = semantics.lookup(target.value, site.scope, site.seq)
        if binding is not None and binding.definition == "function" \
                and set(binding.loops) & set(site.loops):
            return f"`{target.value}`, a function defined"
    return None
