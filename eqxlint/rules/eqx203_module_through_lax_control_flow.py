"""EQX203: a module holding non-array leaves passed through `lax` control flow, or jitted itself."""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import Iterator, Optional

import libcst as cst

from eqxlint.knowledge import jax_transforms
from eqxlint.rules.base import PROJECT_IMPORT, Bad, Finding, Good, Rule
from eqxlint.rules.first_look import FirstLook
from eqxlint.rules.module_flow import FlowTooDeep, ModuleFlow, module_flow
from eqxlint.semantics import CallSite, Semantics, argument, positional_args

# Where each lax function takes values that it traces, and under which measured name.
# (qualified name, the measured consumer, where: "index:keyword" or "index+" for the rest)
_OPERANDS: dict[str, tuple[tuple[str, int, Optional[str], bool], ...]] = {
    "jax.lax.scan": (("jax.lax.scan(carry)", 1, "init", False), ("jax.lax.scan(xs)", 2, "xs", False)),
    "jax.lax.cond": (("jax.lax.cond", 3, "operand", True),),
    "jax.lax.switch": (("jax.lax.switch", 2, "operand", True),),
    "jax.lax.while_loop": (("jax.lax.while_loop", 2, "init_val", False),),
    "jax.lax.fori_loop": (("jax.lax.fori_loop", 3, "init_val", False),),
}
_CONSUMERS = frozenset(_OPERANDS) | {"jax.jit"}
_CONTAINERS = ("module", "tuple", "list", "dict")
# A consumer's name is spelled where it is called or imported (any alias in front).
_CONSUMER_WORDS = (b"scan", b"cond", b"switch", b"while_loop", b"fori_loop", b"jit")
_CONSUMER_NAME = re.compile(rb"\b(?:" + b"|".join(_CONSUMER_WORDS) + rb")\b")
_SPOKEN = {"jax.lax.scan(carry)": "the carry of `lax.scan`", "jax.lax.scan(xs)": "the `xs` of `lax.scan`",
           "jax.lax.cond": "an operand of `lax.cond`", "jax.lax.switch": "an operand of `lax.switch`",
           "jax.lax.while_loop": "the `init_val` of `lax.while_loop`",
           "jax.lax.fori_loop": "the `init_val` of `lax.fori_loop`"}


class ModuleThroughLaxControlFlow(Rule):
    code = "EQX203"
    name = "module-through-lax-control-flow"
    summary = "A module holding functions given to `lax.scan`/`cond`/`switch`/loops, or `jax.jit(model)`"
    triggers = ((b"equinox", PROJECT_IMPORT), (b"lax", b"jit"))
    what_it_does = """
        Checks for an Equinox module that provably holds a leaf `lax` cannot trace (a
        function such as an activation, a string, another object) passed as a traced
        value of `jax.lax` control flow: the carry (`init`) or `xs` of `jax.lax.scan`,
        an operand of `lax.cond` / `lax.switch`, the `init_val` of `lax.while_loop` /
        `lax.fori_loop` (alone or inside a tuple, list or dict). Also `jax.jit(model)`:
        jitting a module that holds arrays as if it were a function.

        Which leaves each consumer refuses is measured from the installed JAX by
        `scripts/generate_knowledge.py` (eqxlint/knowledge/jax_transforms.py), not typed
        by hand: `lax.scan`'s `xs` also refuses Python scalars; `jax.jit(model.__call__)`
        works, so it is not reported.
    """
    why_bad = """
        `lax` control flow traces every leaf of its operands as an array. A module's
        activation function is not one, and the call fails while tracing, often deep
        inside a training step. `jax.jit(model)` hashes the module as the function to
        compile, and its arrays cannot be hashed.
    """
    example = """
        model = eqx.nn.MLP(2, 2, 8, 1, key=jax.random.PRNGKey(0))

        def body(carry, x):
            model, h = carry
            return (model, model(h)), None

        (model, h), _ = jax.lax.scan(body, (model, h0), None, length=3)
    """
    use_instead = """
        model = eqx.nn.MLP(2, 2, 8, 1, key=jax.random.PRNGKey(0))
        params, static = eqx.partition(model, eqx.is_array)

        def body(carry, x):
            params, h = carry
            model = eqx.combine(params, static)
            return (params, model(h)), None

        (params, h), _ = jax.lax.scan(body, (params, h0), None, length=3)
    """
    fix_safety = ("No automatic fix: partitioning changes what the body receives, and "
                  "closing over the module changes what is traced.")
    runtime = "None: this rule is static only."
    real_error = """
        Measured (jax 0.10.2, equinox 0.13.8) with `model = eqx.nn.MLP(2, 2, 8, 1, key=...)`:
        `jax.lax.scan(body, (model, x), None, length=3)`, `jax.lax.cond(True, f, g, model,
        x)` and `jax.lax.fori_loop(0, 3, body, model)` each raise `TypeError: Argument
        '<jax._src.custom_derivatives.custom_jvp object at 0x…>' of type '<class
        'jax._src.custom_derivatives.custom_jvp'>' is not a valid JAX type`;
        `jax.jit(model)(x)` raises `TypeError: unhashable type: 'jaxlib._jax.ArrayImpl'`.
        The same scan closing over `model` works, as does a scan over
        `eqx.partition(model, eqx.is_array)[0]`, and `jax.jit(model.__call__)(x)`.
    """
    known_limits = """
        The module must be one the file shows being built (an `equinox.nn` layer known to
        hold a function, or a class of the project whose fields do). Operands passed
        with `*args` are not followed.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx
            import jax

            model = eqx.nn.MLP(2, 2, 8, 1, key=jax.random.PRNGKey(0))

            def body(carry, x):
                model, h = carry
                return (model, model(h)), None

            (model, h), _ = jax.lax.scan(body, (model, h0), None, length=3)  # expect: EQX203
        """, "the model in scan's carry"),
        Bad("""
            import equinox as eqx
            import jax.lax as lax

            ensemble = eqx.nn.MLP(2, 2, 8, 1, key=key)
            ys, _ = lax.scan(lambda h, m: (m(h), None), x0, ensemble)  # expect: EQX203
        """, "a stack of layers as scan's xs"),
        Bad("""
            import equinox as eqx
            import jax

            actor = eqx.nn.MLP(4, 2, 64, 2, key=key)
            action = jax.lax.cond(explore, lambda m, o: random_action(o), lambda m, o: m(o),  # expect: EQX203
                                  actor, obs)
        """, "an operand of lax.cond"),
        Bad("""
            import equinox as eqx
            from jax import lax

            policy = eqx.nn.Sequential([eqx.nn.Linear(4, 4, key=key), eqx.nn.Lambda(jax.nn.relu)])
            out = lax.switch(index, [branch_a, branch_b], policy, obs)  # expect: EQX203
        """, "an operand of lax.switch, through Sequential and Lambda"),
        Bad("""
            import equinox as eqx
            import jax

            model = eqx.nn.MLP(2, 2, 8, 1, key=key)

            def cond_fun(state):
                return state[0] < 10

            def body_fun(state):
                step, model, opt_state = state
                return step + 1, train(model), opt_state

            final = jax.lax.while_loop(cond_fun, body_fun, (0, model, opt_state))  # expect: EQX203
        """, "the training state of a while_loop"),
        Bad("""
            import equinox as eqx
            import jax

            model = eqx.nn.MLP(2, 2, 8, 1, key=key)
            model = jax.lax.fori_loop(0, num_steps, lambda i, m: update(m), model)  # expect: EQX203
        """, "fori_loop over training steps"),
        Bad("""
            import equinox as eqx
            import jax

            model = eqx.nn.Linear(3, 3, key=jax.random.PRNGKey(0))
            fast_model = jax.jit(model)  # expect: EQX203
            y = fast_model(x)
        """, "jax.jit of the module itself"),
        Bad("""
            import equinox as eqx
            from jax.lax import scan as S

            def make(key):
                return eqx.nn.MLP(2, 2, 8, 1, key=key)

            model, h0 = make(key), 0.0
            carry, _ = S(body, (model, h0), None, length=3)  # expect: EQX203
        """, "a renamed import, a module returned by a def, then unpacked (the first look "
             "resolves the alias and follows the def)"),
        Bad("""
            import equinox as eqx
            import jax

            class Trainer:
                def __init__(self, key):
                    self.model = eqx.nn.MLP(2, 2, 8, 1, key=key)

                def run(self, x):
                    return jax.lax.cond(x > 0, f, g, self.model, x)  # expect: EQX203
        """, "a method: the module is a `self` attribute"),
        Bad("""
            import equinox as eqx
            import jax

            def fit(model, h0):
                return jax.lax.fori_loop(0, 3, step, (model, h0))  # expect: EQX203

            fit(eqx.nn.MLP(2, 2, 8, 1, key=key), h0)
        """, "a parameter: the first look follows what the file's calls pass"),
        Bad("""
            import equinox as eqx
            import jax

            model = eqx.nn.Linear(3, 3, key=key)
            fast = jax.jit(model, donate_argnums=0)  # expect: EQX203
        """, "jax.jit of the module, with more arguments"),
    )
    good_examples = (
        Good("""
            import equinox as eqx
            import jax

            model = eqx.nn.MLP(2, 2, 8, 1, key=key)
            h, _ = jax.lax.scan(lambda h, _: (model(h), None), h0, None, length=3)
        """, "closed over: only arrays are traced"),
        Good("""
            import equinox as eqx
            import jax

            model = eqx.nn.MLP(2, 2, 8, 1, key=key)
            params, static = eqx.partition(model, eqx.is_array)
            params, _ = jax.lax.scan(body, params, None, length=3)
        """, "partitioned first"),
        Good("""
            import equinox as eqx
            import jax

            model = eqx.nn.Linear(2, 2, key=key)
            model = jax.lax.fori_loop(0, 3, lambda i, m: m, model)
        """, "a Linear holds only arrays"),
        Good("""
            import equinox as eqx
            import jax

            model = eqx.nn.MLP(2, 2, 8, 1, key=key)
            y = jax.jit(model.__call__)(x)
        """, "jax.jit of the bound method works (measured)"),
        Good("""
            import equinox as eqx
            import jax

            model = eqx.nn.MLP(2, 2, 8, 1, key=key)
            y = eqx.filter_jit(model)(x)
        """, "eqx.filter_jit of the module"),
        Good("""
            import jax

            carry, ys = jax.lax.scan(step, (params, opt_state), batches)
        """, "values the file does not show"),
        Good("""
            import equinox as eqx
            import jax

            model = eqx.nn.MLP(2, 2, 8, 1, key=key)
            total = jax.lax.fori_loop(0, 10, lambda i, acc: acc + model(x).sum(), 0.0)
        """, "the loop's value is a float; the module is closed over"),
        Good("""
            import equinox as eqx
            import jax

            model = eqx.nn.MLP(2, 2, 8, 1, key=key)
            dynamic, static = eqx.partition(model, eqx.is_array)
            out = jax.lax.cond(flag, lambda d: eqx.combine(d, static)(x), lambda d: x, dynamic)
        """, "cond over the partitioned arrays"),
        Good("""
            import jax
            import jax.numpy as jnp

            def solve(carry0):
                init = (0, carry0, jnp.inf)
                return jax.lax.fori_loop(0, 10, body, init)
        """, "a constant such as `jnp.inf` in the carry, no module (real code: optax, lineax)"),
        Good("""
            import jax

            def scan(f, init, xs):
                return f(init, xs)

            model = make_model()
            out = scan(body, model, xs)
        """, "a user's own scan"),
        Good("""
            import equinox as eqx
            import jax

            def fit(model, h0):
                return jax.lax.scan(body, h0, None, length=3)

            fit(eqx.nn.MLP(2, 2, 8, 1, key=key), 0.0)
        """, "the module reaches the def, not the carry (the first look says no here)"),
        Good("""
            import equinox as eqx
            import jax

            model = eqx.nn.MLP(2, 2, 8, 1, key=key)
            pair = (model, 0.0)
            h, _ = jax.lax.scan(body, pair[1], None, length=3)
        """, "the float of a pair: tuple positions are followed"),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Only where a lax control-flow function or `jax.jit` (its name resolved through
        any of the file's imports, on Python's `ast`) is given, at an operand `check`
        reads (scan's `init`/`xs`, cond's and switch's operands, the loops' `init_val`,
        jit's function), a value that may hold an Equinox module. ModuleFlow says which:
        one built from an `equinox.nn` class, a class of the file, a class or def of a
        project module, carried by names, parameters, returns, `self` attributes,
        tuples (by position), eqx.partition then eqx.combine.

        Sound: the check reports only an operand that `Semantics.infer` proves to be a
        module or a container holding one, and ModuleFlow says yes wherever it could. A
        module needs `equinox` in the file or in a project module it imports, and a
        consumer's name is spelled in the file (the text screens). A file `ast` cannot
        parse goes to the full check.
        """
        if not any(word in source for word in _CONSUMER_WORDS) \
                or _CONSUMER_NAME.search(source) is None or not super().may_fire(source, look):
            return False
        flow = module_flow(source, look)
        if flow is None:
            return True
        try:
            return _may_pass_module(flow)
        except (FlowTooDeep, RecursionError):
            return True

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for site in semantics.calls:
            qual = site.qualname
            if qual == "jax.jit":
                yield from _jit_of_module(semantics, site)
                continue
            places = _OPERANDS.get(qual or "")
            if places is None or any(arg.star for arg in site.node.args):
                continue
            for consumer, position, keyword, rest in places:
                if rest:
                    args = positional_args(site.node)
                    operands = args[position:]
                    if keyword is not None and not operands:
                        single = argument(site.node, 10 ** 6, keyword)
                        operands = [single] if single is not None else []
                else:
                    single = argument(site.node, position, keyword or "")
                    operands = [single] if single is not None else []
                for operand in operands:
                    found = _refused(semantics, site, operand, consumer)
                    if found is None:
                        continue
                    leaf, error = found
                    where = _SPOKEN.get(consumer, consumer.replace("jax.lax.", "lax."))
                    yield Finding(
                        node=site.node,
                        message=(f"`{semantics.code_of(operand)}` is traced as {where}, and "
                                 f"{leaf}: {error}"),
                        hint="Close over the module instead, or pass its arrays: "
                             "`params, static = eqx.partition(model, eqx.is_array)`, then "
                             "`eqx.combine(params, static)` inside",
                    )
                    break


def _may_pass_module(flow: ModuleFlow) -> bool:
    """A consumer call (its name resolved through any import) given, where `check` reads
    its operands, a value that may hold a module."""
    for call in flow.calls:
        quals = flow.quals(call.func)
        if quals.isdisjoint(_CONSUMERS):
            continue
        if "jax.jit" in quals:
            positional = [arg for arg in call.args if type(arg) is not ast.Starred]
            target = positional[0] if positional else next(
                (k.value for k in call.keywords if k.arg == "fun"), None)
            if target is not None and flow.holds(target):
                return True
        if any(_operands(call, qual, flow) for qual in quals & _OPERANDS.keys()):
            return True
    return False


def _operands(call: "ast.Call", qual: str, flow: ModuleFlow) -> bool:
    """Whether an operand that `check` reads of this lax call (on `ast`) may hold a module."""
    if any(type(arg) is ast.Starred for arg in call.args) or \
            any(keyword.arg is None for keyword in call.keywords):
        return False  # the check skips calls with *args or **kwargs
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    for _consumer, position, keyword, rest in _OPERANDS[qual]:
        if rest:
            operands = list(call.args[position:])
            if not operands and keyword in keywords:
                operands = [keywords[keyword]]
        elif position < len(call.args):
            operands = [call.args[position]]
        else:
            operands = [keywords[keyword]] if keyword in keywords else []
        if any(flow.holds(operand) for operand in operands):
            return True
    return False


def _jit_of_module(semantics: Semantics, site: CallSite) -> Iterator[Finding]:
    target = argument(site.node, 0, "fun")
    if not isinstance(target, (cst.Name, cst.Attribute)):
        return
    value = semantics.infer(target, at=site)
    if value is None or value.kind != "module":
        return
    leaf = semantics.refused_leaf(value, "jax.jit(model)")
    if leaf is None:
        return
    error = jax_transforms.ERRORS.get(("jax.jit(model)", leaf.kind), "")
    name = semantics.code_of(target)
    yield Finding(
        node=site.node,
        message=(f"`jax.jit({name})` compiles the module itself, which holds arrays "
                 f"({leaf.phrase()}): JAX hashes the function it compiles, and raises "
                 f"`{_first_line(error) or 'TypeError: unhashable type'}` at the first call"),
        hint=f"Use `eqx.filter_jit({name})`, or `jax.jit({name}.__call__)`",
    )


def _refused(semantics: Semantics, site: CallSite, operand: cst.BaseExpression,
             consumer: str) -> Optional[tuple[str, str]]:
    value = semantics.infer(operand, at=site)
    if value is None or not _holds_module(value):
        return None
    leaf = semantics.refused_leaf(value, consumer)
    if leaf is None:
        return None
    error = _first_line(jax_transforms.ERRORS.get((consumer, leaf.kind), ""))
    if leaf.path.startswith("["):  # inside a tuple literal: name it from the operand
        leaf = dataclasses.replace(leaf, path=semantics.code_of(operand) + leaf.path)
    return leaf.phrase(), f"`{error}`" if error else "lax cannot trace it"


def _holds_module(value: object, depth: int = 0) -> bool:
    """The operand is an Equinox module, or a literal container with one inside: the rule
    is about modules (a bare function or constant in a carry is another mistake)."""
    kind = getattr(value, "kind", None)
    if kind == "module":
        return True
    if kind in _CONTAINERS and depth < 4:
        return any(_holds_module(element, depth + 1) for element in getattr(value, "elements", ()))
    return False


def _first_line(error: str) -> str:
    return error.strip().splitlines()[0][:160] if error.strip() else ""
