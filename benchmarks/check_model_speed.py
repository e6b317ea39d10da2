"""How long the runtime checks take on a 100-layer MLP, against what they must cost anyway.

    python benchmarks/check_model_speed.py [--depth 100] [--width 64] [--repeat 5]

Prints markdown tables, best of `--repeat` runs after one warm-up:
- check_model with and without an optimizer, and assert_trainable, against
  jax.tree_util.tree_leaves (the floor: a walk over the leaves). check_model reads values
  only for EQX601: one reduction and one boolean per array. With `optim=`, `optim.init`
  and `optim.update` are traced once on shapes, which is most of that row.
- check_step on the model's training step (wrapped in eqx.filter_jit) against a bare
  trace of the same step: `eqx.filter_eval_shape(step, ...)` (the model holds its
  activation functions, which `jax.eval_shape` cannot take), and on the same step over
  the trainable arrays only against `jax.eval_shape(step, ...)`. Each run traces a fresh
  step function, so no run reuses another's trace cache: the cost of one trace (no
  warm-up; best of `--step-repeat`).
- check_model on pytrees of 1,000 and 10,000 arrays: the cost must grow linearly, as a
  bare walk with paths does (its ratio is printed beside, for the machine's noise).
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import eqxlint


def best_of(repeat: int, run: Callable[[], object], warm_up: bool = True) -> float:
    if warm_up:
        run()  # first-call compilation of jnp.isfinite etc.
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _loss(model: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def model_step(optim: optax.GradientTransformation) -> Callable[..., Any]:
    """A fresh training step over the whole model (a new function: a new trace)."""
    @eqx.filter_jit
    def step(model, opt_state, x, y):
        grads = eqx.filter_grad(_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state,
                                          eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), opt_state
    return step


def params_step(optim: optax.GradientTransformation, static: Any) -> Callable[..., Any]:
    """A fresh training step over the trainable arrays only, the rest closed over."""
    @jax.jit
    def step(params, opt_state, x, y):
        grads = jax.grad(lambda p: _loss(eqx.combine(p, static), x, y))(params)
        updates, opt_state = optim.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--step-repeat", type=int, default=3,
                        help="runs of each step row (each traces a fresh step: no warm-up)")
    options = parser.parse_args()

    model = eqx.nn.MLP(options.width, options.width, options.width, options.depth,
                       key=jax.random.PRNGKey(0))
    optim = optax.adam(1e-3)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optim.init(params)
    x = jnp.ones((32, options.width))
    y = jnp.ones((32, options.width))
    arrays = len([leaf for leaf in jax.tree_util.tree_leaves(model) if eqx.is_array(leaf)])
    print(f"MLP depth {options.depth}, width {options.width}: {arrays} arrays; "
          f"jax {jax.__version__}, equinox {eqx.__version__}, optax {optax.__version__}, "
          f"{platform.machine()}, Python {platform.python_version()}\n")

    def table(rows: list[tuple[str, Callable[[], object]]], repeat: int = options.repeat,
              warm_up: bool = True) -> dict[str, float]:
        print(f"| what | best of {repeat} (ms) |")
        print("| --- | ---: |")
        measured = {}
        for label, run in rows:
            measured[label] = best_of(repeat, run, warm_up)
            print(f"| {label} | {measured[label] * 1000:.1f} |")
        print()
        return measured

    table([
        ("jax.tree_util.tree_leaves(model) (floor)", lambda: jax.tree_util.tree_leaves(model)),
        ("check_model(model)", lambda: eqxlint.check_model(model)),
        ("check_model(model, mode='eval')", lambda: eqxlint.check_model(model, mode="eval")),
        ("check_model(model, opt_state=..., optim=...)",
         lambda: eqxlint.check_model(model, opt_state=opt_state, optim=optim)),
        ("assert_trainable(model)", lambda: eqxlint.assert_trainable(model)),
    ])

    steps = table([
        ("eqx.filter_eval_shape(step, model, opt_state, x, y)",
         lambda: eqx.filter_eval_shape(model_step(optim), model, opt_state, x, y)),
        ("check_step(step, model, opt_state, x, y)",
         lambda: eqxlint.check_step(model_step(optim), model, opt_state, x, y)),
        ("jax.eval_shape(step, params, opt_state, x, y)",
         lambda: jax.eval_shape(params_step(optim, static), params, opt_state, x, y)),
        ("check_step(step, params, opt_state, x, y)",
         lambda: eqxlint.check_step(params_step(optim, static), params, opt_state, x, y)),
    ], repeat=options.step_repeat, warm_up=False)
    labels = list(steps)
    print(f"check_step / bare trace: {steps[labels[1]] / steps[labels[0]]:.2f}x (model step), "
          f"{steps[labels[3]] / steps[labels[2]]:.2f}x (params step)\n")

    small = [jnp.full((4,), float(i)) for i in range(1_000)]
    large = [jnp.full((4,), float(i)) for i in range(10_000)]
    scaling = table([
        ("jax.tree_util.tree_flatten_with_path(1,000 arrays) (floor)",
         lambda: jax.tree_util.tree_flatten_with_path(small)),
        ("jax.tree_util.tree_flatten_with_path(10,000 arrays) (floor)",
         lambda: jax.tree_util.tree_flatten_with_path(large)),
        ("check_model(1,000 arrays)", lambda: eqxlint.check_model(small)),
        ("check_model(10,000 arrays)", lambda: eqxlint.check_model(large)),
    ])
    floor_small, floor_large, small_time, large_time = scaling.values()
    print(f"10x the arrays: check_model {large_time / small_time:.1f}x the time; "
          f"the floor (a walk with paths) {floor_large / floor_small:.1f}x")


if __name__ == "__main__":
    main()
