"""EQX502: one PRNG key giving randomness twice: two draws, a reused parent, a loop that
never advances its key. Quiet where the reuse is the point."""

from __future__ import annotations

import ast
import bisect
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterator, Optional, Union

import libcst as cst

from eqxlint.rules.base import Bad, Finding, FirstLook, Good, Rule
from eqxlint.semantics import (CallSite, Scope, Semantics, descendants, dotted_name,
                               keyword_arg, positional_args)

# jax.random functions that do not consume randomness: they make or derive keys.
KEY_PLUMBING = {"split", "fold_in", "PRNGKey", "key", "key_data", "wrap_key_data", "clone",
                "key_impl", "default_prng_impl", "threefry_2x32", "threefry2x32_p"}


# jax.random's sampling functions, to find what a key is passed to without parsing.
SAMPLERS = (b"normal|uniform|bernoulli|categorical|randint|permutation|choice|"
            b"truncated_normal|gumbel|exponential|gamma|loggamma|beta|dirichlet|"
            b"multivariate_normal|laplace|logistic|poisson|rademacher|ball|orthogonal|cauchy|"
            b"weibull_min|maxwell|pareto|double_sided_maxwell|generalized_normal|t|chisquare|"
            b"f|geometric|binomial|multinomial|lognormal|triangular|wald|bits")
_CONSUMED_NAME = re.compile(rb"(?:\b(?:" + SAMPLERS + rb"|split|fold_in)\s*\(\s*|\bkey\s*=\s*)"
                            rb"([A-Za-z_]\w*)\b(?!\s*[\[.(])")
# `from jax.random import normal as n`: a consumer the first look would not recognise.
_LOOP = re.compile(rb"^[ \t]*(?:for|while)\b", re.MULTILINE)
_RENAMED_IMPORT = re.compile(rb"from\s+(?:jax\.random|jax|equinox\.nn|equinox)\s+import\s+"
                             rb"[^\n]*\bas\b")


class PrngKeyReused(Rule):
    code = "EQX502"
    name = "prng-key-reused"
    summary = "One PRNG key drawn from twice, used after its split, or never advanced in a loop"
    triggers = ((b"random", b"equinox"), (b"key",))
    what_it_does = """
        Checks for one key (a plain name) that gives randomness twice where the two
        results are meant to be independent:
        - two random consumers in straight-line code (both calls in one block of
          statements, no rebinding of the key between them). Consumers are the sampling
          functions of `jax.random` (`normal`, `uniform`, `bernoulli`, `permutation`,
          ...) and the `equinox.nn` layers built with `key=`;
        - a key used again after it was split (`k1, k2 = jr.split(key)`, then
          `jr.normal(key, ...)` or a second `jr.split(key)`);
        - a draw, or a `split`, inside a `for`/`while` loop from a key that the loop
          never rebinds: every iteration gets the same numbers
          (`for epoch in range(n): sub, _ = jr.split(key)`).

        It stays quiet where the reuse is the point, as real code does it: the paired
        shuffle (`permutation`/`shuffle`/`choice` with one key on arrays that must stay
        aligned), two results that are then compared (`allclose`, `tree_equal`, `==` in
        an `assert`: tests build equal objects on purpose), a value drawn again into the
        same name before it was read (a shape smoke test), two layers tied by
        `eqx.nn.Shared`, code under `if False:`/`if None:`, and draws in different
        notebook cells: cells run one at a time, in the order and as often as the reader
        chooses, and tutorials put markdown between them to show reuse on purpose, so
        each cell is its own block.
    """
    why_bad = """
        A JAX key is not a generator: the same key gives the same numbers. Two layers
        initialised with one key get identical (or correlated) weights; two samples drawn
        with one key are equal; a loop that never advances its key shuffles the data the
        same way every epoch. Nothing fails: the model trains worse, or the data is not
        random.
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
    real_error = """
        None: the numbers are silently the same. Measured (jax 0.10.2, equinox 0.13.8):
        two `eqx.nn.Linear(4, 4, key=key)` have equal weights
        (`jnp.array_equal(a.weight, b.weight)` is `True`); the weights of
        `eqx.nn.Conv2d(1, 4, 2, key=key)` and `eqx.nn.Linear(4, 4, key=key)` have
        correlation `1.0` (the same uniform numbers, scaled); `jr.normal(key, (3,))` is
        the first three numbers of `jr.normal(key, (5,))`; splitting one key twice gives
        the same two keys; and `for epoch in range(2): sub, _ = jr.split(key)` followed
        by `jr.permutation(sub, 5)` gives `[0 2 4 1 3]` in both epochs.
    """
    known_limits = """
        Pairs are compared only in straight-line code: two consumers in different
        branches or functions are not compared. Keys held in attributes or containers
        (`self.key`, `keys[0]`) are not followed, nor keys passed to the user's own
        functions. In a loop, a draw whose arguments mention a name the loop binds (a
        shape that changes, `fold_in(key, step)`) or that sits under an `if` on the
        iteration is taken to differ between iterations. Only loops of steps are
        checked (`while`, `for ... in range(...)`, `trange`, `tqdm(range(...))`): a walk
        over configurations or datasets may reuse one seed for each on purpose, and a
        walk over batches usually draws with the batch's shape. Comprehensions are not
        loops here.
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
        """, "from jax import random; a shuffle and a draw are not a paired shuffle"),
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
        Bad("""
            import equinox as eqx

            class DummyModel(eqx.Module):
                lift: eqx.nn.Conv2d
                project: eqx.nn.Conv2d

                def __init__(self, channels, *, key):
                    self.lift = eqx.nn.Conv2d(1, channels, 1, key=key)
                    self.project = eqx.nn.Conv2d(channels, 1, 1, key=key)  # expect: EQX502
        """, "lift and projection layers from one key (real code)"),
        Bad("""
            import jax.random as jr
            import equinox as eqx

            key = jr.PRNGKey(0)
            model = eqx.nn.MLP(2, 2, 64, 2, key=key)
            y0 = jr.normal(key, (128, 2))  # expect: EQX502
        """, "the model and the data from one key (real code)"),
        Bad("""
            import jax.random as jr

            def init_carry(hidden_size, hidden_key):
                initial_hidden = jr.normal(hidden_key, (hidden_size,))
                initial_cell = jr.normal(hidden_key, (hidden_size,))  # expect: EQX502
                return initial_hidden, initial_cell
        """, "hidden and cell states drawn equal (real code)"),
        Bad("""
            import jax.numpy as jnp
            import jax.random as jr

            def train(data, key, n_epochs):
                for epoch in range(n_epochs):
                    shuffle_key, _ = jr.split(key)  # expect: EQX502
                    perm = jr.permutation(shuffle_key, len(data))
                    for batch in jnp.array_split(data[perm], 10):
                        step(batch)
        """, "a loop that never advances its key: the same shuffle every epoch"),
        Bad("""
            import jax.random as jr

            def fit(model, x, key, steps):
                for step in range(steps):
                    noise = jr.normal(key, x.shape)  # expect: EQX502
                    model = update(model, x + noise)
                return model
        """, "a draw inside a loop from a loop-invariant key: the same noise every step"),
        Bad("""
            import equinox as eqx

            class Tower(eqx.Module):
                layers: list

                def __init__(self, width, depth, key):
                    self.layers = []
                    for _ in range(depth):
                        self.layers.append(eqx.nn.Linear(width, width, key=key))  # expect: EQX502
        """, "layers built in a loop from one key: all identical"),
        Bad("""
            import jax
            import jax.random as jr

            def train(net, dataset, key, num_train_steps):
                compute = jax.jit(jax.value_and_grad(loss))
                for idx in range(num_train_steps):
                    (key_idx,) = jr.split(key, 1)  # expect: EQX502
                    loss, grads = compute(net, dataset[idx % len(dataset)], key_idx)
        """, "the same step key every step (real code)"),
        Bad("""
            import jax.random as jr

            def rollout(policy, env, key):
                done = False
                while not done:
                    action = jr.categorical(key, policy(env.obs))  # expect: EQX502
                    done = env.step(action)
        """, "a while loop: the same action sample every step"),
        Bad("""
            import jax.random as jr
            import equinox as eqx

            def build(key):
                model_key, data_key = jr.split(key)
                model = eqx.nn.MLP(4, 1, 32, 2, key=model_key)
                x = jr.normal(key, (100, 4))  # expect: EQX502
                return model, x
        """, "the parent key used again after it was split"),
        Bad("""
            import jax.random as jr

            def keys_for(key):
                enc_key, dec_key = jr.split(key)
                noise_key, dropout_key = jr.split(key)  # expect: EQX502
                return enc_key, dec_key, noise_key, dropout_key
        """, "a key split twice: the second split gives the same keys"),
        Bad("""
            import jax

            sub = jax.random.split(key)
            more = jax.random.fold_in(key, 1)
            x = jax.random.normal(key, (2,))  # expect: EQX502
        """, "split, then the parent drawn from (fold_in in between changes nothing)"),
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

            more = jax.random.fold_in(key, 1)
            x = jax.random.normal(key, (2,))
            y = jax.random.normal(more, (2,))
        """, "fold_in derives a different key: the parent is drawn once"),
        Good("""
            import jax

            if training:
                x = jax.random.normal(key, (2,))
            else:
                x = jax.random.uniform(key, (2,))
        """, "different branches"),
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
        Good("""
            import jax.random as jr

            def shuffle(xs, ys, key):
                xs = jr.permutation(key, xs)
                ys = jr.permutation(key, ys)
                return xs, ys
        """, "the paired shuffle: one key keeps inputs and labels aligned"),
        Good("""
            import jax.random as jr

            def subsample(key, images, labels, n):
                picked_images = jr.choice(key, images, (n,), replace=False)
                picked_labels = jr.choice(key, labels, (n,), replace=False)
                return picked_images, picked_labels
        """, "choice with one key on two aligned arrays"),
        Good("""
            import jax.numpy as jnp
            import jax.random as jr

            def dataloader(arrays, batch_size, *, key):
                indices = jnp.arange(arrays[0].shape[0])
                while True:
                    perm = jr.permutation(key, indices)
                    (key,) = jr.split(key, 1)
                    yield tuple(array[perm[:batch_size]] for array in arrays)
        """, "the Equinox examples' dataloader: the key is advanced in the loop"),
        Good("""
            import equinox as eqx
            import jax.random as jr

            def test_deterministic_init():
                key = jr.PRNGKey(0)
                first = eqx.nn.Linear(3, 4, key=key)
                second = eqx.nn.Linear(3, 4, key=key)
                assert eqx.tree_equal(first, second)
        """, "equal objects on purpose: a test compares them"),
        Good("""
            import jax.numpy as jnp
            import jax.random as jr

            def test_vmap_matches_loop(model):
                key = jr.PRNGKey(0)
                x = jr.normal(key, (8, 3))
                x_again = jr.normal(key, (8, 3))
                batched = jax.vmap(model)(x)
                looped = jnp.stack([model(row) for row in x_again])
                assert jnp.allclose(batched, looped)
        """, "results made from the two draws are compared"),
        Good("""
            import jax.numpy as jnp
            import jax.random as jr

            def test_reproducible(key):
                assert jnp.array_equal(jr.normal(key, (2,)), jr.normal(key, (2,)))
        """, "both draws inside the assert"),
        Good("""
            import jax.random

            def main():
                key = jax.random.PRNGKey(42)
                x = jax.random.normal(key, (8, 3, 224, 224))
                width = 64
                x = jax.random.normal(key, (16, 3, 224, 224))
                print(x.shape)
        """, "a smoke test draws into the same name again, unread between (real code)"),
        Good("""
            import equinox as eqx

            class LanguageModel(eqx.Module):
                shared: eqx.nn.Shared

                def __init__(self, *, key):
                    embedding = eqx.nn.Embedding(3, 4, key=key)
                    linear = eqx.nn.Linear(4, 3, key=key)
                    where = lambda pair: pair[1].weight
                    get = lambda pair: pair[0].weight
                    self.shared = eqx.nn.Shared((embedding, linear), where, get)
        """, "weights tied by eqx.nn.Shared: one replaces the other (real code)"),
        Good("""
            import jax.random as jr

            if None:
                a = jr.normal(rng, (3,))
                b = jr.normal(rng, (3,))
        """, "dead code (real code)"),
        Good("""
            import jax.random as jr

            def train(model, key, steps):
                for step in range(steps):
                    key, subkey = jr.split(key)
                    noise = jr.normal(subkey, (4,))
                    model = update(model, noise)
                return model
        """, "the loop advances the key"),
        Good("""
            import jax.random as jr

            def train(model, key, steps):
                for step in range(steps):
                    step_key = jr.fold_in(key, step)
                    model = update(model, jr.normal(step_key, (4,)))
                return model
        """, "fold_in with the step: a new key each iteration"),
        Good("""
            import equinox as eqx

            def sweep(widths, key):
                models = []
                for width in widths:
                    models.append(eqx.nn.MLP(2, 2, width, 2, key=key))
                return models
        """, "a sweep: each configuration from the same seed, on purpose"),
        Good("""
            import jax
            import jax.numpy as jnp

            def plot_datasets(factories, key, axes):
                for i, name in enumerate(factories):
                    keys = jax.random.split(key, 16)
                    x = jnp.linspace(-2, 3, 500)[:, None]
                    axes[i].plot(x, jax.vmap(factories[name].sample, in_axes=[0, None])(keys, x))
        """, "a walk over datasets, not over steps: the same keys for each on purpose (real code)"),
        Good("""
            import jax.random as jr

            def train(key, n_epochs):
                for epoch in range(n_epochs):
                    if epoch == 0:
                        probe = jr.normal(key, (16,))
                    log(probe)
        """, "drawn under an `if` on the iteration: once"),
        Good("""
            import equinox as eqx
            import jax.random as jr

            def ensemble(key, n):
                members = []
                for member_key in jr.split(key, n):
                    members.append(eqx.nn.Linear(2, 2, key=member_key))
                return members
        """, "the loop walks over split keys"),
        Good("""
            import jax.random as jr

            def epochs(data, key, n):
                for epoch in range(n):
                    key, shuffle_key = jr.split(key)
                    batches = [jr.permutation(shuffle_key, b) for b in data]
                    consume(batches)
        """, "a comprehension in a loop that advances its key"),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """A cheap first look: could one key be drawn from twice, or in a loop?

        Sound: consumers are jax.random samplers and `split`/`fold_in`, called by their
        own name (any module alias in front), and layers (capitalised) given `key=`.
        The check reports pairs in one block of simple statements, and draws inside a
        loop from a key the loop does not assign. First a text screen (a name consumed
        twice, or a loop in the file), then Python's own parser (`ast`, many times
        cheaper than libcst) looks for either shape, counting fewer assignments than
        the check does, so that it never hides a finding.
        A file `ast` cannot parse, or that imports a function or layer under another
        name, goes to the full check.
        """
        if not super().may_fire(source, look):
            return False
        if _RENAMED_IMPORT.search(source):
            return True
        counts = Counter(_CONSUMED_NAME.findall(source))
        if not counts:
            return False
        if not any(count > 1 for count in counts.values()) and not _LOOP.search(source):
            return False
        tree = (look or FirstLook(source)).tree()
        if tree is None:
            return True
        samplers = _imported_from(source, "jax.random")
        layers = _imported_from(source, "equinox.nn")
        nn_aliases = _equinox_nn_aliases(source)
        return _block_with_reused_name(source, tree, samplers, layers, nn_aliases) or \
            _drawn_in_loop(tree, samplers, layers, nn_aliases)

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        draws = [draw for site in semantics.calls
                 if (draw := _draw_of(semantics, site)) is not None]
        if not draws:
            return
        context = _Context(semantics)
        reported: set[int] = set()
        for finding, node_id in _pairs_in_blocks(semantics, context, draws):
            if node_id not in reported:
                reported.add(node_id)
                yield finding
        for finding, node_id in _loop_invariant_keys(semantics, context, draws):
            if node_id not in reported:
                reported.add(node_id)
                yield finding


@dataclass
class _Draw:
    """One call that takes randomness from a key: a draw, a layer, or a split."""

    site: CallSite
    key: str
    function: str  # "normal", "Linear", "split"
    layer: bool
    derives: bool  # split / fold_in: makes keys, draws no numbers

    @property
    def line(self) -> Optional[cst.SimpleStatementLine]:
        line = self.site.line
        return line if isinstance(line, cst.SimpleStatementLine) else None

    def targets(self) -> list[str]:
        """The names the draw's statement binds (`w` in `w = jr.normal(key, ...)`)."""
        line = self.line
        names: list[str] = []
        if line is None:
            return names
        for statement in line.body:
            targets: list[cst.BaseExpression] = []
            if isinstance(statement, cst.Assign):
                targets = [t.target for t in statement.targets]
            elif isinstance(statement, (cst.AnnAssign, cst.AugAssign)):
                targets = [statement.target]
            while targets:
                target = targets.pop(0)
                if isinstance(target, (cst.Tuple, cst.List)):
                    targets[:0] = [element.value for element in target.elements]
                elif isinstance(target, cst.StarredElement):
                    targets.insert(0, target.value)
                elif isinstance(target, (cst.Name, cst.Attribute)):
                    dotted = dotted_name(target)  # `self.a` stays one target
                    if dotted is not None:
                        names.append(dotted)
        return names

    def direct_targets(self) -> list[str]:
        """The names bound to the call's own result (`k1, k2 = jr.split(key)`), not to
        something computed from it."""
        line = self.line
        if line is None or len(line.body) != 1:
            return []
        statement = line.body[0]
        value = getattr(statement, "value", None)
        if value is not self.site.node:
            return []
        return [name for name in self.targets() if name != "_"]

    def describe(self) -> str:
        if self.layer:
            return f"the weights of `{self.function}`"
        targets = self.direct_targets()
        if self.derives:
            return f"the split into `{', '.join(targets)}`" if targets else "a split"
        return f"the `{self.function}` draw `{targets[0]}`" if targets \
            else f"a `{self.function}` draw"


def _draw_of(semantics: Semantics, site: CallSite) -> Optional[_Draw]:
    qual = site.qualname or ""
    if qual.startswith("jax.random."):
        function = qual.rsplit(".", 1)[1]
        derives = function in ("split", "fold_in")
        if function in KEY_PLUMBING and not derives:
            return None
        args = positional_args(site.node)
        key = args[0] if args else keyword_arg(site.node, "key")
        layer = False
    elif qual.startswith("equinox.nn.") and qual.count(".") == 2 and qual[11:12].isupper():
        function, derives, layer = qual[11:], False, True
        key = keyword_arg(site.node, "key")
    else:
        return None
    if not isinstance(key, cst.Name):
        return None
    return _Draw(site, key.value, function, layer, derives)


class _Context:
    """What the intent checks need, computed once per file and only when asked."""

    def __init__(self, semantics: Semantics) -> None:
        self.semantics = semantics
        self._dead_blocks: Optional[set[int]] = None
        self._cell_of_statement: Optional[dict[int, int]] = None
        self._loops: Optional[dict[int, Union[cst.For, cst.While]]] = None
        self._compared: dict[int, list[set[str]]] = {}

    def dead_blocks(self) -> set[int]:
        """Blocks under `if False:` / `if None:` / `if 0:`: never run."""
        if self._dead_blocks is None:
            self._dead_blocks = set()
            for node in descendants(self.semantics.module, cst.If):
                test = node.test
                if isinstance(test, cst.Name) and test.value in ("False", "None") or \
                        isinstance(test, cst.Integer) and test.value == "0":
                    self._dead_blocks.update(id(b) for b in
                                             descendants(node.body, cst.BaseSuite))
        return self._dead_blocks

    def cell_group(self, site: CallSite) -> int:
        """For a notebook: the number of the cell that holds the call; 0 in a plain file.

        Each cell is its own block: cells run one at a time, in an order (and as often)
        as the reader chooses, and tutorials separate them by markdown to show reuse.
        """
        cells = self.semantics.cells
        if not cells or site.statement is None:
            return 0
        if self._cell_of_statement is None:
            starts = [row for row, _ in cells]
            module = self.semantics.module
            self._cell_of_statement = {}
            row = 1 + len(module.header)
            for statement in module.body:
                first = row + len(getattr(statement, "leading_lines", ()))
                where = bisect.bisect_right(starts, first) - 1
                self._cell_of_statement[id(statement)] = cells[where][1] if where >= 0 else 0
                row += module.code_for_node(statement).count("\n")
        return self._cell_of_statement.get(id(site.statement), 0)

    def loop(self, loop_id: int) -> Optional[Union[cst.For, cst.While]]:
        if self._loops is None:
            self._loops = {id(node): node for node in
                           descendants(self.semantics.module, cst.BaseCompoundStatement)
                           if isinstance(node, (cst.For, cst.While))}
        return self._loops.get(loop_id)

    def compared_together(self, scope: Scope, first: _Draw, second: _Draw) -> bool:
        """The two results (or values made from them) are compared: equal on purpose."""
        for draw in (first, second):
            line = draw.line
            if line is not None and any(isinstance(s, cst.Assert) for s in line.body):
                return True
        groups = self._compared.get(id(scope))
        if groups is None:
            groups = self._compared[id(scope)] = _comparisons(self.semantics, scope)
        if not groups:
            return False
        left = _derived_names(scope, set(first.targets()))
        right = _derived_names(scope, set(second.targets()))
        return any(group & left and group & right for group in groups)


_COMPARISONS = ("allclose", "array_equal", "tree_equal", "isclose", "assert_allclose",
                "assert_array_equal", "assert_array_almost_equal", "assert_trees_all_close",
                "assert_trees_all_equal", "assert_equal", "assertEqual", "assert_tree_all_close")


def _comparisons(semantics: Semantics, scope: Scope) -> list[set[str]]:
    """Names that appear together in an `assert` or a comparison call in the scope."""
    groups: list[set[str]] = []
    root = scope.node
    for node in descendants(root, cst.Assert):
        groups.append({n.value for n in descendants(node.test, cst.Name)})
    for site in semantics.calls:
        if site.scope is not scope:
            continue
        func = site.node.func
        name = func.attr.value if isinstance(func, cst.Attribute) else \
            func.value if isinstance(func, cst.Name) else ""
        if name in _COMPARISONS:
            groups.append({n.value for arg in site.node.args
                           for n in descendants(arg.value, cst.Name)})
    return groups


def _derived_names(scope: Scope, names: set[str]) -> set[str]:
    """`names` and every name of the scope bound to a value computed from them."""
    derived = set(names)
    if not derived:
        return derived
    for _ in range(4):
        grew = False
        for bound, bindings in scope.bindings.items():
            if bound in derived:
                continue
            if any(b.value is not None and
                   any(n.value in derived for n in descendants(b.value, cst.Name))
                   for b in bindings):
                derived.add(bound)
                grew = True
        if not grew:
            break
    return derived


def _rebound_between(scope: Scope, key: str, after: int, before: int) -> bool:
    return any(after < b.seq < before for b in scope.bindings.get(key, []))


def _pairs_in_blocks(semantics: Semantics, context: _Context, draws: list[_Draw]
                     ) -> Iterator[tuple[Finding, int]]:
    """Two draws from one key in one block, or a key used again after it was split."""
    previous: dict[tuple[int, int, str], list[_Draw]] = {}
    for draw in draws:
        site = draw.site
        if site.block is None:
            continue
        where = (id(site.block), id(site.scope), draw.key)
        if draw.function == "fold_in":
            continue  # derives a different key: neither spends nor reuses this one
        earlier_draws = previous.setdefault(where, [])
        earlier_draws.append(draw)
        if len(earlier_draws) == 1:
            continue
        if id(site.block) in context.dead_blocks():
            continue
        for earlier in reversed(earlier_draws[:-1]):
            if _rebound_between(site.scope, draw.key, earlier.site.seq, site.seq):
                break
            if earlier.derives and draw.key in earlier.targets():
                break  # `key, sub = jr.split(key)`: a new key from here on
            finding = _pair_finding(semantics, context, earlier, draw)
            if finding is not None:
                yield finding, id(site.node)
            break


_ALIGNED = {"permutation", "shuffle", "choice"}


def _pair_finding(semantics: Semantics, context: _Context, first: _Draw, second: _Draw
                  ) -> Optional[Finding]:
    key = second.key
    if first.derives:
        pass  # the parent key used again after it was split: checked below
    elif second.derives:
        return None  # split after a draw: the draw came first, the split's keys are new
    elif first.function in _ALIGNED and second.function in _ALIGNED:
        return None  # the paired shuffle: one key keeps the rows of two arrays aligned
    if context.cell_group(first.site) != context.cell_group(second.site):
        return None  # notebook cells: run one at a time
    if context.compared_together(second.site.scope, first, second):
        return None
    if _overwritten_unread(semantics, first, second) or _tied(semantics, first, second):
        return None
    if first.derives:
        split_into = ", ".join(first.direct_targets())
        split_into = f"`{split_into}`" if split_into else "new keys"
        if second.derives:
            message = (f"`{key}` was already split into {split_into}; splitting it again "
                       f"gives the same keys again")
        else:
            message = (f"`{key}` was already split into {split_into}, and {second.describe()} "
                       f"uses it again: a key that was split is spent")
        return Finding(node=second.site.node, message=message,
                       hint=f"Draw from one of the keys it was split into, or split once into "
                            f"as many keys as you need: `k1, k2, k3 = jax.random.split({key}, 3)`")
    if first.layer and second.layer and first.function == second.function:
        pair = f"the weights of two `{first.function}` layers"
        consequence = "they start identical where their shapes match, correlated elsewhere"
    elif first.layer and second.layer:
        pair = f"the weights of `{first.function}` and of `{second.function}`"
        consequence = "they start correlated"
    elif first.layer or second.layer:
        pair = f"{first.describe()} and {second.describe()}"
        consequence = "they are correlated, not independent"
    else:
        pair = f"{first.describe()} and {second.describe()}"
        consequence = "the same random numbers, not independent ones"
    return Finding(
        node=second.site.node,
        message=f"{pair} are drawn from one key `{key}` with no split between: {consequence}",
        hint=f"Split it first: `{key}, subkey = jax.random.split({key})`, and give each draw "
             f"its own key")


def _overwritten_unread(semantics: Semantics, first: _Draw, second: _Draw) -> bool:
    """`x = jr.normal(key, a)` ... `x = jr.normal(key, b)` with `x` not read between:
    the first value is replaced, never used beside the second (a shape smoke test)."""
    first_targets, second_targets = set(first.targets()), set(second.targets())
    shared = first_targets & second_targets
    if not shared or first.line is None or second.line is None:
        return False
    block = first.site.block
    body = getattr(block, "body", None)
    if not isinstance(body, (list, tuple)):
        return False
    statements = list(body)
    try:
        start, end = statements.index(first.line), statements.index(second.line)
    except ValueError:
        return False
    for statement in statements[start + 1:end + 1]:
        reads = {n.value for n in descendants(statement, cst.Name)}
        if statement is second.line:
            value_reads: set[str] = set()
            for small in second.line.body:
                value = getattr(small, "value", None)
                if isinstance(value, cst.BaseExpression):
                    value_reads |= {n.value for n in descendants(value, cst.Name)}
            reads = value_reads
        if reads & shared:
            return False
    return True


def _tied(semantics: Semantics, first: _Draw, second: _Draw) -> bool:
    """Both layers go into one `eqx.nn.Shared`: one weight replaces the other."""
    if not (first.layer and second.layer):
        return False
    names = set(first.targets()), set(second.targets())
    for site in semantics.calls_to("equinox.nn.Shared"):
        mentioned = {n.value for arg in site.node.args for n in descendants(arg.value, cst.Name)}
        if names[0] & mentioned and names[1] & mentioned:
            return True
    return False


def _loop_invariant_keys(semantics: Semantics, context: _Context, draws: list[_Draw]
                         ) -> Iterator[tuple[Finding, int]]:
    """A draw or split inside a loop from a key the loop never rebinds."""
    for draw in draws:
        site = draw.site
        if not site.loops:
            continue
        loop_id = site.loops[-1]
        bound_in_loop = _bound_in_loop(site.scope, loop_id)
        if draw.key in bound_in_loop:
            continue
        line = draw.line
        if line is not None and any(isinstance(s, cst.Assert) for s in line.body):
            continue  # a test drawing the same numbers on purpose
        if site.block is not None and id(site.block) in context.dead_blocks():
            continue
        mentioned = {n.value for n in descendants(site.node, cst.Name)} - {draw.key}
        if mentioned & bound_in_loop:
            continue  # the draw depends on the iteration (`fold_in(key, step)`, a shape)
        loop = context.loop(loop_id)
        if loop is None or not _steps(loop) or \
                _guarded_by_iteration(loop, site.node, bound_in_loop):
            continue
        if draw.derives:
            made = ", ".join(draw.direct_targets())
            if not made:
                continue
            message = (f"the split of `{draw.key}` inside the loop gives the same `{made}` "
                       f"every iteration: the loop never advances `{draw.key}`")
        else:
            message = (f"inside the loop, `{draw.key}` gives {draw.describe()}, but the loop "
                       f"never advances `{draw.key}`: every iteration draws the same numbers")
        yield Finding(
            node=site.node, message=message,
            hint=f"Advance the key each iteration: `{draw.key}, subkey = "
                 f"jax.random.split({draw.key})` in the loop, or "
                 f"`jax.random.fold_in({draw.key}, step)`"), id(site.node)


def _bound_in_loop(scope: Scope, loop_id: int) -> set[str]:
    """Names bound inside the loop, in the call's scope and the comprehensions around it."""
    bound: set[str] = set()
    current: Optional[Scope] = scope
    while current is not None:
        bound |= {name for name, bindings in current.bindings.items()
                  if any(loop_id in b.loops for b in bindings)}
        if current.kind != "comprehension":
            break
        current = current.parent
    return bound


def _steps(loop: Union[cst.For, cst.While]) -> bool:
    """A loop of steps (`while`, `for ... in range(...)`, `trange`, `tqdm(range(...))`),
    not a walk over configurations: a sweep over widths or datasets may use one seed
    for each on purpose."""
    if isinstance(loop, cst.While):
        return True
    for call in descendants(loop.iter, cst.Call):
        name = dotted_name(call.func) or ""
        if name.rsplit(".", 1)[-1] in ("range", "trange", "arange"):
            return True
    return False


def _guarded_by_iteration(loop: Union[cst.For, cst.While], call: cst.Call,
                          bound_in_loop: set[str]) -> bool:
    """The call sits under an `if` (or `else`) whose test depends on the iteration,
    so it need not run every iteration."""
    for node in descendants(loop.body, cst.If):
        if not any(inner is call for inner in descendants(node, cst.Call)):
            continue
        names = {n.value for n in descendants(node.test, cst.Name)}
        if names & bound_in_loop:
            return True
    return False


def _block_with_reused_name(source: bytes, tree: ast.AST, samplers: set[str], layers: set[str],
                            nn_aliases: set[str]) -> bool:
    """Some block gives one name to two consumers (or splits) with no assignment to it
    in between.

    The text matches point at statements; `ast` says which calls there consume which
    name (a sampler of jax.random by attribute or imported name, an `equinox.nn`
    layer given `key=`). Only assignments by simple statements of the same block
    count as "in between" (the check counts more, so this never hides a finding).
    """
    lines = {source.count(b"\n", 0, match.start()) + 1
             for match in _CONSUMED_NAME.finditer(source)}
    placed, assigned, statements = _simple_statements(tree)
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


_SAMPLER_NAMES = set(SAMPLERS.decode().split("|")) | {"split", "fold_in"}


def _drawn_in_loop(tree: ast.AST, samplers: set[str], layers: set[str],
                   nn_aliases: set[str]) -> bool:
    """A consumer or split inside a `for`/`while` whose key name that loop never assigns.

    Assignments counted: plain, augmented and annotated ones and `for` targets, outside
    nested functions, classes and comprehensions: all of them the check sees too.
    Statements are walked one level at a time; only code inside a loop (the innermost
    one, until a def, class or lambda) is searched for calls.
    """
    assigned_in: dict[int, set[str]] = {}

    def drawn(node: ast.AST, loop: ast.AST) -> bool:
        for call in _calls_outside_lambdas(node):
            names = _keys_of_call(call, samplers, layers, nn_aliases)
            if names:
                assigned = assigned_in.get(id(loop))
                if assigned is None:
                    assigned = assigned_in[id(loop)] = _assigned_in_loop(loop)
                if any(name not in assigned for name in names):
                    return True
        return False

    pending: list[tuple[ast.stmt, Optional[ast.AST]]] = \
        [(statement, None) for statement in getattr(tree, "body", [])]
    while pending:
        statement, loop = pending.pop()
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            loop = None
        elif isinstance(statement, (ast.For, ast.AsyncFor, ast.While)):
            loop = statement
        for value in vars(statement).values():
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                pending.extend((inner, loop) for inner in value)
            elif isinstance(value, list) and value and isinstance(value[0], (
                    ast.excepthandler, ast.match_case)):
                pending.extend((inner, loop) for part in value for inner in part.body)
                guards = [getattr(part, "type", None) or getattr(part, "guard", None)
                          for part in value]
                if loop is not None and any(drawn(guard, loop) for guard in guards
                                            if guard is not None):
                    return True
            elif loop is not None and isinstance(value, (ast.AST, list)) and any(
                    drawn(part, loop) for part in (value if isinstance(value, list) else [value])
                    if isinstance(part, ast.AST)):
                return True
    return False


def _calls_outside_lambdas(node: ast.AST) -> Iterator[ast.Call]:
    """The calls in an expression (or a statement's own expressions), not inside a lambda."""
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, ast.Lambda):
            continue
        if isinstance(current, ast.Call):
            yield current
        for value in vars(current).values():
            if isinstance(value, ast.AST):
                if not isinstance(value, ast.stmt):
                    pending.append(value)
            elif isinstance(value, list):
                pending.extend(part for part in value
                               if isinstance(part, ast.AST) and not isinstance(part, ast.stmt))


def _assigned_in_loop(loop: ast.AST) -> set[str]:
    names: set[str] = set()
    pending: list[ast.AST] = [loop]
    while pending:
        node = pending.pop()
        if node is not loop and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                  ast.Lambda, ast.ClassDef, ast.ListComp,
                                                  ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            names.update(_assigned_names(node))
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            names.update(_target_names(node.target))
        pending.extend(ast.iter_child_nodes(node))
    return names


def _target_names(target: ast.expr) -> list[str]:
    found = []
    pending = [target]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Name):
            found.append(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            pending.extend(node.elts)
        elif isinstance(node, ast.Starred):
            pending.append(node.value)
    return found


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
        if isinstance(node, ast.Call):
            names += _keys_of_call(node, bare_samplers, layers, nn_aliases)
    return names


def _keys_of_call(node: ast.Call, bare_samplers: set[str], layers: set[str],
                  nn_aliases: set[str]) -> list[str]:
    """The key names one call consumes (a sampler, split or fold_in, or a layer's `key=`)."""
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in _SAMPLER_NAMES \
            or isinstance(func, ast.Name) and func.id in bare_samplers:
        if node.args and isinstance(node.args[0], ast.Name):
            return [node.args[0].id]
        return [k.value.id for k in node.keywords
                if k.arg == "key" and isinstance(k.value, ast.Name)]
    if _is_layer(func, layers, nn_aliases):
        return [k.value.id for k in node.keywords
                if k.arg == "key" and isinstance(k.value, ast.Name)]
    return []


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
