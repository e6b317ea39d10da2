"""EQX202: `jax.jit`/`eqx.filter_jit` of a new function object in every loop iteration."""

from __future__ import annotations

import ast
from typing import Iterator, Optional

import libcst as cst

from eqxlint.rules.base import Bad, Finding, Good, Rule
from eqxlint.rules.first_look import FirstLook, ast_dotted_name, walk
from eqxlint.semantics import Binding, CallSite, Semantics, argument, descendants

JITS = ("jax.jit", "equinox.filter_jit", "jax.pmap", "equinox.filter_pmap")
_JITS = frozenset(JITS)
# Transforms that return a new function object on every call: jitting their result
# misses JAX's cache (measured: `jax.jit(jax.grad(loss))` in a step traces every call;
# `eqx.filter_jit(eqx.filter_grad(loss))` does not, Equinox's wrappers compare equal). EQX204's.
FRESH_WRAPPERS = ("jax.grad", "jax.value_and_grad", "jax.vmap", "jax.jacfwd", "jax.jacrev",
                  "jax.hessian", "jax.checkpoint", "jax.remat")
_FRESH = frozenset(FRESH_WRAPPERS + ("functools.partial",))
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
        Bad("""
            import jax as j

            for batch in loader:
                try:
                    loss = j.jit(fun=lambda p: loss_fn(p, batch))(params)  # expect: EQX202
                except FloatingPointError:
                    break
        """, "an alias of jax, `fun=` by keyword, inside a try block of the loop"),
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
        """Only where a jit is made inside a loop: Python's `ast` must show a call that may
        be a jit (through the file's imports), inside a `for`/`while` of its own scope, given
        a lambda, a call or the name of a def inside a loop; or a def inside a loop with a
        decorator that may be a jit (see JitFacts). Without an `ast`: yes.

        Sound: those are the check's two shapes, loosened (every import of a name counts,
        any loop for the configuration loops it skips).
        """
        if not super().may_fire(source, look):
            return False
        facts = jit_facts(look or FirstLook(source))
        return facts is None or facts.in_loop

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


# -- the first look shared with EQX204 ---------------------------------------------------

_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
_PARTIAL = frozenset(("functools.partial",))


def may_name(node: ast.expr, imports: dict[str, set[str]], quals: "frozenset[str]") -> bool:
    """Could `Semantics.qualname(node)` be one of `quals`? It is the import of the dotted
    name's head (any of the file's imports of that name) joined to the rest."""
    dotted = ast_dotted_name(node)
    if dotted is None:
        return False
    head, _, rest = dotted.partition(".")
    return any((f"{full}.{rest}" if rest else full) in quals
               for full in imports.get(head, ()))


def _may_be_jit(func: ast.expr, imports: dict[str, set[str]]) -> bool:
    return may_name(func, imports, _JITS)


def _may_be_jit_decorator(expression: ast.expr, imports: dict[str, set[str]]) -> bool:
    """A superset of jit_of_decorator: a jit, a call of one, or a call given one."""
    if _may_be_jit(expression, imports):
        return True
    if not isinstance(expression, ast.Call):
        return False
    given = [a.value if isinstance(a, ast.Starred) else a for a in expression.args]
    return any(_may_be_jit(node, imports)
               for node in [expression.func, *given, *(k.value for k in expression.keywords)])


def _jitted(call: ast.Call) -> Optional[ast.expr]:
    """What `argument(call, 0, "fun")` reads: the first positional argument, or `fun=`."""
    positional = [a for a in call.args if not isinstance(a, ast.Starred)]
    if positional:
        return positional[0]
    return next((k.value for k in call.keywords if k.arg == "fun"), None)


def _scope_items(statements: list[ast.stmt], in_loop: bool = False
                 ) -> Iterator[tuple[ast.AST, bool, ast.stmt]]:
    """The parts of one scope, as the semantics' loops see them: each def and class statement
    (a scope of its own), and each expression root, with whether a `for`/`while` of this
    scope holds it (its header and `else` too) and the statement it belongs to."""
    for statement in statements:
        if isinstance(statement, (*_DEFS, ast.ClassDef)):
            yield statement, in_loop, statement
            continue
        inner = in_loop or isinstance(statement, _LOOPS)
        for value in vars(statement).values():
            if isinstance(value, ast.AST):
                yield value, inner, statement
            elif isinstance(value, list) and value:
                if isinstance(value[0], ast.stmt):
                    yield from _scope_items(value, inner)
                    continue
                for item in value:
                    if isinstance(item, (ast.excepthandler, ast.match_case)):
                        for part in vars(item).values():
                            if isinstance(part, ast.AST):
                                yield part, inner, statement
                            elif isinstance(part, list) and part and isinstance(part[0], ast.stmt):
                                yield from _scope_items(part, inner)
                    elif isinstance(item, ast.AST):
                        yield item, inner, statement


class JitFacts:
    """What EQX202 and EQX204 need proven, read once per file from Python's `ast`.

    `in_loop` (EQX202's two shapes): a jit of a lambda, of a `functools.partial` or of a
    name that some def inside a loop binds, called inside a loop of its own scope; or a
    def inside a loop with a decorator that may be a jit. `per_call` (EQX204's two shapes):
    a function that a loop calls by its name (or as `self.<name>`) makes, outside its own
    loops and neither returned nor stored, a jit of a lambda, of a partial or a wrapper of
    FRESH_WRAPPERS, or of a def of its own; or holds a def, not returned, whose decorator
    may be a jit. A jit is a call whose function may resolve to JITS through the file's
    imports (`j.jit` after `import jax as j`, `compile` after `from jax import jit as
    compile`), and so for partial and the wrappers (may_name)."""

    def __init__(self, tree: ast.Module, imports: dict[str, set[str]], source: bytes) -> None:
        self.imports = imports
        self.lines = source.split(b"\n")
        loop_defs: set[str] = set()
        jitted_names: set[str] = set()
        self.loop_calls: set[str] = set()
        self.in_loop = False
        functions: list[ast.AST] = []
        pending: list[list[ast.stmt]] = [tree.body]
        while pending:
            for node, in_loop, statement in _scope_items(pending.pop()):
                if isinstance(node, (*_DEFS, ast.ClassDef)):
                    pending.append(node.body)
                    if isinstance(node, _DEFS):
                        functions.append(node)
                        if in_loop:
                            loop_defs.add(node.name)
                            if any(_may_be_jit_decorator(d, imports) for d in node.decorator_list):
                                self.in_loop = True
                    continue
                if not in_loop:
                    continue
                for inner in walk(node):
                    if not isinstance(inner, ast.Call):
                        continue
                    func = inner.func
                    if isinstance(func, ast.Name):
                        self.loop_calls.add(func.id)
                    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                            and func.value.id == "self":
                        self.loop_calls.add(func.attr)
                    if not self.in_loop and _may_be_jit(func, imports):
                        target = _jitted(inner)
                        if isinstance(target, ast.Lambda) or isinstance(target, ast.Call) \
                                and may_name(target.func, imports, _PARTIAL):
                            self.in_loop = True
                        elif isinstance(target, ast.Name):
                            jitted_names.add(target.id)
        if jitted_names & loop_defs:
            self.in_loop = True
        self.per_call = any(function.name in self.loop_calls and self._makes_jit(function)
                            for function in functions)

    def _makes_jit(self, function: "ast.FunctionDef | ast.AsyncFunctionDef") -> bool:
        imports = self.imports
        own_defs: list["ast.FunctionDef | ast.AsyncFunctionDef"] = []
        calls: list[tuple[ast.Call, ast.stmt]] = []
        roots: list[tuple[ast.AST, bool, ast.stmt]] = [
            (node, False, function) for node in
            [*function.decorator_list, function.args, function.returns] if node is not None]
        for node, in_loop, statement in [*roots, *_scope_items(function.body)]:
            if isinstance(node, _DEFS):
                own_defs.append(node)
                if not in_loop and not _returned(function, node.name) and any(
                        _may_be_jit_decorator(d, imports) for d in node.decorator_list):
                    return True
                continue
            if in_loop or isinstance(node, ast.ClassDef):
                continue
            for inner in walk(node):
                if isinstance(inner, ast.Call) and _may_be_jit(inner.func, imports):
                    calls.append((inner, statement))
        names = {node.name for node in own_defs}
        for call, statement in calls:
            target = _jitted(call)
            if not (isinstance(target, ast.Lambda)
                    or isinstance(target, ast.Call) and may_name(target.func, imports, _FRESH)
                    or isinstance(target, ast.Name) and target.id in names):
                continue
            if not _kept(call, statement, function, self.lines):
                return True
        return False


def _returned(function: ast.AST, name: str) -> bool:
    """As EQX204's `_returned`: `return name`, alone or in a tuple, list or dict, anywhere."""
    for node in walk(function):
        if isinstance(node, ast.Return) and node.value is not None:
            value = node.value
            values = list(value.elts) if isinstance(value, (ast.Tuple, ast.List)) else \
                [v for v in value.values if v is not None] if isinstance(value, ast.Dict) \
                else [value]
            if any(isinstance(v, ast.Name) and v.id == name for v in values):
                return True
    return False


def _kept(call: ast.Call, statement: ast.stmt, function: ast.AST, lines: list[bytes]) -> bool:
    """A subset of EQX204's `_kept`: the jit is the value of a `return`, or of an assignment
    (first on its line, not after a backslash: the check reads an indented line of
    statements, not a one-line suite) to an attribute or subscript, or to a name the
    function returns."""
    if isinstance(statement, ast.Return):
        return statement.value is call
    if not isinstance(statement, (ast.Assign, ast.AnnAssign)) or statement.value is not call:
        return False
    row = statement.lineno - 1
    if not 0 <= row < len(lines) or lines[row][:statement.col_offset].strip(b" \t") \
            or (row > 0 and lines[row - 1].rstrip(b" \t").endswith(b"\\")):
        return False
    targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
    return any(not isinstance(t, ast.Name) or _returned(function, t.id) for t in targets)


def jit_facts(look: FirstLook) -> Optional[JitFacts]:
    """The file's JitFacts, built once for both rules; None without an `ast`."""
    imports = look.import_bindings()
    if imports is None:
        return None
    return look.memo("jit-facts", lambda tree: JitFacts(tree, imports, look.source))
