"""What the shared semantics know about values, scopes and flow, asked directly."""

from __future__ import annotations

import libcst as cst

from eqxlint.linter import Settings, fix_text
from eqxlint.rules import all_rules
from eqxlint.rules.base import dedent
from eqxlint.semantics import Semantics, Value
from eqxlint.semantics.syntax import descendants


def _semantics(source: str) -> Semantics:
    return Semantics.of(cst.parse_module(dedent(source)))


def _value_of(semantics: Semantics, name: str) -> Value | None:
    binding = semantics.lookup(name, semantics.module_scope, 1 << 62)
    assert binding is not None, name
    return semantics.infer_binding(binding)


def _leaves(source: str, name: str) -> list[tuple[str, str]]:
    semantics = _semantics(source)
    return [(leaf.path, leaf.kind) for leaf in semantics.leaves(_value_of(semantics, name))]


CNN = """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    class CNN(eqx.Module):
        layers: list

        def __init__(self, key):
            key1, key2 = jax.random.split(key)
            self.layers = [eqx.nn.Conv2d(1, 3, 4, key=key1), eqx.nn.MaxPool2d(2),
                           jax.nn.relu, jnp.ravel, eqx.nn.Linear(1728, 10, key=key2)]

    model = CNN(key)
"""


def test_a_list_field_holds_the_functions_it_is_given() -> None:
    leaves = _leaves(CNN, "model")
    assert ("CNN.layers[2]", "function") in leaves
    assert ("CNN.layers[3]", "function") in leaves
    assert ("CNN.layers[1].operation", "function") in leaves  # MaxPool2d, measured


def test_the_value_given_speaks_before_the_annotation() -> None:
    source = """
        import equinox as eqx
        import jax.numpy as jnp

        class Model(eqx.Module):
            steady_state: float
            depth: int

        given = Model(jnp.array(0.0), 3)
        shown = Model(load(), load())
    """
    assert _leaves(source, "given") == [("Model.steady_state", "inexact_array"),
                                        ("Model.depth", "python_int")]
    assert _leaves(source, "shown") == []  # shown, not known: nothing proven


def test_an_annotation_speaks_when_no_code_gives_the_field_a_value() -> None:
    source = """
        import equinox as eqx
        from typing import Callable

        class Net(eqx.Module):
            activation: Callable
            depth: int

        def evaluate(model: Net):
            return model

        model = evaluate(unknown)
    """
    semantics = _semantics(source)
    function = semantics.function_list[0]
    param = function.params.params[0]
    value = semantics.annotation_value(param.annotation.annotation)  # type: ignore[union-attr]
    assert [(l.path, l.kind) for l in semantics.leaves(value)] == [
        ("Net.activation", "function"), ("Net.depth", "python_int")]


def test_init_parameters_are_bound_to_the_constructor_arguments() -> None:
    source = """
        import equinox as eqx
        import jax

        class Block(eqx.Module):
            act: object
            scale: float

            def __init__(self, act, scale=0.5):
                self.act = act
                self.scale = scale

        a = Block(jax.nn.gelu)
        b = Block(jax.numpy.zeros(()), scale=jax.numpy.ones(()))
    """
    assert _leaves(source, "a") == [("Block.act", "function"), ("Block.scale", "python_float")]
    assert _leaves(source, "b") == [("Block.act", "inexact_array"),
                                    ("Block.scale", "inexact_array")]


def test_values_are_followed_through_factories_and_tree_utilities() -> None:
    source = """
        import dataclasses
        import equinox as eqx
        import optax

        def make_model(cfg):
            return eqx.nn.MLP(2, 2, 8, 2, key=cfg.key)

        def build_optimizer(lr):
            return optax.adamw(lr)

        model = make_model(cfg)
        loaded = eqx.tree_deserialise_leaves("m.eqx", model)
        evaluated = eqx.nn.inference_mode(loaded)
        moved = eqx.tree_at(lambda m: m.layers, evaluated, new_layers)
        replaced = dataclasses.replace(moved)
        combined = eqx.combine(*eqx.partition(replaced, eqx.is_array))
        optim = build_optimizer(1e-3)
    """
    semantics = _semantics(source)
    for name in ("model", "loaded", "evaluated", "moved", "replaced"):
        value = _value_of(semantics, name)
        assert value is not None and value.cls == "equinox.nn.MLP", name
    optim = _value_of(semantics, "optim")
    assert optim is not None and optim.kind == "optimizer" and optim.factories == ("adamw",)


def test_names_resolve_in_the_scope_that_binds_them() -> None:
    source = """
        def loss(model, x):
            return model(x)

        def train(xs):
            def loss(v):
                return v
            return loss(xs)

        def other():
            return loss(1, 2)
    """
    semantics = _semantics(source)
    outer, train, inner, other = semantics.function_list
    inner_call = next(site for site in semantics.calls
                      if semantics.scope_of_node[id(train)] is site.scope)
    assert semantics.function_named("loss", inner_call.scope, inner_call.seq) is inner
    outer_call = next(site for site in semantics.calls
                      if semantics.scope_of_node[id(other)] is site.scope)
    assert semantics.function_named("loss", outer_call.scope, outer_call.seq) is outer


def test_a_parameter_holds_what_every_caller_passes() -> None:
    source = """
        import equinox as eqx

        def step(params, updates):
            return eqx.apply_updates(params, updates)

        params, static = eqx.partition(model, eqx.is_array)
        step(params, updates)
    """
    semantics = _semantics(source)
    function = semantics.function_list[0]
    scope = semantics.scope_of_node[id(function)]
    value = semantics.infer_binding(scope.bindings["params"][0])
    assert value is not None and value.kind == "filtered"


def test_the_filter_jit_swap_is_not_offered_where_a_traced_counter_would_go_static() -> None:
    source = """
        import equinox as eqx
        import jax
        from typing import Callable

        class TrainState(eqx.Module):
            activation: Callable
            step: int

        @jax.jit
        def update(state: TrainState):
            return state

        update(TrainState(jax.nn.relu, 0))
    """
    settings = Settings(rules=list(all_rules()), fix=True, unsafe_fixes=True)
    fixed, applied, remaining, _ = fix_text(dedent(source), "x.py", settings)
    assert applied == 0 and fixed == dedent(source)
    [finding] = [d for d in remaining if d.code == "EQX201"]
    assert finding.fix is None and "retrace" in finding.hint


def test_library_constants_and_dtypes_are_not_functions() -> None:
    source = """
        import equinox as eqx
        import jax.numpy as jnp
        import math

        class Bounds(eqx.Module):
            low: float
            high: float
            dtype: object
            act: object

        bounds = Bounds(-jnp.inf, math.pi, jnp.float32, jnp.tanh)
    """
    assert _leaves(source, "bounds") == [("Bounds.low", "python_float"),
                                         ("Bounds.high", "python_float"),
                                         ("Bounds.act", "function")]


def test_an_import_rebound_by_a_class_of_the_file_is_the_file_s_class_from_there_on() -> None:
    semantics = _semantics("""
        import equinox as eqx
        from equinox.nn import MLP, Linear

        before = MLP(2, 2, 4, 1, key=key)

        class MLP(eqx.Module):
            pass

        def build():
            return MLP()

        after = MLP()
        layer = Linear(2, 2, key=key)
        from equinox.nn import MLP
        again = MLP(2, 2, 4, 1, key=key)
        """)
    assert _value_of(semantics, "before").cls == "equinox.nn.MLP"
    assert _value_of(semantics, "after").cls == "<local>.MLP"
    assert _value_of(semantics, "layer").cls == "equinox.nn.Linear"
    assert _value_of(semantics, "again").cls == "equinox.nn.MLP"
    sites = {semantics.code_of(site.node): site.qualname for site in semantics.calls}
    assert sites["MLP()"] == "<local>.MLP"  # in build(), which runs after the class exists
    assert sites["MLP(2, 2, 4, 1, key=key)"] == "equinox.nn.MLP"


def test_a_name_imported_twice_means_at_each_use_the_import_before_it() -> None:
    semantics = _semantics("""
        import equinox as eqx
        from jaxtyping import Array, Int

        class Model(eqx.Module):
            index: Int[Array, "n"]

        def later():
            return Int

        from ._indirection import Int as Int
        """)
    annotation = descendants(semantics.module, cst.Subscript)[0]
    assert semantics.qualname(annotation.value) == "jaxtyping.Int"
    returned = descendants(semantics.module, cst.Return)[0]
    assert semantics.qualname(returned.value) == "._indirection.Int"  # run after both


def test_names_rebound_after_the_first_one_asked_about_are_placed_too() -> None:
    # `field(static=True)` is asked about during the walk, before `Int` is imported again.
    semantics = _semantics("""
        import equinox as eqx
        from jaxtyping import Int
        from dataclasses import field
        from equinox import field

        class Model(eqx.Module):
            index: Int = field(static=True)

        from ._indirection import Int
        """)
    index = semantics.classes["Model"].fields["index"]
    assert index.static
    assert semantics.qualname(index.annotation) == "jaxtyping.Int"
