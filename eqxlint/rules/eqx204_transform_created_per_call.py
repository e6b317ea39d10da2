"""EQX204: `jax.jit`/`eqx.filter_jit` of a function made anew inside a function a loop calls."""

from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from eqxlint.rules.base import Bad, Finding, Good, Rule
from eqxlint.rules.eqx202_transform_created_in_loop import (FRESH_WRAPPERS, JITS,
                                                             jit_decorated_defs, jit_facts,
                                                             jit_of_decorator)
from eqxlint.rules.first_look import FirstLook
from eqxlint.semantics import CallSite, Scope, Semantics, argument, descendants, dotted_name

CACHES = ("functools.lru_cache", "functools.cache")


class TransformCreatedPerCall(Rule):
    code = "EQX204"
    name = "transform-created-per-call"
    summary = "`jax.jit`/`eqx.filter_jit` of a function made anew in a function a loop calls"
    triggers = ((b"jit", b"pmap"), (b"for ", b"while "), (b"def ",))
    what_it_does = """
        Checks for `jax.jit(...)` / `eqx.filter_jit(...)` (and `pmap`), called or used as
        a decorator, inside a function that a loop of this file calls, on a function
        object that each call makes anew: a `lambda`, a `functools.partial(...)`, a
        `def` inside the function, or the result of `jax.grad` / `jax.value_and_grad` /
        `jax.vmap`. A loop calling the function is what shows that it runs once per step
        (a train step, a per-episode update).
    """
    why_bad = """
        JAX caches compiled code by the function object. A function created inside the
        step is a new object every call: every step traces and compiles again, the same
        cost as compiling inside the loop (EQX202), one level up. Nothing fails;
        training is many times slower, and the compile cache can grow until the
        process runs out of resources.
    """
    example = """
        def train_step(model, x, y):
            @eqx.filter_jit
            def loss_fn(model):
                return jax.numpy.mean((jax.vmap(model)(x) - y) ** 2)
            return loss_fn(model)

        for x, y in batches:
            loss = train_step(model, x, y)
    """
    use_instead = """
        @eqx.filter_jit
        def loss_fn(model, x, y):
            return jax.numpy.mean((jax.vmap(model)(x) - y) ** 2)

        def train_step(model, x, y):
            return loss_fn(model, x, y)

        for x, y in batches:
            loss = train_step(model, x, y)
    """
    fix_safety = "No automatic fix: moving a function out needs its free variables passed in."
    runtime = "None: this rule is static only."
    real_error = """
        None: each call compiles again. Measured (jax 0.10.2, equinox 0.13.8), five
        calls of a step with `x = jnp.ones(3)`: `jax.jit(lambda v: loss(v))(x)` traced
        `loss` 5 times (0.84 s); `@eqx.filter_jit` on a def inside the step, 5 times
        (1.66 s); `jax.jit(functools.partial(loss))(x)`, 5 times; `jax.jit(jax.grad(loss))(x)`,
        5 times; `jax.jit(loss)(x)` of the module-level `loss`, once (0.21 s), as did
        `eqx.filter_jit(eqx.filter_grad(loss))(x)` (0.22 s).
    """
    known_limits = """
        The loop must call the function by its name (a module-level function, or
        `self.method(...)` inside its class) in the same file. Quiet when the function
        itself is compiled (decorated with or passed to a jit: the inner jit is traced
        once with it), cached (`functools.lru_cache`), or when the created function is
        returned or stored (`self.step = jax.jit(...)`): a factory runs once.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx
            import jax

            def train(optim, opt_state, params, obs, actions, rewards):
                @eqx.filter_jit  # expect: EQX204
                def loss_fn(model, states, rewards, actions):
                    logits = jax.vmap(model)(states)
                    return policy_gradient_loss(logits, actions, rewards)

                loss, grads = eqx.filter_value_and_grad(loss_fn)(params, obs, rewards, actions)
                return loss, grads

            for episode in range(1000):
                obs, actions, rewards = rollout(env, params)
                loss, grads = train(optim, opt_state, params, obs, actions, rewards)
        """, "the per-episode train() of an upstream report (equinox #307)"),
        Bad("""
            import jax

            def step(params, batch):
                loss = jax.jit(lambda p: loss_fn(p, batch))(params)  # expect: EQX204
                return loss

            for batch in loader:
                print(step(params, batch))
        """, "a lambda closing over the batch"),
        Bad("""
            import functools
            import jax

            def evaluate(params, x, temperature):
                apply = jax.jit(functools.partial(forward, temperature=temperature))  # expect: EQX204
                return apply(params, x)

            while True:
                score = evaluate(params, next(data), 0.5)
        """, "functools.partial, a while loop"),
        Bad("""
            import jax

            def make_step(params, x, y):
                grads = jax.jit(jax.grad(loss))(params, x, y)  # expect: EQX204
                return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

            for i in range(100):
                params = make_step(params, x, y)
        """, "jax.grad makes a new function each call"),
        Bad("""
            import equinox as eqx

            class Trainer:
                def step(self, model, batch):
                    def inner(model, batch):
                        return self.loss(model, batch)
                    return eqx.filter_jit(inner)(model, batch)  # expect: EQX204

                def fit(self, model, batches):
                    for batch in batches:
                        loss = self.step(model, batch)
        """, "a method the class's own loop calls"),
        Bad("""
            from functools import partial
            import jax

            def rollout(policy, env_state, key):
                @partial(jax.jit, static_argnums=1)  # expect: EQX204
                def act(obs, greedy):
                    return policy(obs, greedy)
                return act(env_state.obs, False)

            for t in range(500):
                action = rollout(policy, env_state, key)
        """, "a decorator through functools.partial"),
        Bad("""
            from jax import jit as compile

            class Trainer:
                def step(self, params, batch):
                    with self.mesh:
                        apply = compile(lambda p: self.loss(p, batch))  # expect: EQX204
                        return apply(params)

                def fit(self, params):
                    for batch in self.batches:
                        self.step(params, batch)
        """, "jax.jit imported under another name, inside a with block of a method"),
    )
    good_examples = (
        Good("""
            import equinox as eqx

            @eqx.filter_jit
            def loss_fn(model, x, y):
                return ((model(x) - y) ** 2).mean()

            def train_step(model, x, y):
                return loss_fn(model, x, y)

            for x, y in batches:
                train_step(model, x, y)
        """, "compiled once, at module level"),
        Good("""
            import jax

            def make_step(lr):
                return jax.jit(lambda p, g: p - lr * g)

            for lr in rates:
                step = make_step(lr)
        """, "a factory: the compiled function is returned"),
        Good("""
            from jax import jit as compile

            def make_step(lr):
                step = compile(lambda p, g: p - lr * g)
                return step

            for lr in rates:
                steps.append(make_step(lr))
        """, "a factory through a name it returns, jit imported under another name"),
        Good("""
            import jax

            def make_step(lr):
                @jax.jit
                def step(p, g):
                    return p - lr * g
                return step

            for lr in rates:
                step = make_step(lr)
        """, "a factory returning the decorated def"),
        Good("""
            import equinox as eqx

            class Trainer:
                def __init__(self, loss):
                    self.step = eqx.filter_jit(lambda m, b: loss(m, b))

                def fit(self, model, batches):
                    for batch in batches:
                        self.step(model, batch)
        """, "created once in __init__ and stored"),
        Good("""
            import jax

            def step(params, batch):
                return jax.jit(lambda p: loss_fn(p, batch))(params)

            step(params, batch)
        """, "no loop calls it"),
        Good("""
            import equinox as eqx

            @eqx.filter_jit
            def train_step(model, batch):
                inner = eqx.filter_jit(lambda m: loss(m, batch))
                return inner(model)

            for batch in batches:
                train_step(model, batch)
        """, "the outer function is compiled: the inner jit is traced once with it"),
        Good("""
            import equinox as eqx

            def train_step(model, x, y):
                return eqx.filter_jit(eqx.filter_grad(loss))(model, x, y)

            for x, y in batches:
                train_step(model, x, y)
        """, "Equinox's filter_grad wrapper compares equal: cached (measured)"),
        Good("""
            import jax

            def step(params, batch):
                return jax.jit(loss_fn)(params, batch)

            for batch in loader:
                step(params, batch)
        """, "a module-level function: JAX's cache is keyed on it"),
        Good("""
            import functools
            import jax

            @functools.lru_cache(maxsize=None)
            def compiled(n):
                return jax.jit(lambda x: x * n)

            def step(x, n):
                return jax.jit(lambda v: v)(x)

            for n in range(4):
                compiled(n)
        """, "a cached factory, and a step no loop calls"),
        Good("""
            import jax

            def step(params, batch):
                apply = jax.vmap(lambda x: forward(params, x))
                return apply(batch)

            for batch in loader:
                step(params, batch)
        """, "vmap alone compiles nothing"),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Only where a function that a loop calls makes a jit each call: Python's `ast` must
        show a loop calling a name (or `self.<name>`) that names a def which, outside its own
        loops, calls what may be a jit (through the file's imports) on a lambda, a call or a
        def of its own, without returning or storing the result; or holds a def, not
        returned, whose decorator may be a jit (see JitFacts). Without an `ast`: yes.

        Sound: those are the check's shapes, loosened (every import of a name counts, a
        name for the defs a loop calls; the compiled or cached functions the check skips
        are not skipped).
        """
        if not super().may_fire(source, look):
            return False
        facts = jit_facts(look or FirstLook(source))
        return facts is None or facts.per_call

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        per_step = called_in_loops(semantics)
        if not per_step:
            return
        for site in semantics.calls:
            if site.qualname not in JITS or site.loops:
                continue
            function = _enclosing_function(site.scope)
            if function is None or id(function.node) not in per_step:
                continue
            target = argument(site.node, 0, "fun")
            if target is None:
                continue
            made = _made_each_call(semantics, site, target, function)
            if made is None or _kept(semantics, site, function) or \
                    _compiled_or_cached(semantics, function):
                continue
            yield _finding(target, site.qualname, made, function, site.node)
        for node, decorator, transform, binding in jit_decorated_defs(semantics):
            function = _enclosing_function(semantics.scope_of_node[id(node)].parent)
            if function is None or id(function.node) not in per_step:
                continue
            if binding.loops or _returned(function.node, node.name.value) \
                    or _compiled_or_cached(semantics, function):
                continue
            yield _finding(decorator, transform, f"`{node.name.value}`, a def", function, None)


def _finding(node: cst.CSTNode, transform: str, made: str, function: Scope,
             anchor: Optional[cst.Call]) -> Finding:
    spelled = transform.replace("equinox.", "eqx.")
    name = function.node.name.value if isinstance(function.node, cst.FunctionDef) else "it"
    return Finding(
        node=node,
        message=(f"`{spelled}` of {made} created inside `{name}`, which a loop calls each "
                 f"step: every call makes a new function, so every step traces and compiles "
                 f"again"),
        hint=f"Compile it once, outside `{name}`: define it at module level (passing what it "
             f"closes over as arguments) and jit that",
        anchor=anchor,
    )


def _enclosing_function(scope: Optional[Scope]) -> Optional[Scope]:
    while scope is not None and scope.kind == "comprehension":
        scope = scope.parent
    if scope is None or scope.kind != "function":
        return None
    return scope


def called_in_loops(semantics: Semantics) -> set[int]:
    """ids of the defs that a loop of this file calls by name (or as `self.m(...)`)."""
    defs: set[int] = set()
    by_name_node: Optional[dict[int, cst.FunctionDef]] = None
    for site in semantics.calls:
        if not site.loops:
            continue
        func = site.node.func
        if isinstance(func, cst.Name):
            binding = semantics.lookup(func.value, site.scope, site.seq)
            if binding is None or binding.definition != "function":
                continue
            if by_name_node is None:
                by_name_node = {id(scope.node.name): scope.node
                                for scope in semantics.scope_of_node.values()
                                if isinstance(scope.node, cst.FunctionDef)}
            definition = by_name_node.get(id(binding.target))
            if definition is not None:
                defs.add(id(definition))
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) \
                and func.value.value == "self":
            method_scope: Optional[Scope] = site.scope
            while method_scope is not None and method_scope.method_of is None:
                method_scope = method_scope.parent
            if method_scope is None or method_scope.method_of is None:
                continue
            for statement in method_scope.method_of.node.body.body:
                if isinstance(statement, cst.FunctionDef) and \
                        statement.name.value == func.attr.value:
                    defs.add(id(statement))
    return defs


def _made_each_call(semantics: Semantics, site: CallSite, target: cst.BaseExpression,
                    function: Scope) -> Optional[str]:
    if isinstance(target, cst.Lambda):
        return "a lambda"
    if isinstance(target, cst.Call):
        qual = semantics.qualname(target.func)
        if qual == "functools.partial":
            return "a `functools.partial`"
        if qual in FRESH_WRAPPERS:
            return f"`{qual}(...)`"
        return None
    if isinstance(target, cst.Name):
        binding = semantics.lookup(target.value, site.scope, site.seq)
        if binding is not None and binding.definition == "function" and \
                semantics.scope_of_node.get(id(binding.target)) is function:
            return f"`{target.value}`, a def"
    return None


def _kept(semantics: Semantics, site: CallSite, function: Scope) -> bool:
    """The compiled function is returned or stored (`return jax.jit(f)`, `self.step = ...`)."""
    parent = site.parent
    if isinstance(parent, cst.Return):
        return True
    line = site.line
    if not isinstance(line, cst.SimpleStatementLine):
        return False
    for statement in line.body:
        if isinstance(statement, cst.Return):
            return statement.value is site.node
        if isinstance(statement, (cst.Assign, cst.AnnAssign)) and statement.value is site.node:
            targets = [t.target for t in statement.targets] if isinstance(statement, cst.Assign) \
                else [statement.target]
            for target in targets:
                if not isinstance(target, cst.Name):
                    return True  # an attribute or a subscript: stored somewhere
                if _returned(function.node, target.value):
                    return True
    return False


def _returned(function: cst.CSTNode, name: str) -> bool:
    """`return name` (alone or in a tuple/list/dict): the function object leaves, uncalled."""
    for statement in descendants(function, cst.Return):
        value = statement.value
        values = [value] if value is not None else []
        if isinstance(value, (cst.Tuple, cst.List)):
            values = [element.value for element in value.elements]
        elif isinstance(value, cst.Dict):
            values = [element.value for element in value.elements
                      if isinstance(element, cst.DictElement)]
        if any(isinstance(v, cst.Name) and v.value == name for v in values):
            return True
    return False


def _compiled_or_cached(semantics: Semantics, function: Scope) -> bool:
    node = function.node
    if not isinstance(node, cst.FunctionDef):
        return True
    for decorator in node.decorators:
        expression = decorator.decorator
        if jit_of_decorator(semantics, expression) is not None:
            return True
        called = expression.func if isinstance(expression, cst.Call) else expression
        if semantics.qualname(called) in CACHES:
            return True
    name = node.name.value
    for site in semantics.calls:
        if site.qualname in JITS:
            target = argument(site.node, 0, "fun")
            if target is not None and dotted_name(target) in (name, f"self.{name}"):
                return True
    return False
