"""How long check_model takes on a 100-layer MLP, and what it costs beyond a bare tree walk.

    python benchmarks/check_model_speed.py [--depth 100] [--width 64] [--repeat 5]

Prints a markdown table: best of `--repeat` runs after one warm-up, for check_model
with and without an optimizer, assert_trainable, and jax.tree_util.tree_leaves as
the floor. (check_model reads values only for EQX601: one boolean per array comes
to the host. With `optim=`, `optim.init` and `optim.update` are traced once on
shapes, which is most of that row.)
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Callable

import equinox as eqx
import jax
import optax

import eqxlint


def best_of(repeat: int, run: Callable[[], object]) -> float:
    run()  # warm-up: first-call compilation of jnp.isfinite etc.
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()

    model = eqx.nn.MLP(options.width, options.width, options.width, options.depth,
                       key=jax.random.PRNGKey(0))
    optim = optax.adam(1e-3)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
    arrays = len([x for x in jax.tree_util.tree_leaves(model) if eqx.is_array(x)])
    rows = [
        ("jax.tree_util.tree_leaves(model) (floor)", lambda: jax.tree_util.tree_leaves(model)),
        ("check_model(model)", lambda: eqxlint.check_model(model)),
        ("check_model(model, mode='eval')", lambda: eqxlint.check_model(model, mode="eval")),
        ("check_model(model, opt_state=..., optim=...)",
         lambda: eqxlint.check_model(model, opt_state=opt_state, optim=optim)),
        ("assert_trainable(model)", lambda: eqxlint.assert_trainable(model)),
    ]
    print(f"MLP depth {options.depth}, width {options.width}: {arrays} arrays; "
          f"jax {jax.__version__}, equinox {eqx.__version__}, {platform.machine()}, "
          f"{platform.python_version()}\n")
    print("| what | best of %d (ms) |" % options.repeat)
    print("| --- | ---: |")
    for label, run in rows:
        print(f"| {label} | {best_of(options.repeat, run) * 1000:.1f} |")


if __name__ == "__main__":
    main()
