"""EQX302: a model with stateful layers (BatchNorm, SpectralNorm) and no eqx.nn.State."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from eqxlint.diagnostics import Diagnostic
from eqxlint.knowledge import equinox_nn
from eqxlint.rules.base import Bad, Finding, Good, PROJECT_IMPORT, Rule
from eqxlint.semantics import Semantics, Value, keyword_arg, positional_args

if TYPE_CHECKING:
    from eqxlint.runtime.checker import RuntimeContext


class StatefulModelWithoutState(Rule):
    code = "EQX302"
    name = "stateful-model-without-state"
    summary = "A model with BatchNorm/SpectralNorm/StateIndex used without its eqx.nn.State"
    triggers = ((b"BatchNorm", b"SpectralNorm", b"StateIndex", PROJECT_IMPORT),)
    what_it_does = """
        Checks that a model holding `eqx.nn.StateIndex` leaves (inside `eqx.nn.BatchNorm`,
        `eqx.nn.SpectralNorm`, or a layer of your own) comes with its `eqx.nn.State`.
        Statically: such a module, built with its plain constructor in the file, called
        with fewer positional arguments than its `__call__` needs and no `state=`
        (`model(x)` where `__call__(self, x, state)`).
    """
    why_bad = """
        Stateful layers keep their running statistics outside the model, in an
        `eqx.nn.State` built with it. Without it, the first call fails (the error is
        quoted below); with the state of another model, `state.get` fails deep inside.
    """
    example = """
        bn = eqx.nn.BatchNorm(16, axis_name="batch")
        y = bn(x)
    """
    use_instead = """
        bn, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(16, axis_name="batch")
        y, state = bn(x, state)
    """
    fix_safety = "No automatic fix: where the state comes from is the author's choice."
    runtime = """
        `check_model(model, state=state)` reports each `StateIndex` of the model that the
        given state has no entry for, or an entry of the wrong shape (a BatchNorm's
        statistics for another width). A model checked without `state=` is not EQX302:
        holding BatchNorm is normal, and the caller may simply not have passed the state.
    """
    real_error = "TypeError: BatchNorm.__call__() missing 1 required positional argument: 'state'"
    known_limits = """
        Static: only calls of a name bound in the same function to a constructor of a
        stateful module are checked; a model that is built here and used elsewhere, or a
        `__call__` that takes `*args`, is left to the runtime check.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx

            def build():
                return eqx.nn.BatchNorm(16, axis_name="batch")

            layer = build()
            layer(x)  # expect: EQX302
        """, "a factory that returns a BatchNorm (followed through its return)"),
        Bad("""
            import equinox as eqx

            bn = eqx.nn.BatchNorm(16, axis_name="batch")
            y = bn(x)  # expect: EQX302
        """, "a BatchNorm called without state"),
        Bad("""
            import equinox as eqx

            class Net(eqx.Module):
                norm: eqx.nn.BatchNorm
                linear: eqx.nn.Linear

                def __call__(self, x, state):
                    x, state = self.norm(x, state)
                    return self.linear(x), state

            model = Net(norm, linear)
            out = model(x)  # expect: EQX302
        """, "a module of the file whose __call__ takes the state"),
        Bad("""
            from equinox.nn import SpectralNorm, Linear

            def build(linear_key, norm_key):
                layer = SpectralNorm(Linear(2, 2, key=linear_key), "weight", key=norm_key)
                return layer(x)  # expect: EQX302
        """, "SpectralNorm, from-imports"),
        Bad("""
            import equinox as eqx

            class Block(eqx.Module):
                bn: eqx.nn.BatchNorm

                def __call__(self, x, state, *, key=None):
                    return self.bn(x, state)

            class Net(eqx.Module):
                block: Block

                def __call__(self, x, state):
                    return self.block(x, state)

            net = Net(Block(bn))
            y = net(x, key=k)  # expect: EQX302
        """, "nested stateful module, keyword but no state"),
        Bad("""
            import equinox as eqx
            import jax

            class Model(eqx.Module):
                index: eqx.nn.StateIndex

                def __call__(self, x, state):
                    return x, state

            model = Model(eqx.nn.StateIndex(jax.numpy.zeros(3)))
            model(x)  # expect: EQX302
        """, "a StateIndex of the user's"),
        Bad("""
            import equinox

            class Trainer:
                def run(self, x):
                    norm = equinox.nn.BatchNorm(3, "batch")
                    return norm(x)  # expect: EQX302
        """, "inside a method"),
    )
    good_examples = (
        Good("""
            import equinox as eqx

            model, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(16, axis_name="batch")
            y, state = model(x, state)
        """, "made with its state"),
        Good("""
            import equinox as eqx

            bn = eqx.nn.BatchNorm(16, axis_name="batch")
            state = eqx.nn.State(bn)
            y, state = bn(x, state)
        """, "state passed"),
        Good("""
            import equinox as eqx

            bn = eqx.nn.BatchNorm(16, axis_name="batch")
            y, new_state = bn(x, state=state)
        """, "state by keyword"),
        Good("""
            import equinox as eqx

            model = eqx.nn.MLP(2, 2, 8, 2, key=key)
            y = model(x)
        """, "not stateful"),
        Good("""
            import equinox as eqx

            class Net(eqx.Module):
                norm: eqx.nn.BatchNorm

                def __call__(self, x, state=None):
                    return x

            model = Net(norm)
            model(x)
        """, "__call__ does not need the state"),
        Good("""
            import equinox as eqx

            bn = eqx.nn.BatchNorm(16, axis_name="batch")
            ys = jax.vmap(bn, axis_name="batch", in_axes=(0, None))(xs, state)
        """, "called through vmap"),
        Good("""
            import equinox as eqx

            bn = eqx.nn.BatchNorm(16, axis_name="batch")
            bn = make_inference(bn)
            y = bn(x)
        """, "rebound to something else"),
        Good("""
            import equinox as eqx

            def build(kind):
                if kind == "bn":
                    return eqx.nn.BatchNorm(16, axis_name="batch")
                return eqx.nn.LayerNorm(16)

            layer = build(kind)
            layer(x)
        """, "a factory whose returns disagree: the model's kind is not visible"),
        Good("""
            import equinox as eqx

            class Net(eqx.Module):
                norm: eqx.nn.BatchNorm

                def __call__(self, *args):
                    return args

            Net(norm)(x)
        """, "star parameters"),
    )

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        if not semantics.mentions("BatchNorm", "SpectralNorm", "StateIndex"):
            return  # no stateful layer here or in the project modules imported
        for site in semantics.calls:
            func = site.node.func
            if not isinstance(func, (cst.Name, cst.Attribute)) or \
                    keyword_arg(site.node, "state") is not None:
                continue
            value = semantics.infer(func, at=site)
            if value is None or value.kind != "module" or value.cls is None:
                continue
            layer = stateful_layer(semantics, value)
            needed = _positional_arguments_needed(semantics, value)
            if layer is None or needed is None:
                continue
            if len(positional_args(site.node)) >= needed or any(a.star for a in site.node.args):
                continue
            name = semantics.code_of(func)
            yield Finding(
                node=site.node,
                message=(f"`{name}` holds {layer}, whose running statistics live in an "
                         f"`eqx.nn.State`, and it is called without one"),
                hint=f"Build both with `{name}, state = eqx.nn.make_with_state(...)(...)` and "
                     f"call `{name}(x, state)`",
            )

    def check_runtime(self, context: "RuntimeContext") -> Iterator[Diagnostic]:
        import equinox as eqx

        if context.state is None:
            return  # holding BatchNorm is normal; only a given state can be wrong
        modules = dict(context.modules)
        for path, index in context.modules:
            if not isinstance(index, eqx.nn.StateIndex):
                continue
            try:
                entry = context.state.get(index)
            except Exception:
                yield context.diagnostic(
                    self, path, "has no entry in the given state: the state was made for "
                    "another model", "Rebuild it for this model: `state = eqx.nn.State(model)`")
                continue
            owner = modules.get(path.rsplit(".", 1)[0])
            expected = _expected_shapes(owner, index)
            got = _runtime_shapes(entry)
            if expected is not None and got != expected:
                yield context.diagnostic(
                    self, path, f"has an entry of shape {_show(got)} in the given state, but "
                    f"the model needs {_show(expected)}: the state was made for another model",
                    "Rebuild it for this model: `model, state = eqx.nn.make_with_state(Net)(...)`")


def _runtime_shapes(entry: object) -> list[tuple[int, ...]]:
    import jax

    return [tuple(getattr(leaf, "shape", ())) for leaf in jax.tree_util.tree_leaves(entry)]


def _expected_shapes(owner: object, index: object) -> Optional[list[tuple[int, ...]]]:
    """The shapes the model's own layer keeps under `index`, when they can be known."""
    import equinox as eqx

    if isinstance(owner, eqx.nn.BatchNorm) and any(
            index is getattr(owner, name, None) for name in ("ema_state_index", "batch_state_index")):
        size = (int(owner.input_size),)
        return [size, size]
    init = getattr(index, "init", None)
    if init is None or type(init).__name__ == "_Sentinel":
        return None  # make_with_state drops the initial value: nothing to compare with
    return _runtime_shapes(init)


def _show(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join(str(shape) for shape in shapes)


def stateful_layer(semantics: Semantics, value: Value, seen: Optional[set[int]] = None
                    ) -> Optional[str]:
    """Name the stateful layer a module value holds (`an eqx.nn.BatchNorm`), if any.

    Fields are followed by their annotations and by what `__init__` assigns to them, in
    the file that defines the class (this one or a project module it imports).
    """
    cls = value.cls or ""
    if cls.startswith("equinox.nn."):
        name = cls[len("equinox.nn."):]
        return f"an `eqx.nn.{name}`" if name in equinox_nn.STATEFUL else None
    ref = semantics.class_ref_of(value)
    if ref is None:
        return None
    owner, info = ref
    seen = set() if seen is None else seen
    if id(info) in seen:
        return None
    seen.add(id(info))
    for field_info in info.fields.values():
        held: list[Value] = []
        if field_info.annotation is not None:
            annotated = owner.annotation_value(field_info.annotation)
            if annotated is not None and annotated.kind == "module":
                held.append(annotated)
        for binding in info.self_assignments.get(field_info.name, []):
            assigned = owner.infer_binding(binding)
            if assigned is not None and assigned.kind == "module":
                held.append(assigned)
        for inner in held:
            found = stateful_layer(inner.owner or owner, inner, seen)
            if found:
                return found
    return None


def _positional_arguments_needed(semantics: Semantics, value: Value) -> Optional[int]:
    """How many positional arguments a call of the module needs (None: unknown)."""
    if (value.cls or "").startswith("equinox.nn."):
        return 2  # (x, state) for BatchNorm, SpectralNorm and StateIndex users
    info = semantics.class_info(value)
    if info is None:
        return None
    call = info.methods.get("__call__")
    if call is None:
        return None
    params = call.params
    if isinstance(params.star_arg, cst.Param):
        return None
    required = [p for p in list(params.posonly_params) + list(params.params)
                if p.default is None]
    return max(0, len(required) - 1)  # without self
