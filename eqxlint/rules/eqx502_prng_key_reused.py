"""EQX502: one PRNG key giving randomness twice: two draws, a reused parent, a loop that
never advances its key. Quiet where the reuse is the point."""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass
from typing import Iterator, Optional, Union

import libcst as cst

from eqxlint.rules.base import Bad, Finding, Good, Rule
from eqxlint.rules.first_look import FirstLook, qualified_names, walk
from eqxlint.semantics import (CallSite, Scope, Semantics, descendants, dotted_name,
                               keyword_arg, positional_args)

# jax.random functions that do not consume randomness: they make or derive keys.
KEY_PLUMBING = {"split", "fold_in", "PRNGKey", "key", "key_data", "wrap_key_data", "clone",
                "key_impl", "default_prng_impl", "threefry_2x32", "threefry2x32_p"}



class PrngKeyReused(Rule):
    code = "EQX502"
    name = "prng-key-reused"
    summary = "One PRNG key drawn from twice, used after its split, or never advanced in a loop"
    triggers = ((b"random", b"equinox"),)
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
            from jax.random import normal as draw

            def noise(rng, n):
                a = draw(rng, (n,))
                b = draw(rng, (n,))  # expect: EQX502
                return a + b
        """, "a sampler imported under another name, a key not named `key`"),
        Bad("""
            import jax as j

            def sample(seed):
                scale = j.random.rayleigh(seed, 1.0)
                noise = j.random.rayleigh(  # expect: EQX502
                    # the same seed again
                    seed, 2.0)
                return scale, noise
        """, "any jax.random sampler, a comment before the key, jax under another name"),
        Bad("""
            import jax.random as jr

            def rollout(step, key, n):
                for i in range(n): key2 = jr.normal(key, (2,)); step(key2)  # expect: EQX502
        """, "a loop written on one line"),
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
        """The check's own steps, erring towards yes: could a key be drawn from twice
        in one block, or in a loop that never advances it?

        A draw is a call that the file's imports (all of them: `import jax.random as
        jr`, `from jax.random import normal as draw`, `import equinox as e`) resolve to
        a `jax.random` function that is not key plumbing, or to an `equinox.nn` layer
        given `key=`, with a plain name as its key. First the text: the imports, read
        without parsing the file (a superset), and the calls whose callee resolves to a
        draw, with their key where the text shows it (a name first, or `key=name`
        first); there must be two that may share a key, or one and a `while` or a `for`
        and a range. Then Python's `ast`, looking only at statements holding those
        calls. Pairs: two draws of one key in one indented block and one scope, no
        assignment to the key by a simple statement of the block between them, not a
        split before a draw, not two shuffles, not in an `assert`, not under
        `if False:`. Loops: a draw in its innermost loop (comprehensions are no loops;
        lambdas and defs leave them), the loop a `while` or a `for` over something
        called range/trange/arange, neither the key nor the draw's other names
        assigned in the loop, no `if` inside the loop around it testing a name assigned
        in the loop, a split bound to a name. The assignments counted are a subset of
        the check's; the intent checks (notebook cells, comparisons, overwritten draws,
        `eqx.nn.Shared`) are left to the check. A file neither the text nor `ast` can
        read, or that imports one such name as two things, says yes.
        """
        if not cls.static:
            return False
        try:
            return _may_fire(source, look)
        except Exception:  # a first look that fails cannot say "no"
            return True

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


def _may_fire(source: bytes, look: Optional[FirstLook]) -> bool:
    """PrngKeyReused.may_fire, after its guard."""
    if not (b"random" in source and b"jax" in source or
            b"equinox" in source and b"key" in source):
        return False
    look = look or FirstLook(source)
    table = look.text_imports()  # a superset of the imports, read without parsing
    if table is None:
        table = look.imports()
        if table is None:
            return True
    heads, ambiguous = _key_consumers(table)
    if not heads:
        return False
    if ambiguous or not all(head.isascii() for head in heads):
        return True  # which import holds, or how the text spells it, is unknown
    sites = _draw_sites(source, table, heads)
    keys = [key for key, _ in sites]
    paired = None in keys or len(set(keys)) < len(keys)
    if not sites or not paired and not _step_loop_words(source):
        return False
    tree = look.tree()
    if tree is None:
        return True
    return _FirstLook(source, table, _lines_of(source, [at for _, at in sites])).fires(tree)


# -- the first look ----------------------------------------------------------
# It mirrors the check on Python's `ast`, and always errs towards "may fire": it counts
# a subset of the assignments and guards the check counts, a superset of the loops and
# blocks, and ignores the intent checks (cells, comparisons, overwritten draws, Shared).

# What Python allows between the parts of a callee: whitespace, continuations,
# comments, brackets.
_FIRST_LOOK_BETWEEN_BRACKETS = rb"(?:[ \t\r\n\\()]|#[^\n]*(?:\n|$))*"
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_STEP_ITERATORS = ("range", "trange", "arange")


@dataclass(frozen=True)
class _Use:
    """A call the check would take as a draw: the key it names and what it does."""

    call: ast.Call
    statement: ast.stmt
    position: int  # in its block
    scope: int  # 0, or the comprehension holding the call
    key: str
    function: str
    derives: bool


def _key_consumers(table: dict[str, frozenset[str]]) -> tuple[dict[str, str], bool]:
    """Local names through which a call can reach `jax.random.*` or an `equinox.nn` layer,
    each with the attribute chain it needs first ("" for none, ".random", ".nn"); and
    whether some such name is imported as two different things (then the first look
    cannot tell which, and says yes)."""
    heads: dict[str, str] = {}
    ambiguous = False
    for local, quals in table.items():
        needs = set()
        for qual in quals:
            if qual == "jax":
                needs.add(".random")
            elif qual == "equinox":
                needs.add(".nn")
            elif qual in ("jax.random", "equinox.nn") or \
                    qual.startswith(("jax.random.", "equinox.nn.")):
                needs.add("")
        if needs:
            heads[local] = min(needs, key=len)
            ambiguous = ambiguous or len(quals) > 1
    return heads, ambiguous


def _lines_of(source: bytes, offsets: list[int]) -> list[int]:
    """The (sorted, distinct) line numbers of sorted offsets into `source`."""
    lines: list[int] = []
    row, counted = 1, 0
    for offset in offsets:
        row += source.count(b"\n", counted, offset)
        counted = offset
        if not lines or lines[-1] != row:
            lines.append(row)
    return lines


_WHILE = re.compile(rb"\bwhile\b")
_FOR = re.compile(rb"\bfor\b")
_STEP_ITERATOR_WORD = re.compile(rb"\b(?:range|trange|arange)\b")
_IDENT = rb"[A-Za-z_\x80-\xff][\w\x80-\xff]*"  # identifiers, non-ASCII ones too
_IDENTIFIER = re.compile(_IDENT)
_WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
                        + bytes(range(0x80, 0x100)))
_GAP = rb"(?:[ \t\n\\]|#[^\n]*\n)*"
# After a draw's `(`: its first argument, a name (then what follows it) or a star.
# (Brackets may open before it: `normal((key), shape)` passes the name `key`.)
_OPEN_GAP = rb"(?:[ \t\n\\(]|#[^\n]*\n)*"
_FIRST_ARGUMENT = re.compile(_OPEN_GAP + rb"(?:(\*)|(" + _IDENT + rb")" + _GAP
                             + rb"(==|=|[,)])?)")
_KEY_VALUE = re.compile(_OPEN_GAP + rb"(" + _IDENT + rb")" + _GAP + rb"[,)]")


def _decoded(name: bytes) -> Optional[str]:
    try:
        return name.decode()
    except UnicodeDecodeError:
        return None  # unknown: matches any key


def _step_loop_words(source: bytes) -> bool:
    """A loop the check looks into can be written: `while`, or `for` and a range."""
    return _WHILE.search(source) is not None or \
        _FOR.search(source) is not None and _STEP_ITERATOR_WORD.search(source) is not None


def _draw_sites(source: bytes, table: dict[str, frozenset[str]], heads: dict[str, str]
                ) -> list[tuple[Optional[str], int]]:
    """The calls the text shows whose callee the imports resolve to a draw (a name chain
    from a head, with whatever Python allows between its parts: spaces, comments,
    continuations, brackets, then `(`), each with its key when the text shows it (else
    None) and the offset of its head. Strings and comments may add some; no draw is
    missed.

    The key of a jax.random draw is its first positional argument, else its `key=`
    (see _draw_of): a name followed by `,` or `)` is the key; `key=name` first is the
    key (no positional argument may follow a keyword); any other first argument
    written out (`keys[0]`, `f(x)`, `0`) is no name, and the call no draw."""
    if not heads:
        return []
    chain = re.compile(rb"(" + b"|".join(re.escape(h.encode()) for h in sorted(heads))
                       + rb")(?![\w\x80-\xff])((?:" + _FIRST_LOOK_BETWEEN_BRACKETS + rb"\."
                       + _FIRST_LOOK_BETWEEN_BRACKETS + _IDENT + rb")*)"
                       + _FIRST_LOOK_BETWEEN_BRACKETS + rb"\(")
    found: list[tuple[Optional[str], int]] = []
    for match in chain.finditer(source):
        at = match.start()
        if at and source[at - 1] in _WORD_BYTES:
            continue  # the end of a longer name (tested here: a look-behind is slow)
        head = match.group(1).decode()
        try:
            rest = ".".join(name.decode() for name in _IDENTIFIER.findall(match.group(2)))
        except UnicodeDecodeError:
            found.append((None, at))
            continue
        kinds = set()
        for qual in table[head]:
            full = f"{qual}.{rest}" if rest else qual
            function = full.rsplit(".", 1)[-1]
            if full.startswith("jax.random.") and \
                    (function not in KEY_PLUMBING or function in ("split", "fold_in")):
                kinds.add("sampler")
            elif full.startswith("equinox.nn.") and full.count(".") == 2 and \
                    full[11:12].isupper():
                kinds.add("layer")
        if kinds != {"sampler"}:
            if kinds:
                found.append((None, at))  # a layer's key= may come anywhere: not read
            continue
        first = _FIRST_ARGUMENT.match(source, match.end())
        if first is None:
            continue  # `(` then no name nor star: a literal, a bracket, `)`: no name key
        star, name, after = first.groups()
        if star or after == b"=" and name != b"key":
            found.append((None, at))  # the key may be a later keyword
        elif after == b"=":
            value = _KEY_VALUE.match(source, first.end())
            if value is not None:
                found.append((_decoded(value.group(1)), at))
        elif after in (b",", b")"):
            found.append((_decoded(name), at))
        # else: the first positional argument is an expression, not a name: no draw
    return found


def _draw_in(call: ast.Call, table: dict[str, frozenset[str]]
             ) -> Optional[tuple[str, str, bool]]:
    """(key, function, derives) when the check takes `call` as a draw (see _draw_of)."""
    for qual in qualified_names(call.func, table):
        if qual.startswith("jax.random."):
            function = qual.rsplit(".", 1)[1]
            derives = function in ("split", "fold_in")
            if function in KEY_PLUMBING and not derives:
                continue
            args = [arg for arg in call.args if not isinstance(arg, ast.Starred)]
            key = args[0] if args else _keyword(call, "key")
        elif qual.startswith("equinox.nn.") and qual.count(".") == 2 and qual[11:12].isupper():
            function, derives = qual[11:], False
            key = _keyword(call, "key")
        else:
            continue
        if isinstance(key, ast.Name):
            return key.id, function, derives
        if isinstance(key, ast.Constant) and \
                (key.value is None or key.value is True or key.value is False):
            return str(key.value), function, derives  # libcst: `None`, `True` are names
    return None


def _keyword(call: ast.Call, name: str) -> Optional[ast.expr]:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _calls_outside_lambdas(node: ast.AST) -> Iterator[tuple[ast.Call, int]]:
    """The calls in an expression, not inside a lambda (the check sees no draw there:
    a lambda is its own scope, outside every loop and block), each with its scope
    within the statement: the innermost comprehension around it (its whole node, as
    the semantics' scopes see it), or 0."""
    pending: list[tuple[ast.AST, int]] = [(node, 0)]
    while pending:
        current, scope = pending.pop()
        if isinstance(current, ast.Lambda):
            continue
        if isinstance(current, _COMPREHENSIONS):
            scope = id(current)
        elif isinstance(current, ast.Call):
            yield current, scope
        pending.extend((child, scope) for child in ast.iter_child_nodes(current))


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in walk(node) if isinstance(n, ast.Name)}


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


def _assigned_names(statement: ast.stmt, in_class: bool = False) -> list[str]:
    """Names a simple statement binds by assignment (a subset of the check's bindings:
    an annotation in a class body declares a field and binds nothing there)."""
    if isinstance(statement, ast.Assign):
        return [name for target in statement.targets for name in _target_names(target)]
    if isinstance(statement, ast.AugAssign) or \
            isinstance(statement, ast.AnnAssign) and not in_class:
        return _target_names(statement.target)
    return []


def _assigned_in_loop(loop: ast.AST, in_class: bool) -> set[str]:
    """Names the loop assigns in its own scope: plain, augmented and annotated assignments
    and `for` targets, outside nested functions, classes, lambdas and comprehensions (the
    check counts all of these, and more)."""
    names: set[str] = set()
    pending: list[ast.AST] = [loop]
    while pending:
        node = pending.pop()
        if node is not loop and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                  ast.Lambda, ast.ClassDef, ast.ListComp,
                                                  ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            names.update(_assigned_names(node, in_class))
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            names.update(_target_names(node.target))
        pending.extend(ast.iter_child_nodes(node))
    return names


def _steps_loop(loop: ast.stmt) -> bool:
    """`_steps` on `ast`, saying yes at least as often: a `while`, or a `for` whose
    iterable calls something named range, trange or arange."""
    if isinstance(loop, ast.While):
        return True
    for node in walk(loop.iter):  # type: ignore[attr-defined]
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else \
                func.id if isinstance(func, ast.Name) else ""
            if name in _STEP_ITERATORS:
                return True
    return False


def _direct_targets(statement: ast.stmt, call: ast.Call) -> bool:
    """Whether the statement binds the call's own result to a name other than `_`."""
    if not isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)) or \
            statement.value is not call:
        return False
    targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
    pending = list(targets)
    while pending:
        target = pending.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            pending.extend(target.elts)
        elif isinstance(target, ast.Starred):
            pending.append(target.value)
        elif isinstance(target, ast.Name):
            if target.id != "_":
                return True
        elif isinstance(target, ast.Attribute):
            return True
    return False


def _is_dead(test: ast.expr) -> bool:
    """`if False:` / `if None:` (the check also knows `if 0:`; `ast` cannot tell `0`
    from `0x0`, so that one goes to the check)."""
    return isinstance(test, ast.Constant) and (test.value is False or test.value is None)


def _indented(source: bytes, block: list[ast.stmt], starts: list[int]) -> bool:
    """Whether a compound statement's body is an indented block (libcst's IndentedBlock,
    whose statements are the check's blocks), not a suite on the header's line
    (`for i in r: x = f(key)`): its first statement begins a physical line that does not
    continue the one before it. `starts` holds the offset of each line's start."""
    first = block[0]
    start = starts[first.lineno - 1]
    if source[start:start + first.col_offset].strip(b" \t"):
        return False
    return not (first.lineno > 1 and source[:start - 1].endswith(b"\\"))


class _FirstLook:
    """One walk over the statements of a file, looking at the calls of candidate lines."""

    def __init__(self, source: bytes, table: dict[str, frozenset[str]], lines: list[int]
                 ) -> None:
        self.source = source
        self.table = table
        self.lines = lines
        self.assigned: dict[int, set[str]] = {}
        self._starts: Optional[list[int]] = None

    def line_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in re.finditer(b"\n", self.source)]
        return self._starts

    def starts_line(self, statement: ast.stmt) -> bool:
        """The statement is the first of its logical line (not after `;`, not in a suite)."""
        return _indented(self.source, [statement], self.line_starts())

    def on_lines(self, node: ast.AST) -> bool:
        first = getattr(node, "lineno", None)
        if first is None:
            return True
        last = getattr(node, "end_lineno", None) or first
        at = bisect.bisect_left(self.lines, first)
        return at < len(self.lines) and self.lines[at] <= last

    def uses(self, node: ast.AST, statement: ast.stmt, position: int) -> Iterator[_Use]:
        if not self.on_lines(node):
            return
        for call, scope in _calls_outside_lambdas(node):
            found = _draw_in(call, self.table)
            if found is not None:
                yield _Use(call, statement, position, scope, *found)

    def in_loop_fires(self, use: _Use, loop: ast.stmt, guards: Optional[list[ast.expr]],
                      in_line: bool, in_class: bool) -> bool:
        """The loop half of the check, on one draw inside `loop` (its innermost loop).
        `in_line`: the draw's statement is one of an indented block (a libcst
        SimpleStatementLine), not a header's or a one-line suite's."""
        if in_line and isinstance(use.statement, ast.Assert) and \
                self.starts_line(use.statement):
            return False
        assigned = self.assigned.get(id(loop))
        if assigned is None:
            assigned = self.assigned[id(loop)] = _assigned_in_loop(loop, in_class)
        if use.key in assigned or (_names_in(use.call) - {use.key}) & assigned:
            return False
        if not _steps_loop(loop):
            return False
        if guards and any(_names_in(test) & assigned for test in guards):
            return False
        return not use.derives or (in_line and _direct_targets(use.statement, use.call))

    def fires(self, tree: ast.Module) -> bool:
        # (block, innermost loop, If tests inside that loop's body or None (in its
        # `else`), a class body?, under `if False:`?)
        pending: list[tuple[list[ast.stmt], Optional[ast.stmt], Optional[list[ast.expr]],
                            bool, bool]] = [(tree.body, None, None, False, False)]
        while pending:
            block, loop, guards, in_class, dead = pending.pop()
            in_line = block is tree.body or _indented(self.source, block, self.line_starts())
            uses: list[_Use] = []
            for position, statement in enumerate(block):
                if isinstance(statement, _SCOPES):
                    if self.on_lines(statement):  # decorators and defaults: in no loop
                        pending.append((statement.body, None, None,
                                        isinstance(statement, ast.ClassDef), dead))
                    continue
                fields = list(ast.iter_fields(statement))
                if not any(isinstance(value, list) and value and
                           isinstance(value[0], (ast.stmt, ast.excepthandler, ast.match_case))
                           for _, value in fields):
                    if dead and in_line:
                        continue  # the check skips draws in blocks under `if False:`
                    for use in self.uses(statement, statement, position):
                        if loop is not None and \
                                self.in_loop_fires(use, loop, guards, in_line, in_class):
                            return True
                        uses.append(use)
                    continue
                if not self.on_lines(statement):
                    continue
                inner_loop = statement if isinstance(statement, _LOOPS) else loop
                inner_guards = [] if inner_loop is not loop else guards
                if isinstance(statement, ast.If) and inner_guards is not None:
                    inner_guards = inner_guards + [statement.test]
                headers: list[ast.AST] = []
                for name, value in fields:
                    if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                        dead_below = dead or (isinstance(statement, ast.If) and name == "body"
                                              and _is_dead(statement.test))
                        if name == "orelse" and inner_loop is statement:
                            pending.append((value, statement, None, in_class, dead_below))
                        else:
                            pending.append((value, inner_loop, inner_guards, in_class,
                                            dead_below))
                    elif isinstance(value, list) and value and \
                            isinstance(value[0], (ast.excepthandler, ast.match_case)):
                        for part in value:
                            pending.append((part.body, inner_loop, inner_guards, in_class,
                                            dead))
                            headers += [node for node in (getattr(part, "type", None),
                                                          getattr(part, "guard", None))
                                        if node is not None]
                    elif isinstance(value, ast.AST):
                        headers.append(value)
                    elif isinstance(value, list):
                        headers += [item for item in value if isinstance(item, ast.AST)]
                if inner_loop is None:
                    continue  # a header outside loops is in no block: no pair, no loop
                for header in headers:
                    for use in self.uses(header, statement, position):
                        if self.in_loop_fires(use, inner_loop, inner_guards, False, in_class):
                            return True
            if len(uses) > 1 and in_line and self.pair_in(block, uses, in_class):
                return True
        return False

    def pair_in(self, block: list[ast.stmt], uses: list[_Use], in_class: bool) -> bool:
        """The block half of the check: two draws from one key in one scope (the block's,
        or one comprehension's), no assignment between."""
        by_key: dict[str, list[_Use]] = {}
        for use in uses:
            if use.function != "fold_in":
                by_key.setdefault(use.key, []).append(use)
        for key, group in by_key.items():
            if len(group) < 2:
                continue
            assigned_at = [position for position, statement in enumerate(block)
                           if key in _assigned_names(statement, in_class)]
            for later in group:
                for earlier in group:
                    if earlier is later or earlier.position > later.position or \
                            earlier.scope != later.scope or \
                            any(earlier.position <= at < later.position for at in assigned_at):
                        continue
                    if self.pair_fires(earlier, later):
                        return True
        return False

    @staticmethod
    def pair_fires(first: _Use, second: _Use) -> bool:
        if isinstance(first.statement, ast.Assert) or isinstance(second.statement, ast.Assert):
            return False
        if first.derives:
            return first.key not in _statement_targets(first.statement)
        if second.derives:
            return False
        return not (first.function in _ALIGNED and second.function in _ALIGNED)


def _statement_targets(statement: ast.stmt) -> list[str]:
    if isinstance(statement, ast.Assign):
        return [name for target in statement.targets for name in _target_names(target)]
    if isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
        return _target_names(statement.target)
    return []
