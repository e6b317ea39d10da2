"""check_step: a dry run of the user's training step on shapes, compared in and out.

The step is traced once (`jax.make_jaxpr` on abstract values: what `jax.eval_shape`
does, no compute and no data moved). What it returns is matched to what it was given
by tree structure and type, never by name: the returned value shaped like the given
model is the new model, the one holding the same optax states is the new optimizer
state, the `eqx.nn.State` is the new state. Then:

- EQX101: a returned model leaf is None where the given model held a callable or a
  Python value (`eqx.apply_updates` on a filtered model);
- EQX503: the returned model, optimizer state or `eqx.nn.State` *is* the given one,
  leaf for leaf (the jaxpr forwards the inputs to the outputs): nothing trains;
- EQX603: the returned tree differs in structure, shape or dtype from the given one,
  so the next call retraces or fails;
- a failure inside an optax call is translated into the code that explains it
  (EQX103 update without params, EQX106 the whole model as params, EQX102/EQX104
  optimizer state built from non-trainable leaves; EQX201 `jax.jit` on a module).
An error eqxlint cannot explain is re-raised as the step raised it.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import equinox as eqx
import jax

from eqxlint.diagnostics import Diagnostic, Diagnostics, Fix, Location
from eqxlint.runtime.tree import describe, format_path, is_array_like, is_inexact_array_like

FILTERED_PARAMS = "eqx.filter(model, eqx.is_inexact_array)"
LIBRARY_PARTS = ("/optax/", "/jax/", "/jaxlib/", "/equinox/", "/eqxlint/", "/jaxtyping/")


def _is_none(node: Any) -> bool:
    return node is None


# -- what a value is --------------------------------------------------------------------------


def _is_optax_node(node: Any) -> bool:
    return type(node).__module__.split(".")[0] == "optax"


def _role_of(value: Any) -> Optional[str]:
    """`model`, `opt_state` or `state` for a value a training step takes; None otherwise."""
    if isinstance(value, eqx.nn.State):
        return "state"
    if isinstance(value, eqx.Module):
        if any(is_inexact_array_like(leaf) for leaf in jax.tree_util.tree_leaves(value)):
            return "model"
        return None
    if _looks_like_opt_state(value):
        return "opt_state"
    return None


@dataclass
class _Given:
    """One argument of the step that eqxlint knows how to follow through it."""

    role: str  # model / opt_state / state
    root: str  # the path root in messages: `model`, `opt_state`, `state`
    value: Any
    returned: Any = None
    returned_root: str = ""
    exact: bool = False  # the returned value has the given one's structure


@dataclass
class _Trace:
    """The step's output on shapes, and which outputs are inputs passed straight through."""

    output: Any
    output_index: dict[int, int]  # id(output leaf) -> position among the jaxpr's outputs
    forwarded: list[Optional[int]]  # jaxpr output -> the input it is, if it is one
    inputs: list[Any] = field(default_factory=list)  # the array leaves given, in order


# -- the dry run ------------------------------------------------------------------------------


class _Forwarding:
    """Which outputs of a jaxpr are its inputs, looking through nested `jit` calls.

    Each jaxpr's index (inputs by identity, the equation producing each variable) is built
    once, so the whole question costs one pass over the equations.
    """

    def __init__(self) -> None:
        self._indexes: dict[int, tuple[dict[int, int], dict[int, tuple[Any, int]]]] = {}

    def _index(self, jaxpr: Any) -> tuple[dict[int, int], dict[int, tuple[Any, int]]]:
        key = id(jaxpr)
        if key not in self._indexes:
            inputs = {id(var): position for position, var in enumerate(jaxpr.invars)}
            producers = {id(var): (equation, position) for equation in jaxpr.eqns
                         for position, var in enumerate(equation.outvars)}
            self._indexes[key] = (inputs, producers)
        return self._indexes[key]

    def source(self, jaxpr: Any, var: Any) -> Optional[int]:
        """The position among `jaxpr.invars` of the input that `var` is, if it is one."""
        from jax.extend import core as jex_core

        if isinstance(var, jex_core.Literal):
            return None
        inputs, producers = self._index(jaxpr)
        if id(var) in inputs:
            return inputs[id(var)]
        produced = producers.get(id(var))
        if produced is None:
            return None
        equation, position = produced
        inner = equation.params.get("jaxpr") or equation.params.get("call_jaxpr")
        inner = getattr(inner, "jaxpr", inner)  # ClosedJaxpr -> Jaxpr
        if inner is None or not hasattr(inner, "outvars") \
                or len(inner.outvars) != len(equation.outvars) \
                or len(inner.invars) != len(equation.invars):
            return None
        inner_input = self.source(inner, inner.outvars[position])
        if inner_input is None:
            return None
        return self.source(jaxpr, equation.invars[inner_input])


def _dry_run(step: Callable[..., Any], args: tuple, kwargs: dict) -> _Trace:
    """Trace `step(*args, **kwargs)` once on shapes; arrays in, ShapeDtypeStructs out."""
    dynamic, static = eqx.partition((args, kwargs), is_array_like)
    leaves, definition = jax.tree_util.tree_flatten(dynamic)
    static_output: list[Any] = []

    def flat_step(*arrays: Any) -> Any:
        call_args, call_kwargs = eqx.combine(jax.tree_util.tree_unflatten(definition, arrays),
                                             static)
        output = step(*call_args, **call_kwargs)
        dynamic_output, static_part = eqx.partition(output, eqx.is_array)
        static_output.append(static_part)
        return dynamic_output

    abstract = [jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                     weak_type=bool(getattr(leaf, "weak_type", False)))
                for leaf in leaves]
    closed, shapes = jax.make_jaxpr(flat_step, return_shape=True)(*abstract)
    output = eqx.combine(shapes, static_output[-1])
    output_leaves = jax.tree_util.tree_leaves(shapes)
    jaxpr = closed.jaxpr
    forwarding = _Forwarding()
    forwarded = [forwarding.source(jaxpr, var) for var in jaxpr.outvars]
    return _Trace(output, {id(leaf): i for i, leaf in enumerate(output_leaves)}, forwarded,
                  leaves)


# -- matching what comes out to what went in ---------------------------------------------------


def _candidates(output: Any) -> Iterator[tuple[str, Any]]:
    """The output and every value inside its tuples, lists and dicts, outermost first."""
    pending: list[tuple[str, Any]] = [("", output)]
    while pending:
        where, node = pending.pop(0)
        yield where, node
        if isinstance(node, eqx.Module) or isinstance(node, eqx.nn.State) or _is_optax_node(node):
            continue
        if isinstance(node, (list, tuple)):
            pending.extend((f"{where}[{i}]", item) for i, item in enumerate(node))
        elif isinstance(node, dict):
            pending.extend((f"{where}[{key!r}]", item) for key, item in node.items())


def _padded(tree: Any) -> Any:
    return jax.tree_util.tree_structure(tree, is_leaf=_is_none)


def _same_kind(given: _Given, value: Any) -> bool:
    if given.role == "state":
        return isinstance(value, eqx.nn.State)
    if given.role in ("model", "params"):
        return type(value) is type(given.value)
    return _looks_like_opt_state(value)


def _looks_like_opt_state(value: Any) -> bool:
    """An optax state (a NamedTuple of optax's), or a tuple of them (`optax.chain`'s)."""
    return _is_optax_node(value) or (
        isinstance(value, (list, tuple)) and len(value) > 0
        and all(_is_optax_node(item) for item in value))


def _none_pattern(tree: Any) -> tuple[bool, ...]:
    return tuple(leaf is None for leaf in jax.tree_util.tree_leaves(tree, is_leaf=_is_none))


def _match(givens: list[_Given], output: Any) -> None:
    """Pair each given value with the returned value of its structure (else of its kind).

    Three passes: the same structure with None in the same places (a model and its
    filtered gradients have one structure, so the None pattern tells them apart), then
    the same structure, then the same kind (structure drift).
    """
    candidates = list(_candidates(output))
    taken: set[int] = set()
    for strictness in (2, 1, 0):
        for given in givens:
            if given.returned is not None:
                continue
            for position, (where, value) in enumerate(candidates):
                if position in taken or not _same_kind(given, value):
                    continue
                try:
                    same = _padded(value) == _padded(given.value)
                except Exception:
                    same = False
                if strictness == 2 and not (same and
                                            _none_pattern(value) == _none_pattern(given.value)):
                    continue
                if strictness == 1 and not same:
                    continue
                given.returned, given.returned_root, given.exact = value, where, same
                taken.add(position)
                break


# -- findings ---------------------------------------------------------------------------------


def _diagnostic(code: str, path: str, message: str, hint: str,
                applicability: str = "safe") -> Diagnostic:
    return Diagnostic(code=code, message=f"`{path}` {message}", hint=hint, path=path,
                      fix=Fix(applicability, hint))  # type: ignore[arg-type]


def _paired_leaves(given: _Given) -> list[tuple[str, Any, Any]]:
    """(path, given leaf, returned leaf), None counted as a leaf; structures must agree."""
    flat = jax.tree_util.tree_flatten_with_path(given.value, is_leaf=_is_none)[0]
    returned = jax.tree_util.tree_leaves(given.returned, is_leaf=_is_none)
    return [(format_path(given.root, keys), leaf, out) for (keys, leaf), out in zip(flat, returned)]


def _eqx101(given: _Given) -> list[Diagnostic]:
    found = []
    for path, leaf, out in _paired_leaves(given):
        if out is None and leaf is not None and not is_array_like(leaf):
            found.append(_diagnostic(
                "EQX101", path,
                f"is {describe(leaf)} in the model the step was given and None in the model "
                f"it returns: the step rebuilt the model from a filtered tree "
                f"(`eqx.apply_updates(eqx.filter(model, ...), updates)`), which sets every "
                f"non-array field to None; the next call fails",
                "Update the unfiltered model: `model = eqx.apply_updates(model, updates)` "
                "(or combine back: `eqx.combine(params, static)`)"))
    return found


def _signature(leaf: Any) -> str:
    if is_array_like(leaf):
        return f"{leaf.dtype}{list(leaf.shape)}"
    return describe(leaf)


def _equal_static(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:
        return True  # cannot be told: say nothing


def _eqx603(given: _Given, reported: set[str]) -> list[Diagnostic]:
    """Structure, shape or dtype of the returned tree differ from the given one."""
    what = {"model": "model", "params": "tree", "opt_state": "optimizer state",
            "state": "state"}[given.role]
    hint = (f"Return the {what} with the structure it came in with, so that every step "
            f"reuses one compiled trace")
    if not given.exact:
        given_paths = {format_path(given.root, k) for k, _ in
                       jax.tree_util.tree_flatten_with_path(given.value, is_leaf=_is_none)[0]}
        returned_paths = {format_path(given.root, k) for k, _ in
                          jax.tree_util.tree_flatten_with_path(given.returned,
                                                               is_leaf=_is_none)[0]}
        lost = sorted(given_paths - returned_paths)
        new = sorted(returned_paths - given_paths)
        detail = "; ".join(part for part in (
            f"gone: {', '.join(lost[:3])}" if lost else "",
            f"new: {', '.join(new[:3])}" if new else "") if part) or "the node types differ"
        return [_diagnostic(
            "EQX603", given.root,
            f"comes out of the step with another tree structure than it went in ({detail}): "
            f"the next call retraces, and code that relies on the structure (optax, "
            f"`eqx.combine`) fails", hint, "unsafe")]
    found = []
    for path, leaf, out in _paired_leaves(given):
        if path in reported or leaf is None or out is None:
            continue
        if is_array_like(leaf) and is_array_like(out):
            if tuple(leaf.shape) != tuple(out.shape) or leaf.dtype != out.dtype:
                found.append(_diagnostic(
                    "EQX603", path, f"goes into the step as {_signature(leaf)} and comes out as "
                    f"{_signature(out)}: the next call retraces with the new shape or dtype",
                    hint, "unsafe"))
        elif is_array_like(leaf) != is_array_like(out):
            found.append(_diagnostic(
                "EQX603", path, f"goes into the step as {describe(leaf)} and comes out as "
                f"{describe(out)}", hint, "unsafe"))
        elif not _equal_static(leaf, out):
            found.append(_diagnostic(
                "EQX603", path, f"is the Python value {leaf!r} going in and {out!r} coming out: "
                f"`eqx.filter_jit` treats non-array leaves as static, so every step with a new "
                f"value compiles again", "Keep it an array: `jnp.asarray(value)`", "unsafe"))
    return found


def _identical(given: _Given, trace: _Trace, only_inexact: bool) -> bool:
    """Every (inexact) array the step returns for `given` is the array it was given."""
    pairs = [(leaf, out) for _, leaf, out in _paired_leaves(given)
             if is_array_like(leaf) and (is_inexact_array_like(leaf) or not only_inexact)]
    if not pairs:
        return False
    for leaf, out in pairs:
        position = trace.output_index.get(id(out))
        source = trace.forwarded[position] if position is not None else None
        if source is None or trace.inputs[source] is not leaf:
            return False
    return True


def _trains_state(model: Any) -> bool:
    """A layer whose state a training step must update: BatchNorm/SpectralNorm in training."""
    stateful = (eqx.nn.BatchNorm, eqx.nn.SpectralNorm)
    from eqxlint.runtime.tree import modules_with_paths

    return any(isinstance(module, stateful) and getattr(module, "inference", False) is False
               for _, module in modules_with_paths(model, "model"))


def _eqx503(givens: list[_Given], trace: _Trace) -> list[Diagnostic]:
    """What the step hands back unchanged, where the rest of the step shows it trains.

    A model returned as given is a finding only when the optimizer state comes back
    advanced, and the reverse: a step that changes neither (an evaluation, a gradient
    accumulation micro-step) was not meant to train.
    """
    matched = [g for g in givens if g.returned is not None and g.exact]
    unchanged = {id(g): _identical(g, trace, only_inexact=g.role == "model") for g in matched}
    advanced = {role: any(not unchanged[id(g)] for g in matched if g.role == role)
                for role in ("model", "opt_state")}
    found = []
    for given in matched:
        if not unchanged[id(given)]:
            continue
        if given.role == "model" and advanced["opt_state"]:
            found.append(_diagnostic(
                "EQX503", given.root,
                "is returned by the step exactly as it was given, every trainable array "
                "untouched, while the optimizer state advances: the updated model is "
                "computed and discarded, so nothing trains",
                "Return the updated model: `model = eqx.apply_updates(model, updates)` and "
                "`return model, ...`"))
        elif given.role == "opt_state" and advanced["model"]:
            found.append(_diagnostic(
                "EQX503", given.root,
                "is returned by the step exactly as it was given while the model is updated: "
                "the new optimizer state from `optim.update` is discarded, so Adam's moments "
                "and step count never advance", "Keep what update returns: `updates, "
                "opt_state = optim.update(grads, opt_state, params)`"))
        elif given.role == "state" and advanced["model"] and any(
                _trains_state(g.value) for g in givens if g.role == "model"):
            found.append(_diagnostic(
                "EQX503", given.root,
                "is returned by the step exactly as it was given: the model holds a BatchNorm "
                "in training mode, and the state it updates is discarded, so its statistics "
                "never move", "Thread the state: `(loss, state), grads = "
                "eqx.filter_value_and_grad(loss_fn, has_aux=True)(model, state, x, y)` and "
                "return that `state`"))
    return found


# -- a failing step ---------------------------------------------------------------------------


def _user_frame(error: BaseException) -> Optional[traceback.FrameSummary]:
    """The user's line that called into optax (the last frame before the first optax one)."""
    frames = traceback.extract_tb(error.__traceback__)
    for position, frame in enumerate(frames):
        if "/optax/" in frame.filename.replace("\\", "/"):
            for before in reversed(frames[:position]):
                name = before.filename.replace("\\", "/")
                if not any(part in name for part in LIBRARY_PARTS):
                    return before
            return None
    return None


def _at_line(diagnostic: Diagnostic, frame: Optional[traceback.FrameSummary]) -> Diagnostic:
    if frame is not None and frame.lineno is not None:
        diagnostic.filename = frame.filename
        diagnostic.location = Location(frame.lineno, (frame.colno or 0) + 1)
        diagnostic.source_line = frame.line
    return diagnostic


def _call_text(frame: Optional[traceback.FrameSummary]) -> str:
    if frame is None or not frame.line:
        return "an optax call in the step"
    return f"`{frame.line.strip()}` ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"


def _explain(error: BaseException, givens: list[_Given]) -> list[Diagnostic]:
    """The codes that explain a failure of the step; [] when none does."""
    text = str(error)
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    frame = _user_frame(error)
    call = _call_text(frame)
    if frame is not None:
        if "requires the current value of parameters" in text:
            hint = f"Pass the trainable arrays: `optim.update(grads, opt_state, {FILTERED_PARAMS})`"
            return [_at_line(Diagnostic(
                code="EQX103", message=f"{call} calls `update` without `params`, and this "
                f"optimizer reads them (weight decay, or a chain/wrapper around one): "
                f"{type(error).__name__}: {first}", hint=hint, fix=Fix("unsafe", hint)), frame)]
        if "is not a valid JAX type" in text:
            hint = f"Pass the arrays only: `optim.update(grads, opt_state, {FILTERED_PARAMS})`"
            return [_at_line(Diagnostic(
                code="EQX106", message=f"{call} passes the whole model as `params`, and this "
                f"optimizer traces params (`optax.MultiSteps` through `lax.cond`), so the "
                f"model's functions fail: {type(error).__name__}: {first}", hint=hint,
                fix=Fix("safe", hint)), frame)]
        stray = _stray_optimizer_leaves(givens)
        if stray:
            for diagnostic in stray:
                _at_line(diagnostic, frame)
            return stray
        if "zeros_like requires ndarray" in text or "not understood" in text:
            hint = f"Initialise on the arrays only: `optim.init({FILTERED_PARAMS})`"
            return [_at_line(Diagnostic(
                code="EQX102", message=f"{call} is given the unfiltered model, which holds "
                f"non-array leaves: {type(error).__name__}: {first}", hint=hint,
                fix=Fix("safe", hint)), frame)]
    if "Error interpreting argument to" in text and "as an abstract array" in text:
        import re

        hint = "Use `eqx.filter_jit`, which traces the arrays and keeps everything else static"
        where = re.search(r"at path (\S+?)\.?$", first)
        return [Diagnostic(
            code="EQX201", message=f"the step is wrapped in `jax.jit`, which cannot take a "
            f"module holding non-array leaves: {type(error).__name__}: {first}", hint=hint,
            fix=Fix("unsafe", hint), path=where.group(1) if where else None)]
    return []


def _stray_optimizer_leaves(givens: list[_Given]) -> list[Diagnostic]:
    """EQX102/EQX104 from check_model's own predicates, for each given model and opt_state."""
    from eqxlint.rules import get_rule
    from eqxlint.runtime.checker import RuntimeContext

    found: list[Diagnostic] = []
    models = [g.value for g in givens if g.role == "model"]
    states = [g.value for g in givens if g.role == "opt_state"]
    for model in models:
        for opt_state in states:
            context = RuntimeContext(model, opt_state=opt_state)
            for code in ("EQX102", "EQX104"):
                found.extend(get_rule(code)().check_runtime(context))
    return found


# -- the entry point --------------------------------------------------------------------------


def _mark_filtered_copies(givens: list[_Given]) -> None:
    """A module shaped like a given model but with None where it has leaves is a filtered
    copy (accumulated gradients, `eqx.filter(model, ...)`): followed as `params`, never
    taken for the model itself."""
    models = [g for g in givens if g.role == "model"]
    for given in models:
        for other in models:
            if other is given or type(other.value) is not type(given.value):
                continue
            try:
                if _padded(other.value) != _padded(given.value):
                    continue
            except Exception:
                continue
            if sum(_none_pattern(given.value)) > sum(_none_pattern(other.value)):
                given.role, given.root = "params", "params"
                break


def _givens(args: tuple, kwargs: dict) -> list[_Given]:
    values = list(args) + list(kwargs.values())
    names = [None] * len(args) + list(kwargs)
    roles = [_role_of(value) for value in values]
    givens = []
    for value, name, role in zip(values, names, roles):
        if role is None:
            continue
        root = role if roles.count(role) == 1 or name is None else name
        givens.append(_Given(role, root, value))
    _mark_filtered_copies(givens)
    seen: dict[str, int] = {}
    for given in givens:  # two positional models: model, model_2
        count = seen.get(given.root, 0) + 1
        seen[given.root] = count
        if count > 1:
            given.root = f"{given.root}_{count}"
    return givens


def check_step(step: Callable[..., Any], *args: Any, **kwargs: Any) -> Diagnostics:
    if not callable(step):
        raise TypeError(f"check_step expects the training step function first, got "
                        f"{describe(step)}: `check_step(train_step, model, opt_state, x, y)`")
    givens = _givens(args, kwargs)
    try:
        trace = _dry_run(step, args, kwargs)
    except Exception as error:
        explained = _explain(error, givens)
        if explained:
            return Diagnostics(explained)
        raise
    _match(givens, trace.output)
    found: list[Diagnostic] = []
    for given in givens:
        if given.returned is None:
            continue
        reported: set[str] = set()
        if given.role == "model" and given.exact:
            eqx101 = _eqx101(given)
            found.extend(eqx101)
            reported = {d.path for d in eqx101 if d.path}
        found.extend(_eqx603(given, reported))
    found.extend(_eqx503(givens, trace))
    return Diagnostics(found)

