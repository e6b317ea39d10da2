"""eqxlint's demo: a small, complete Equinox training script.

An MLP with a BatchNorm learns y = sin(x) with Adam, then is compared with an
untrained baseline. train_buggy.py holds the three mistakes eqxlint is for;
train_fixed.py is what `eqxlint --fix examples/train_buggy.py` makes of it.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax


class Regressor(eqx.Module):
    """An MLP encoder, a BatchNorm and a linear head: a model that carries state."""

    encoder: eqx.nn.MLP
    norm: eqx.nn.BatchNorm
    head: eqx.nn.Linear

    def __init__(self, key: jax.Array) -> None:
        encoder_key, head_key = jax.random.split(key)
        self.encoder = eqx.nn.MLP(1, 16, width_size=32, depth=1, activation=jax.nn.tanh,
                                  key=encoder_key)
        self.norm = eqx.nn.BatchNorm(16, axis_name="batch", mode="batch")
        self.head = eqx.nn.Linear(16, 1, key=head_key)

    def __call__(self, x: jax.Array, state: eqx.nn.State) -> tuple[jax.Array, eqx.nn.State]:
        hidden, state = self.norm(self.encoder(x), state)
        return self.head(hidden), state


def loss_fn(model: Regressor, state: eqx.nn.State, x: jax.Array, y: jax.Array):
    batched = jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
    pred, state = batched(x, state)
    return jnp.mean((pred - y) ** 2), state


@eqx.filter_jit
def train_step(model, state, opt_state, x, y):
    (loss, state), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model, state, x, y)
    updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
    model = eqx.apply_updates(model, updates)
    return model, state, opt_state, loss


model_key, baseline_key, data_key = jax.random.split(jax.random.PRNGKey(0), 3)
x = jax.random.uniform(data_key, (64, 1), minval=-3.0, maxval=3.0)
y = jnp.sin(x)

model, state = eqx.nn.make_with_state(Regressor)(model_key)
optim = optax.adam(1e-2)
opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))

for step in range(50):
    model, state, opt_state, loss = train_step(model, state, opt_state, x, y)
print(f"trained loss  {float(loss):.4f}")

# The same network, untrained, as a baseline.
baseline, baseline_state = eqx.nn.make_with_state(Regressor)(baseline_key)
baseline_loss, _ = loss_fn(baseline, baseline_state, x, y)
print(f"baseline loss {float(baseline_loss):.4f}")
