"""EQX302: a model with stateful layers (BatchNorm, SpectralNorm) and no eqx.nn.State."""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Union

import libcst as cst

from eqxlint.diagnostics import Diagnostic
from eqxlint.knowledge import equinox_nn
from eqxlint.rules.base import PROJECT_IMPORT, Bad, Finding, Good, Rule
from eqxlint.rules.first_look import (_BETWEEN, FirstLook, ast_dotted_name, mentioned_in_project,
                                      trigger_matches)
from eqxlint.semantics import Semantics, Value, keyword_arg, positional_args
from eqxlint.semantics import values as v
from eqxlint.semantics.project import _IMPORT_LINE, LIBRARIES

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
        Bad("""
            from equinox.nn import BatchNorm as Norm

            def outer():
                norm = Norm(3, "batch")

                def inner(x):
                    return norm(x)  # expect: EQX302
                return inner
        """, "an alias of the import, seen from a nested function (the first look's boundary)"),
        Bad("""
            import equinox as eqx

            def apply(bn: eqx.nn.BatchNorm, x):
                return bn(x)  # expect: EQX302
        """, "a parameter known by its annotation"),
        Bad("""
            import equinox as eqx

            def run(layer, x):
                return layer(x)  # expect: EQX302

            run(eqx.nn.BatchNorm(3, "batch"), x)
        """, "a parameter known by what its caller passes"),
        Bad("""
            import equinox as eqx

            class Net(eqx.Module):
                def __init__(self):
                    self.bn = eqx.nn.BatchNorm(3, "batch")

                def __call__(self, x, state):
                    f = lambda y: self.bn(y)  # expect: EQX302
                    return f(x), state
        """, "a field of self, called in a lambda of a method"),
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
        Good("""
            import equinox as eqx

            class Block(eqx.Module):
                def __init__(self, key):
                    self.linear = eqx.nn.Linear(3, 3, key=key)
                    self.bn = eqx.nn.BatchNorm(3, "batch")

                def __call__(self, x, state):
                    x, state = self.bn(self.linear(x), state)
                    return x, state
        """, "the stateful field called with its state, the other field without"),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """The stateful layer's name must occur here or in a project module the file
        imports (the triggers); then, on Python's `ast`, some call must fit the check: a
        name or attribute called without `state=` or `*args`, with fewer positional
        arguments than an `equinox.nn` stateful layer (2) or a `__call__` of the file needs
        (any number when a project module may hold the model), whose callee may hold a
        stateful module. That last test follows every way Semantics.infer reaches a module
        (assignments, tuple unpacking, parameters through their callers, defaults and
        annotations, returns, `self` fields, the constructors and pass-through calls of
        equinox, `make_with_state`, classes whose fields may hold such a layer), blind to
        scopes: it says yes for any binding that may hold one. Names from the project's
        modules are suspect when those modules mention a stateful layer, or import this
        file back (a cycle)."""
        if not super().may_fire(source, look):
            return False
        tree = (look or FirstLook(source)).tree(newer_syntax=True)
        if tree is None:
            return True
        return _StatefulFlow(tree, lambda: _project_may_hold_state(source, look),
                             lambda name: _project_may_bind(source, look, name)) \
            .may_call_without_state()

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


# ---------------------------------------------------------------------------
# The first look: could some call be of a stateful module, without its state?

_STATEFUL_WORDS = tuple(name.encode() for name in equinox_nn.STATEFUL)
# Library calls whose result is (or gives back, through `eqx.combine`) what an argument
# holds (inference.py: STRUCTURE_PRESERVING, `equinox.combine` of a filtered half).
_PASS_THROUGH = frozenset(v.STRUCTURE_PRESERVING) | {"equinox.combine", "equinox.filter",
                                                     "equinox.partition"}
_Function = Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda]


class _Scope:
    """A scope as the semantics sees it (scopes.py): what it binds, what it declares global."""

    __slots__ = ("parent", "kind", "name", "bound", "globals")

    def __init__(self, parent: Optional["_Scope"], kind: str, name: str = "") -> None:
        self.parent = parent
        self.kind = kind  # "module", "function", "lambda", "class", "comprehension"
        self.name = name  # a class scope's class
        self.bound: set[str] = set()
        self.globals: set[str] = set()


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _target_parts(target: ast.AST, names: set[str], fields: set[str]) -> None:
    """The names and `self.<field>`s an assignment target binds."""
    if isinstance(target, ast.Name):
        names.add(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            _target_parts(element, names, fields)
    elif isinstance(target, ast.Starred):
        _target_parts(target.value, names, fields)
    elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
            and target.value.id == "self":
        fields.add(target.attr)


class _StatefulFlow:
    """Which bindings, `self` fields, functions and classes of one file may hold (or give) a
    module with a stateful layer: a superset of what Semantics.infer can prove.

    Scopes are resolved as scopes.py does (a name is looked up in its scope, then in the
    enclosing ones, class bodies skipped), but order is not: a binding is suspect if its
    value may hold such a module, and a name if any binding it may see is. What comes from
    the project's own modules is suspect when `project` says it may be.
    """

    def __init__(self, tree: ast.Module, project: "Callable[[], bool]",
                 project_binds: "Callable[[str], bool]") -> None:
        self._project_test = project
        self._project: Optional[bool] = None
        self._project_binds = project_binds
        self._binds: dict[str, bool] = {}
        self.module = _Scope(None, "module")
        self.imports: dict[str, set[str]] = {}
        self.calls: list[tuple[ast.Call, _Scope]] = []
        # (scope, names, self fields, value, class of the method): assignments.
        self.bindings: list[tuple[_Scope, set[str], set[str], ast.expr, Optional[str]]] = []
        # (scope, name, annotation, default, names of the calls that pass it): parameters.
        self.params: list[tuple[_Scope, str, Optional[ast.expr], Optional[ast.expr],
                                set[str]]] = []
        self.returns: list[tuple[_Scope, str, ast.expr, _Scope]] = []
        self.field_annotations: dict[str, list[ast.expr]] = {}
        self.max_needed = 2  # (x, state) for the equinox.nn layers
        self.names: set[tuple[int, str]] = set()
        self.fields: set[str] = set()
        self.functions: set[tuple[int, str]] = set()
        self.classes: set[str] = set()
        self.class_names: set[str] = set()
        self._calls_by_name: Optional[dict[str, list[tuple[ast.Call, _Scope]]]] = None
        self._collect(tree)

    def project(self) -> bool:
        if self._project is None:
            self._project = self._project_test()
        return self._project

    def _project_name(self, name: str) -> bool:
        """Could a project module bind `name` to a value (not a def or a class)?"""
        if not self.project():
            return False
        known = self._binds.get(name)
        if known is None:
            known = self._binds[name] = self._project_binds(name)
        return known

    # -- facts ---------------------------------------------------------------

    def _collect(self, tree: ast.Module) -> None:
        # (node, scope, class of the enclosing method, (scope, name) of the enclosing def)
        pending: list[tuple[ast.AST, _Scope, Optional[str], Optional[tuple[_Scope, str]]]] = \
            [(tree, self.module, None, None)]
        while pending:
            node, scope, method_class, function = pending.pop()
            kind = type(node)
            inner_scope, inner_method, inner_function = scope, method_class, function
            if kind is ast.FunctionDef or kind is ast.AsyncFunctionDef or kind is ast.Lambda:
                inner_scope = _Scope(scope, "lambda" if kind is ast.Lambda else "function")
                if scope.kind == "class":
                    inner_method = scope.name
                elif scope.kind not in ("function", "lambda", "comprehension"):
                    inner_method = None
                self._function(node, scope, inner_scope)  # type: ignore[arg-type]
                inner_function = None if kind is ast.Lambda else \
                    (scope, node.name)  # type: ignore[attr-defined]
            elif kind is ast.ClassDef:
                scope.bound.add(node.name)  # type: ignore[attr-defined]
                self.class_names.add(node.name)  # type: ignore[attr-defined]
                inner_scope = _Scope(scope, "class", node.name)  # type: ignore[attr-defined]
                inner_method = None
            elif kind in _COMPREHENSIONS:
                inner_scope = _Scope(scope, "comprehension")
            elif kind is ast.Call:
                self.calls.append((node, scope))  # type: ignore[arg-type]
            elif kind is ast.Assign:
                names: set[str] = set()
                fields: set[str] = set()
                for target in node.targets:  # type: ignore[attr-defined]
                    _target_parts(target, names, fields)
                scope.bound |= names
                self.bindings.append((scope, names, fields, node.value, method_class))  # type: ignore[attr-defined]
            elif kind is ast.AnnAssign:
                target = node.target  # type: ignore[attr-defined]
                if scope.kind == "class" and isinstance(target, ast.Name):
                    self.field_annotations.setdefault(scope.name, []).append(
                        node.annotation)  # type: ignore[attr-defined]
                else:
                    names, fields = set(), set()
                    _target_parts(target, names, fields)
                    scope.bound |= names
                    if node.value is not None:  # type: ignore[attr-defined]
                        self.bindings.append((scope, names, fields, node.value,  # type: ignore[attr-defined]
                                              method_class))
            elif kind is ast.NamedExpr:
                names, fields = set(), set()
                _target_parts(node.target, names, fields)  # type: ignore[attr-defined]
                scope.bound |= names
                self.bindings.append((scope, names, fields, node.value, method_class))  # type: ignore[attr-defined]
            elif kind is ast.AugAssign or kind is ast.For or kind is ast.AsyncFor \
                    or kind is ast.comprehension:
                _target_parts(node.target, scope.bound, set())  # type: ignore[attr-defined]
            elif kind is ast.withitem:
                if node.optional_vars is not None:  # type: ignore[attr-defined]
                    _target_parts(node.optional_vars, scope.bound, set())  # type: ignore[attr-defined]
            elif kind is ast.ExceptHandler:
                if node.name:  # type: ignore[attr-defined]
                    scope.bound.add(node.name)  # type: ignore[attr-defined]
            elif kind is ast.Global:
                scope.globals.update(node.names)  # type: ignore[attr-defined]
            elif kind is ast.Return:
                if function is not None and node.value is not None:  # type: ignore[attr-defined]
                    self.returns.append((function[0], function[1], node.value, scope))  # type: ignore[attr-defined]
            elif kind is ast.Import:
                for alias in node.names:  # type: ignore[attr-defined]
                    if alias.asname:
                        self.imports.setdefault(alias.asname, set()).add(alias.name)
                    else:
                        head = alias.name.split(".", 1)[0]
                        self.imports.setdefault(head, set()).add(head)
            elif kind is ast.ImportFrom:
                if node.module is not None and all(a.name != "*" for a in node.names):  # type: ignore[attr-defined]
                    module = "." * (node.level or 0) + node.module  # type: ignore[attr-defined]
                    for alias in node.names:  # type: ignore[attr-defined]
                        self.imports.setdefault(alias.asname or alias.name, set()).add(
                            f"{module}.{alias.name}")
            for name in node._fields:  # ast.iter_child_nodes, inlined (the hot loop)
                value = getattr(node, name, None)
                if isinstance(value, list):
                    for item in value:
                        if isinstance(item, ast.AST):
                            pending.append((item, inner_scope, inner_method, inner_function))
                elif isinstance(value, ast.AST):
                    pending.append((value, inner_scope, inner_method, inner_function))

    def _function(self, node: _Function, scope: _Scope, inner: _Scope) -> None:
        arguments = node.args
        positional = arguments.posonlyargs + arguments.args
        defaults: list[Optional[ast.expr]] = \
            [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
        everything = list(zip(positional, defaults)) + \
            list(zip(arguments.kwonlyargs, arguments.kw_defaults))
        everything += [(star, None) for star in (arguments.vararg, arguments.kwarg) if star]
        callers: set[str] = set()
        if not isinstance(node, ast.Lambda):
            scope.bound.add(node.name)
            if scope.kind != "class":
                callers.add(node.name)
            elif node.name == "__init__":
                callers.add(scope.name)
            if scope.kind == "class" and node.name == "__call__" and arguments.vararg is None:
                self.max_needed = max(self.max_needed,
                                      len(positional) - len(arguments.defaults) - 1)
        for arg, default in everything:
            inner.bound.add(arg.arg)
            self.params.append((inner, arg.arg, arg.annotation, default, callers))

    # -- the fixpoint --------------------------------------------------------

    def settle(self) -> None:
        changed = True
        while changed:
            changed = False
            for scope, names, fields, value, method_class in self.bindings:
                keys = {(id(scope), name) for name in names}
                new_class = method_class is not None and fields and method_class not in self.classes
                if (not keys <= self.names or not fields <= self.fields or new_class) \
                        and self.may_hold(value, scope):
                    self.names |= keys
                    self.fields |= fields
                    if method_class is not None and fields:
                        self.classes.add(method_class)
                    changed = True
            for scope, name, annotation, default, callers in self.params:
                key = (id(scope), name)
                if key not in self.names and (
                        (annotation is not None and self.may_annotate(annotation))
                        or (default is not None and self.may_hold(default, self.module))
                        or self._passed(callers)):
                    self.names.add(key)
                    changed = True
            for scope, name, value, inside in self.returns:
                key = (id(scope), name)
                if key not in self.functions and self.may_hold(value, inside):
                    self.functions.add(key)
                    changed = True
            for name, declared in self.field_annotations.items():
                if name not in self.classes and any(self.may_annotate(a) for a in declared):
                    self.classes.add(name)
                    changed = True

    def _passed(self, callers: set[str]) -> bool:
        if self._calls_by_name is None:
            self._calls_by_name = {}
            for call, scope in self.calls:
                if isinstance(call.func, ast.Name):
                    self._calls_by_name.setdefault(call.func.id, []).append((call, scope))
        return any(self._arguments_may_hold(call, scope) for name in callers
                   for call, scope in self._calls_by_name.get(name, ()))

    def _arguments_may_hold(self, call: ast.Call, scope: _Scope) -> bool:
        return any(self.may_hold(arg.value if isinstance(arg, ast.Starred) else arg, scope)
                   for arg in call.args) or \
            any(self.may_hold(keyword.value, scope) for keyword in call.keywords)

    # -- what an expression may hold -----------------------------------------

    def _resolve(self, scope: _Scope, name: str) -> Optional[_Scope]:
        """The scope whose binding of `name` a use in `scope` sees (Semantics.lookup)."""
        if name in scope.globals:
            return self.module
        if name in scope.bound:
            return scope
        enclosing = scope.parent
        while enclosing is not None:
            if enclosing.kind != "class" and name in enclosing.bound:
                return enclosing
            enclosing = enclosing.parent
        return None

    def _quals(self, dotted: str) -> set[str]:
        head, _, rest = dotted.partition(".")
        return {f"{imported}.{rest}" if rest else imported
                for imported in self.imports.get(head, ())}

    @staticmethod
    def _project_qual(qual: str) -> bool:
        return qual.startswith(".") or qual.split(".", 1)[0] not in LIBRARIES

    def _imported_value(self, dotted: str) -> bool:
        """A name of a project module, read through an import (inference._infer_qualified)."""
        return any(self._project_qual(q) for q in self._quals(dotted)) \
            and self._project_name(dotted.rsplit(".", 1)[-1])

    def may_hold(self, node: ast.expr, scope: _Scope) -> bool:
        """Could Semantics.infer find a stateful module in `node` (or in an item of it)?"""
        kind = type(node)
        if kind is ast.Name:
            name = node.id  # type: ignore[attr-defined]
            found = self._resolve(scope, name)
            return (found is not None and (id(found), name) in self.names) \
                or self._imported_value(name)
        if kind is ast.Attribute:
            if isinstance(node.value, ast.Name) and node.value.id == "self":  # type: ignore[attr-defined]
                return node.attr in self.fields  # type: ignore[attr-defined]
            dotted = ast_dotted_name(node)
            return dotted is not None and self._imported_value(dotted)
        if kind is ast.Call:
            return self._call_may_give(node, scope)  # type: ignore[arg-type]
        if kind is ast.List or kind is ast.Tuple:
            return any(self.may_hold(e.value if isinstance(e, ast.Starred) else e, scope)
                       for e in node.elts)  # type: ignore[attr-defined]
        if kind is ast.Subscript:
            return self.may_hold(node.value, scope)  # type: ignore[attr-defined]
        return False  # literals, lambdas, dicts, operators: never a module (inference.py)

    def _call_may_give(self, call: ast.Call, scope: _Scope) -> bool:
        func = call.func
        if isinstance(func, ast.Call):  # eqx.nn.make_with_state(Net)(...) -> (model, state)
            inner = ast_dotted_name(func.func)
            return inner is not None and "equinox.nn.make_with_state" in self._quals(inner)
        dotted = ast_dotted_name(func)
        if dotted is None:
            return False
        if isinstance(func, ast.Name):
            found = self._resolve(scope, func.id)
            if (found is not None and (id(found), func.id) in self.functions) \
                    or func.id in self.classes:
                return True
            if func.id in ("list", "tuple", "dict") and self._arguments_may_hold(call, scope):
                return True
        for qual in self._quals(dotted):
            if qual in _PASS_THROUGH:
                if self._arguments_may_hold(call, scope):
                    return True
            elif qual.startswith("equinox.nn.") and qual.count(".") == 2:
                if qual[len("equinox.nn."):] in equinox_nn.STATEFUL:
                    return True
            elif self._project_qual(qual) and self.project():
                return True  # a project function's result, a project class's instance
        return False

    def may_annotate(self, annotation: ast.expr) -> bool:
        """Could Semantics.annotation_value make a stateful module of `annotation`?"""
        dotted = ast_dotted_name(annotation)
        if dotted is None:
            return False  # a subscript or a string: never a module there
        if dotted.partition(".")[0] not in self.imports:
            # A class of the file; or `pkg.Net`, which the index may find in a module
            # of the project that the file does not import.
            return dotted in self.classes or "." in dotted
        for qual in self._quals(dotted):
            if qual.startswith("equinox.nn.") and qual.count(".") == 2:
                if qual[len("equinox.nn."):] in equinox_nn.STATEFUL:
                    return True
            elif self._project_qual(qual) and self.project():
                return True
        return False

    # -- the question ----------------------------------------------------------

    def may_call_without_state(self) -> bool:
        """A call of a name or attribute that may hold a stateful module, with no `state=`,
        no `*args`, and fewer positional arguments than some `__call__` needs."""
        candidates = []
        for call, scope in self.calls:
            if not isinstance(call.func, (ast.Name, ast.Attribute)) \
                    or any(isinstance(arg, ast.Starred) for arg in call.args) \
                    or any(k.arg is None or k.arg == "state" for k in call.keywords):
                continue
            candidates.append((call, scope))
        # A class of a project module may need any number of arguments.
        candidates = [(call, scope) for call, scope in candidates
                      if len(call.args) < self.max_needed or self.project()]
        if not candidates:
            return False
        self.settle()
        return any(self.may_hold(call.func, scope) for call, scope in candidates)


def _project_may_hold_state(source: bytes, look: Optional[FirstLook]) -> bool:
    """Could a name imported from the project's own modules hold a stateful module?"""
    if mentioned_in_project(source, look, *_STATEFUL_WORDS):
        return True
    if not any(trigger_matches(word, source) for word in _STATEFUL_WORDS):
        return False
    imported = look.imported if look is not None else None
    return imported is None or imported.imports_back()


def _project_may_bind(source: bytes, look: Optional[FirstLook], name: str) -> bool:
    """Could a project module bind `name` to a value: an assignment to it (`name =`,
    `name: T =`, a tuple target, `name :=`), or an import under another name
    (`import x as name`, `from m import y as name`)? A plain re-export keeps the name, so
    the module it comes from must bind it: import statements are blanked out first (what
    the blanking misses only makes more matches). Read in the imported modules' text and
    this file's (an import cycle)."""
    imported = look.imported if look is not None else None
    if imported is None:
        return True
    spelled = re.escape(name.encode("utf-8", "surrogatepass"))
    assigned = re.compile(rb"(?<![\w.])" + spelled + _BETWEEN + rb"(?:=(?!=)|:|,|\)|\])")
    renamed = re.compile(rb"\bas" + _BETWEEN + spelled + rb"(?!\w)")
    for text in [source, *imported.sources()]:
        if name.encode("utf-8", "surrogatepass") not in text:
            continue
        if renamed.search(text) is not None or assigned.search(_without_imports(text)) is not None:
            return True
    return False


_BLANKED: dict[bytes, bytes] = {}


def _without_imports(text: bytes) -> bytes:
    """The text with its import statements (as project.py finds them) blanked out."""
    blanked = _BLANKED.get(text)
    if blanked is None:
        blanked = _IMPORT_LINE.sub(b"", text)
        if len(_BLANKED) > 256:
            _BLANKED.clear()
        _BLANKED[text] = blanked
    return blanked
