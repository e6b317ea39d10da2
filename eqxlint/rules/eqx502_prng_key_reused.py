"""EQX502: the same PRNG key given to two random consumers in straight-line code."""

from __future__ import annotations

import ast
import re
from collections import Counter
from typing import Iterator, Optional

import libcst as cst

from eqxlint.rules.base import Bad, Finding, Good, Rule
from eqxlint.semantics import CallSite, Semantics, keyword_arg, positional_args

# jax.random functions that do not consume randomness: they make or derive keys.
KEY_PLUMBING = {"split", "fold_in", "PRNGKey", "key", "key_data", "wrap_key_data", "clone",
                "key_impl", "default_prng_impl", "threefry_2x32", "threefry2x32_p"}


# jax.random's sampling functions, to find what a key is passed to without parsing.
SAMPLERS = (b"normal|uniform|bernoulli|categorical|randint|permutation|choice|"
            b"truncated_normal|gumbel|exponential|gamma|loggamma|beta|dirichlet|"
            b"multivariate_normal|laplace|logistic|poisson|rademacher|ball|orthogonal|cauchy|"
            b"weibull_min|maxwell|pareto|double_sided_maxwell|generalized_normal|t|chisquare|"
            b"f|geometric|binomial|multinomial|lognormal|triangular|wald|bits")
_CONSUMED_NAME = re.compile(rb"(?:\b(?:" + SAMPLERS + rb")\s*\(\s*|\bkey\s*=\s*)"
                            rb"([A-Za-z_]\w*)\b(?!\s*[\[.(])")
# `from jax.random import normal as n`: a consumer the first look would not recognise.
_RENAMED_IMPORT = re.compile(rb"from\s+(?:jax\.random|jax|equinox\.nn|equinox)\s+import\s+"
                             rb"[^\n]*\bas\b")


class PrngKeyReused(Rule):
    code = "EQX502"
    name = "prng-key-reused"
    summary = "The same PRNG key given to two random consumers without a split"
    triggers = ((b"random", b"equinox"), (b"key",))
    what_it_does = """
        Checks for one key (a plain name) passed to two random consumers in straight-line
        code: both calls in the same block of statements, with no rebinding of the key
        between them. Consumers are the sampling functions of `jax.random` (`normal`,
        `uniform`, `bernoulli`, `permutation`, ...; not `split` or `fold_in`) and the
        `equinox.nn` layers built with `key=`.
    """
    why_bad = """
        A JAX key is not a generator: the same key gives the same numbers. Two layers
        initialised with one key get identical (or correlated) weights; two samples drawn
        with one key are equal. Nothing fails: the model trains worse, or the data is
        not random.
    """
    example = """
        w = jax.random.normal(key, (3, 3))
        b = jax.random.normal(key, (3,))
    """
    use_instead = """
        w_key, b_key = jax.random.split(key)
        w = jax.random.normal(w_key, (3, 3))
        b = jax.random.normal(b_key, (3,))
    """
    fix_safety = "No automatic fix: the split and its names are the author's choice."
    runtime = "None: this rule is static only."
    real_error = "(none: the numbers are silently identical)"
    known_limits = """
        Only straight-line code: two consumers in different branches, loop iterations or
        functions are not compared (reusing a key across loop iterations is not
        reported). Keys held in attributes or containers are not followed.
    """

    bad_examples = (
        Bad("""
            import jax

            key = jax.random.PRNGKey(0)
            w = jax.random.normal(key, (3, 3))
            b = jax.random.normal(key, (3,))  # expect: EQX502
        """, "the headline case"),
        Bad("""
            import equinox as eqx

            def make(key):
                encoder = eqx.nn.Linear(8, 4, key=key)
                decoder = eqx.nn.Linear(4, 8, key=key)  # expect: EQX502
                return encoder, decoder
        """, "two layers, one key: identical initialisation"),
        Bad("""
            import jax.random as jr

            def sample(key, n):
                noise = jr.uniform(key, (n,))
                mask = jr.bernoulli(key, 0.5, (n,))  # expect: EQX502
                return noise * mask
        """, "jax.random imported as jr"),
        Bad("""
            from jax import random

            def augment(key, x):
                x = x + random.normal(key, x.shape)
                perm = random.permutation(key, x.shape[0])  # expect: EQX502
                return x[perm]
        """, "from jax import random"),
        Bad("""
            import jax

            def pair(key):
                return jax.random.normal(key, (2,)), jax.random.normal(key, (2,))  # expect: EQX502
        """, "in one statement"),
        Bad("""
            import jax
            import equinox as eqx

            class Net(eqx.Module):
                a: eqx.nn.Linear
                b: eqx.nn.Linear

                def __init__(self, key):
                    self.a = eqx.nn.Linear(2, 2, key=key)
                    scale = 1.0
                    self.b = eqx.nn.Linear(2, 2, key=key)  # expect: EQX502
        """, "a module's __init__"),
    )
    good_examples = (
        Good("""
            import jax

            key = jax.random.PRNGKey(0)
            w_key, b_key = jax.random.split(key)
            w = jax.random.normal(w_key, (3, 3))
            b = jax.random.normal(b_key, (3,))
        """, "split first"),
        Good("""
            import jax

            w = jax.random.normal(key, (3,))
            key, subkey = jax.random.split(key)
            b = jax.random.normal(subkey, (3,))
        """, "rebound between"),
        Good("""
            import jax

            sub = jax.random.split(key)
            more = jax.random.fold_in(key, 1)
            x = jax.random.normal(key, (2,))
        """, "split and fold_in do not consume"),
        Good("""
            import jax

            if training:
                x = jax.random.normal(key, (2,))
            else:
                x = jax.random.uniform(key, (2,))
        """, "different branches"),
        Good("""
            import jax

            x = jax.random.normal(key, (2,))
            for i in range(3):
                y = jax.random.normal(key, (2,))
        """, "different blocks (a loop is not straight-line code)"),
        Good("""
            import jax

            def f(key):
                return jax.random.normal(key, (2,))

            def g(key):
                return jax.random.normal(key, (2,))
        """, "different functions, different keys"),
        Good("""
            import equinox as eqx

            keys = jax.random.split(key, 2)
            a = eqx.nn.Linear(2, 2, key=keys[0])
            b = eqx.nn.Linear(2, 2, key=keys[1])
        """, "indexed keys are not followed"),
        Good("""
            import jax

            x = jax.random.normal(key, (2,))
            y = model(x, key=key)
        """, "a function of the user's: not known to consume"),
        Good("""
            import jax

            x = jax.random.normal(key, (2,))
            key = jax.random.PRNGKey(1)
            y = jax.random.normal(key, (2,))
        """, "a new key"),
    )

    @classmethod
    def may_fire(cls, source: bytes) -> bool:
        """A cheap first look: is one name given to two consumers in one block?

        Sound: consumers are jax.random samplers, called by their own name (any module
        alias in front), and layers (capitalised) given `key=`; the check reports only
        pairs in one
        block of simple statements. First a text screen (a name consumed twice in the
        file), then Python's own parser (`ast`, many times cheaper than libcst) looks
        at the statements those matches fall in, for two consumptions of one name in
        one block with no assignment to it between them.
        A file `ast` cannot parse, or that imports a function or layer under another
        name, goes to the full check.
        """
        if not super().may_fire(source):
            return False
        if _RENAMED_IMPORT.search(source):
            return True
        counts = Counter(_CONSUMED_NAME.findall(source))
        if not any(count > 1 for count in counts.values()):
            return False
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return True
        return _block_with_reused_name(source, tree)

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        seen: dict[tuple[int, int, str], CallSite] = {}
        for site in semantics.calls:
            key = _consumed_key(semantics, site)
            if key is None or site.block is None:
                continue
            where = (id(site.block), id(site.scope), key)
            earlier = seen.get(where)
            seen[where] = site
            if earlier is None:
                continue
            rebinds = site.scope.bindings.get(key, [])
            if any(earlier.seq < b.seq < site.seq for b in rebinds):
                continue
            yield Finding(
                node=site.node,
                message=(f"`{key}` was already used by an earlier random call in this block "
                         f"and has not been split since: both draw the same numbers"),
                hint=f"Split it first: `{key}, subkey = jax.random.split({key})`, and use each "
                     f"key once",
            )


def _consumed_key(semantics: Semantics, site: CallSite) -> Optional[str]:
    qual = site.qualname or ""
    if qual.startswith("jax.random."):
        if qual.rsplit(".", 1)[1] in KEY_PLUMBING:
            return None
        args = positional_args(site.node)
        key = args[0] if args else keyword_arg(site.node, "key")
    elif qual.startswith("equinox.nn.") and qual.count(".") == 2 and qual[11:12].isupper():
        key = keyword_arg(site.node, "key")
    else:
        return None
    return key.value if isinstance(key, cst.Name) else None


def _block_with_reused_name(source: bytes, tree: ast.AST) -> bool:
    """Some block gives one name to two consumers with no assignment to it in between.

    The text matches point at statements; `ast` says which calls there consume which
    name (a sampler of jax.random by attribute or imported name, an `equinox.nn`
    layer given `key=`). Only assignments by simple statements of the same block
    count as "in between" (the check counts more, so this never hides a finding).
    """
    lines = {source.count(b"\n", 0, match.start()) + 1
             for match in _CONSUMED_NAME.finditer(source)}
    placed, assigned, statements = _simple_statements(tree)
    samplers = _imported_from(source, "jax.random")
    layers = _imported_from(source, "equinox.nn")
    nn_aliases = _equinox_nn_aliases(source)
    uses: dict[tuple[int, str], list[int]] = {}  # (block, name) -> statement positions
    for place in sorted({placed[line] for line in lines if line in placed}):
        block, position = place
        for name in _consumed_names(statements[place], samplers, layers, nn_aliases):
            uses.setdefault((block, name), []).append(position)
    for (block, name), positions in uses.items():
        for first, second in zip(positions, positions[1:]):
            if not any(first <= where < second for where in assigned.get((block, name), [])):
                return True
    return False


_SAMPLER_NAMES = set(SAMPLERS.decode().split("|"))


_FROM_IMPORT = re.compile(rb"from\s+([\w.]+)\s+import\s+(\([^)]*\)|[^\n]*)")
_NN_MODULE_ALIAS = re.compile(rb"import\s+equinox\.nn\s+as\s+(\w+)")


def _imported_from(source: bytes, module: str) -> set[str]:
    """Local names of what `from module import ...` brings in (read from the text)."""
    names: set[str] = set()
    for match in _FROM_IMPORT.finditer(source):
        if match.group(1).decode() != module:
            continue
        listed = match.group(2).split(b"#", 1)[0].strip(b"() \t\r\n")
        for part in listed.replace(b"\\", b" ").split(b","):
            tokens = part.split()
            if tokens:
                local = tokens[2] if len(tokens) >= 3 and tokens[1] == b"as" else tokens[0]
                names.add(local.decode("utf-8", "replace"))
    return names


def _equinox_nn_aliases(source: bytes) -> set[str]:
    """Names the file gives the equinox.nn module itself (`import equinox.nn as layers`)."""
    aliases = {name for name in _imported_from(source, "equinox") if name == "nn"}
    return aliases | {m.decode() for m in _NN_MODULE_ALIAS.findall(source)}


def _is_layer(func: ast.expr, layers: set[str], nn_aliases: set[str]) -> bool:
    """A call of an `equinox.nn` class: `eqx.nn.Linear`, `nn.Linear`, or an imported name."""
    if isinstance(func, ast.Name):
        return func.id in layers
    if not isinstance(func, ast.Attribute) or not func.attr[:1].isupper():
        return False
    base = func.value
    return isinstance(base, ast.Attribute) and base.attr == "nn" or \
        isinstance(base, ast.Name) and (base.id in nn_aliases or base.id == "nn")


def _consumed_names(statement: ast.stmt, bare_samplers: set[str], layers: set[str],
                    nn_aliases: set[str]) -> list[str]:
    """Names given as keys to consumers in one statement (counted once each)."""
    names: list[str] = []
    for node in ast.walk(statement):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _SAMPLER_NAMES \
                or isinstance(func, ast.Name) and func.id in bare_samplers:
            if node.args and isinstance(node.args[0], ast.Name):
                names.append(node.args[0].id)
            continue
        if _is_layer(func, layers, nn_aliases):
            names += [k.value.id for k in node.keywords
                      if k.arg == "key" and isinstance(k.value, ast.Name)]
    return names


def _simple_statements(tree: ast.AST
                       ) -> tuple[dict[int, tuple[int, int]], dict[tuple[int, str], list[int]],
                                  dict[tuple[int, int], ast.stmt]]:
    """Line -> (block id, position) of its simple statement (docstrings left out);
    (block, name) -> positions of that block's simple statements assigning the name;
    (block, position) -> the statement."""
    placed: dict[int, tuple[int, int]] = {}
    assigned: dict[tuple[int, str], list[int]] = {}
    statements: dict[tuple[int, int], ast.stmt] = {}
    pending: list[list[ast.stmt]] = [tree.body] if isinstance(tree, ast.Module) else []
    while pending:
        block = pending.pop()
        for position, statement in enumerate(block):
            nested = [getattr(statement, field) for field in ("body", "orelse", "finalbody")
                      if isinstance(getattr(statement, field, None), list)]
            nested += [handler.body for handler in getattr(statement, "handlers", [])]
            nested += [case.body for case in getattr(statement, "cases", [])]
            if nested:
                pending.extend(nested)
                continue
            if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                continue  # a docstring: calls written in it are text
            statements[(id(block), position)] = statement
            end = getattr(statement, "end_lineno", None) or statement.lineno
            for row in range(statement.lineno, end + 1):
                placed[row] = (id(block), position)
            for name in _assigned_names(statement):
                assigned.setdefault((id(block), name), []).append(position)
    return placed, assigned, statements


def _assigned_names(statement: ast.stmt) -> list[str]:
    targets: list[ast.expr] = []
    if isinstance(statement, ast.Assign):
        targets = list(statement.targets)
    elif isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
        targets = [statement.target]
    names = []
    while targets:
        target = targets.pop()
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            targets.extend(target.elts)
        elif isinstance(target, ast.Starred):
            targets.append(target.value)
    return names
