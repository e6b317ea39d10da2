"""EQX401: weights paired with a model's leaves by position instead of by name."""

from __future__ import annotations

from eqxlint.rules.base import Rule


class OrderBasedWeightLoading(Rule):
    code = "EQX401"
    name = "order-based-weight-loading"
    summary = "PyTorch weights paired with the model's leaves by position, not by name"
    static = False
    what_it_does = """
        Checks weights from a PyTorch `state_dict()`, `torch.load`, safetensors or `.npz`
        against an Equinox model by name and shape: missing keys, unexpected keys, shape
        mismatches (and transposes), BatchNorm statistics that belong in `eqx.nn.State`,
        and a count mismatch.
    """
    why_bad = """
        `zip(sd.values(), jax.tree_util.tree_leaves(model))` trusts two orders to agree,
        and they do not: safetensors sorts its keys, BatchNorm statistics are in
        `eqx.nn.State` rather than the model, and a `.reshape(leaf.shape)` hides a
        transposed weight. Every weight may land on the wrong layer without a sound.
    """
    example = """
        leaves, treedef = jax.tree_util.tree_flatten(model)
        model = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(v) for v in sd.values()])
    """
    use_instead = """
        from eqxlint.interop import load_state_dict

        model = load_state_dict(model, sd, key_map={"layers.0.weight": "fc1.weight"})
    """
    fix_safety = "No automatic fix: names must be matched, and `key_map` says how."
    runtime = """
        `check_state_dict(model, state_dict, key_map=...)` compares by name and lists every
        problem with the pytree path and the key. `eqxlint.interop.load_state_dict` loads
        by name, checks shapes, applies Equinox's layouts (a Conv bias is `(out, 1, 1)`),
        and raises listing every problem; `eqxlint.interop.state_dict(model, state)` names
        every array the way PyTorch does (`layers.0.weight`).
    """
    real_error = "(none: the weights load without a sound)"
    known_limits = "Runtime only for now: the static side described in RULES.md is not built yet."
