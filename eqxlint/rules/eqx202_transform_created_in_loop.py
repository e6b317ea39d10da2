"""EQX202: `jax.jit`/`eqx.filter_jit` of a new function object in every loop iteration."""

from __future__ import annotations

import re
from typing import Iterator, Optional

import libcst as cst

from eqxlint.rules.base import Bad, Finding, Good, Rule
from eqxlint.semantics import CallSite, Semantics, argument

JITS = ("jax.jit", "equinox.filter_jit", "jax.pmap", "equinox.filter_pmap")
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
        the loop body.
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
        on `f`), and for functions the file does not show being created in the loop.
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
    )

    @classmethod
    def may_fire(cls, source: bytes) -> bool:
        """Only where `jit(`/`pmap(` gets a lambda, a partial, or a def nested in a block."""
        if not super().may_fire(source):
            return False
        for is_lambda, is_partial, name in _COMPILED.findall(source):
            if is_lambda or is_partial:
                return True
            if re.search(rb"\n[ \t]+def " + re.escape(name) + rb"\(", source):
                return True
        return False

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for site in semantics.calls:
            if site.qualname not in JITS or not site.loops:
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
