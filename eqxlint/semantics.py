"""What a name is: one cheap pass per file that every rule shares.

The pass records, in source order:
- imports and aliases, so that `eqx.nn.MLP`, `equinox.nn.MLP` and `MLP` (after
  `from equinox.nn import MLP`) all resolve to the qualified name `equinox.nn.MLP`;
- every binding of a name (assignment, parameter, loop target, ...) in its scope,
  with the expression it was bound to when there is one;
- classes defined in the file, with their bases, fields and `self.x = ...`
  assignments;
- every call site, with its scope, its parent node and the loops around it.

Rules then ask `infer(expr, at=call)` what an expression holds: an optax
transformation, an Equinox module of a known class, a filtered tree, ... or
`None` when the code does not say. Nothing here guesses from a name's spelling.

It is deliberately not libcst's QualifiedNameProvider/ScopeProvider: those cost
several times the parse, and the rules need far less.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, TypeVar, Union

import libcst as cst

from eqxlint.knowledge import equinox_nn, optax_transforms

# ----------------------------------------------------------------------------
# What an expression can be known to hold.


@dataclass(frozen=True)
class Value:
    """What an expression holds, as far as the code says.

    kind is one of:
      "optimizer"  an optax GradientTransformation; `factories` lists the optax
                   factories it is built from (e.g. ("chain", "adam")).
      "module"     an Equinox module instance; `cls` is "equinox.nn.MLP" or
                   "<local>.Net" for a class defined in this file.
      "filtered"   the result of `eqx.filter` or the first half of `eqx.partition`;
                   `source` is the tree that was filtered.
      "static"     the second half of `eqx.partition`.
      "state"      an `eqx.nn.State`.
      "tuple"      a tuple with known `elements`.
      "function"   a function object (an activation, a lambda, a def).
      "state_dict" weights keyed by name: `.state_dict()`, `torch.load`, safetensors,
                   `np.load`; "state_dict_values" its `.values()`/`.items()`.
      "leaves"     a list of tree leaves (`jax.tree_util.tree_leaves`, ...); "treedef".
    """

    kind: str
    node: Optional[cst.CSTNode] = field(default=None, repr=False, compare=False)
    cls: Optional[str] = None
    factories: tuple[str, ...] = ()
    source: Optional[cst.BaseExpression] = field(default=None, repr=False, compare=False)
    elements: tuple[Optional["Value"], ...] = ()
    # For "optimizer": the optax call that built it (for keyword arguments).
    call: Optional[cst.Call] = field(default=None, repr=False, compare=False)


LOCAL_PREFIX = "<local>."

# Calls whose result maps weight names to arrays.
STATE_DICT_LOADERS = {
    "torch.load", "safetensors.torch.load_file", "safetensors.numpy.load_file",
    "safetensors.flax.load_file", "safetensors.torch.load", "safetensors.numpy.load",
    "numpy.load",
}
INTEGER_DTYPES = {"Int", "UInt", "Integer", "Bool"}  # jaxtyping names, digits stripped
LEAVES_FUNCTIONS = {"jax.tree_util.tree_leaves", "jax.tree.leaves", "jax.tree_leaves"}
FLATTEN_FUNCTIONS = {"jax.tree_util.tree_flatten", "jax.tree.flatten", "jax.tree_flatten"}

# ----------------------------------------------------------------------------
# Records made by the pass.


@dataclass
class Scope:
    kind: str  # "module", "function", "lambda", "comprehension", "class"
    node: cst.CSTNode
    parent: Optional["Scope"]
    bindings: dict[str, list["Binding"]] = field(default_factory=dict)
    declared_global: set[str] = field(default_factory=set)
    class_info: Optional["ClassInfo"] = None  # for kind == "class"
    method_of: Optional["ClassInfo"] = None  # for a function directly in a class

    def is_within(self, other: "Scope") -> bool:
        scope: Optional[Scope] = self
        while scope is not None:
            if scope is other:
                return True
            scope = scope.parent
        return False


@dataclass
class Binding:
    name: str
    seq: int
    value: Optional[cst.BaseExpression]  # None: bound to something the code does not show
    index: Optional[int]  # position when bound by tuple unpacking
    loops: tuple[int, ...]
    target: cst.CSTNode = field(repr=False)
    annotation: Optional[cst.BaseExpression] = field(default=None, repr=False)
    # "function" or "class" for a def/class statement (value is None then).
    definition: Optional[str] = None


@dataclass
class CallSite:
    node: cst.Call
    qualname: Optional[str]
    scope: Scope
    seq: int
    parent: Optional[cst.CSTNode]
    loops: tuple[int, ...]
    # The module-level statement that contains the call (to place findings cheaply).
    statement: Optional[cst.CSTNode] = field(default=None, repr=False)
    # The innermost simple statement line holding the call, and the block holding that.
    line: Optional[cst.CSTNode] = field(default=None, repr=False)
    block: Optional[cst.CSTNode] = field(default=None, repr=False)


@dataclass
class FieldInfo:
    name: str
    annotation: Optional[cst.BaseExpression]
    default: Optional[cst.BaseExpression]
    static: bool


@dataclass
class ClassInfo:
    name: str
    node: cst.ClassDef
    bases: list[cst.BaseExpression]
    fields: dict[str, FieldInfo] = field(default_factory=dict)
    # self.<attr> = <expr> inside the class's methods, in source order.
    self_assignments: dict[str, list[Binding]] = field(default_factory=dict)
    # Parameters of __init__ with their defaults, to follow `self.f = f`.
    init_defaults: dict[str, Optional[cst.BaseExpression]] = field(default_factory=dict)



_FUNCTION_NAMESPACES = ("jax.nn.", "jax.numpy.", "jax.lax.", "jax.scipy.", "numpy.", "math.",
                        "equinox.nn.functional.")
_CALLABLE_ANNOTATIONS = {"typing.Callable", "collections.abc.Callable", "Callable"}
_PYTHON_SCALARS = {"int", "float", "bool", "str", "complex"}


def dotted_name(node: cst.BaseExpression) -> Optional[str]:
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


def positional_args(call: cst.Call) -> list[cst.BaseExpression]:
    return [arg.value for arg in call.args if arg.keyword is None and not arg.star]


def keyword_arg(call: cst.Call, name: str) -> Optional[cst.BaseExpression]:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    return None


def argument(call: cst.Call, position: int, name: str) -> Optional[cst.BaseExpression]:
    """The argument at `position` or passed as `name=`."""
    args = positional_args(call)
    if position < len(args):
        return args[position]
    return keyword_arg(call, name)


def has_star_args(call: cst.Call) -> bool:
    return any(arg.star for arg in call.args)


class Semantics:
    """The facts of one module that rules query. Build with `Semantics.of(module)`."""

    def __init__(self, module: cst.Module,
                 cells: tuple[tuple[int, int], ...] = ()) -> None:
        self.module = module
        # For a notebook: (first row in the joined text, cell number) of each code cell,
        # so that rules that treat a cell as its own block can tell where one begins.
        self.cells = cells
        self.imports: dict[str, str] = {}
        self.calls: list[CallSite] = []
        self.classes: dict[str, ClassInfo] = {}
        self.functions: set[str] = set()
        # Every def in the file by name (the first one, where a name is reused).
        self.function_defs: dict[str, cst.FunctionDef] = {}
        self.module_scope = Scope("module", module, None)
        self.scope_of_node: dict[int, Scope] = {}

    @classmethod
    def of(cls, module: cst.Module, cells: tuple[tuple[int, int], ...] = ()) -> "Semantics":
        semantics = cls(module, cells)
        _Collector(semantics).walk(module)
        return semantics

    # -- names ---------------------------------------------------------------

    def qualname(self, node: cst.BaseExpression) -> Optional[str]:
        """The qualified name an expression refers to through this file's imports.

        `eqx.nn.MLP` -> "equinox.nn.MLP"; a class defined in this file -> "<local>.Net";
        anything not reached through an import -> None.
        """
        dotted = dotted_name(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        imported = self.imports.get(head)
        if imported is not None:
            return f"{imported}.{rest}" if rest else imported
        if not rest and head in self.classes:
            return LOCAL_PREFIX + head
        return None

    def code_of(self, node: cst.CSTNode) -> str:
        """The source text of a node, as written."""
        return self.module.code_for_node(node)

    def local_name_for(self, qualified: str) -> Optional[str]:
        """How this file spells an imported module, e.g. "equinox" -> "eqx"."""
        for local, imported in self.imports.items():
            if imported == qualified:
                return local
        return None

    # -- bindings ------------------------------------------------------------

    def lookup(self, name: str, scope: Scope, seq: int) -> Optional[Binding]:
        """The binding of `name` that a use at (`scope`, `seq`) sees, if the code says which.

        In the use's own scope: the latest binding before the use, which is what the
        use sees the first time it runs (a loop may rebind it for later iterations;
        a mistake on the first iteration is a mistake). In enclosing function or
        module scopes: the binding, if all of them agree on its value.
        """
        if name in scope.declared_global:
            return self._only_binding(name, self.module_scope)
        bindings = scope.bindings.get(name)
        if bindings:
            before = [b for b in bindings if b.seq < seq]
            return before[-1] if before else None
        enclosing = scope.parent
        while enclosing is not None:
            if enclosing.kind != "class" and name in enclosing.bindings:
                return self._only_binding(name, enclosing)
            enclosing = enclosing.parent
        return None

    def _only_binding(self, name: str, scope: Scope) -> Optional[Binding]:
        bindings = scope.bindings.get(name, [])
        if not bindings:
            return None
        kinds = {self._binding_signature(b) for b in bindings}
        return bindings[-1] if len(kinds) == 1 else None

    def _binding_signature(self, binding: Binding) -> object:
        value = self.infer_binding(binding)
        return None if value is None else (value.kind, value.cls, value.factories)

    # -- inference -----------------------------------------------------------

    def infer(self, node: cst.BaseExpression, at: Union[CallSite, Binding, None] = None,
              scope: Optional[Scope] = None, seq: Optional[int] = None,
              _depth: int = 0) -> Optional[Value]:
        """What `node`, evaluated at a call site or binding, is known to hold."""
        if _depth > 12:
            return None
        if at is not None:
            scope = at.scope if isinstance(at, CallSite) else scope
            seq = at.seq
        if scope is None or seq is None:
            scope, seq = self.module_scope, 1 << 62
        depth = _depth + 1

        if isinstance(node, cst.Name):
            qual = self.qualname(node)
            binding = self.lookup(node.value, scope, seq)
            if binding is not None:
                return self.infer_binding(binding, depth)
            if node.value in self.functions:
                return Value("function", node)
            if qual is not None and qual.startswith(_FUNCTION_NAMESPACES):
                return Value("function", node)
            return None
        if isinstance(node, cst.Attribute):
            if isinstance(node.value, cst.Name) and node.value.value == "self":
                return self._infer_self_attribute(node.attr.value, scope, depth)
            qual = self.qualname(node)
            if qual is not None and qual.startswith(_FUNCTION_NAMESPACES):
                return Value("function", node)
            return None
        if isinstance(node, cst.Lambda):
            return Value("function", node)
        if isinstance(node, cst.Subscript):
            base = self.infer(node.value, scope=scope, seq=seq, _depth=depth)
            index = _literal_index(node)
            if base is not None and base.kind == "tuple" and index is not None \
                    and -len(base.elements) <= index < len(base.elements):
                return base.elements[index]
            return None
        if isinstance(node, cst.Call):
            return self._infer_call(node, scope, seq, depth)
        return None

    def infer_binding(self, binding: Binding, _depth: int = 0) -> Optional[Value]:
        if binding.definition == "function":
            return Value("function", binding.target)
        if binding.value is None:
            return None
        scope = self._scope_of_binding(binding)
        value = self.infer(binding.value, scope=scope, seq=binding.seq - 1, _depth=_depth + 1)
        if binding.index is None:
            return value
        if value is not None and value.kind == "tuple" and binding.index < len(value.elements):
            return value.elements[binding.index]
        return None

    def _scope_of_binding(self, binding: Binding) -> Scope:
        return self.scope_of_node.get(id(binding.target), self.module_scope)

    def _infer_self_attribute(self, attr: str, scope: Scope, depth: int) -> Optional[Value]:
        method_scope: Optional[Scope] = scope
        while method_scope is not None and method_scope.method_of is None:
            method_scope = method_scope.parent
        if method_scope is None or method_scope.method_of is None:
            return None
        bindings = method_scope.method_of.self_assignments.get(attr, [])
        values = [self.infer_binding(b, depth) for b in bindings]
        if not values or any(v is None for v in values):
            return None
        signatures = {(v.kind, v.cls, v.factories) for v in values if v is not None}
        return values[-1] if len(signatures) == 1 else None

    def _infer_call(self, call: cst.Call, scope: Scope, seq: int, depth: int) -> Optional[Value]:
        func = call.func
        # eqx.nn.make_with_state(Net)(...) -> (model, state)
        if isinstance(func, cst.Call):
            inner = self.qualname(func.func)
            if inner == "equinox.nn.make_with_state":
                cls_node = argument(func, 0, "model_class")
                cls = self.qualname(cls_node) if cls_node is not None else None
                module = Value("module", call, cls=cls) if cls is not None else None
                return Value("tuple", call, elements=(module, Value("state", call)))
            if inner == "optax.inject_hyperparams":
                factory_node = argument(func, 0, "inner_factory")
                factory = self.qualname(factory_node) if factory_node is not None else None
                if factory is not None and factory.startswith("optax."):
                    return Value("optimizer", call, factories=("inject_hyperparams",
                                                               factory[len("optax."):]), call=call)
            return None
        def again(node: cst.BaseExpression) -> Optional[Value]:
            return self.infer(node, scope=scope, seq=seq, _depth=depth)

        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method == "state_dict" and not call.args:
                return Value("state_dict", call)
            if method in ("values", "items") and not call.args:
                owner = again(func.value)
                if owner is not None and owner.kind == "state_dict":
                    return Value("state_dict_values", call)
        if isinstance(func, cst.Name) and func.value in ("list", "tuple") \
                and func.value not in self.imports and len(call.args) == 1:
            inner = again(call.args[0].value)
            if inner is not None and inner.kind in ("leaves", "state_dict_values"):
                return inner
            return None
        qual = self.qualname(func)
        if qual is None:
            return None
        if qual in STATE_DICT_LOADERS:
            return Value("state_dict", call)
        if qual in LEAVES_FUNCTIONS:
            return Value("leaves", call)
        if qual in FLATTEN_FUNCTIONS:
            return Value("tuple", call, elements=(Value("leaves", call), Value("treedef", call)))

        if qual == "equinox.filter":
            source = argument(call, 0, "pytree")
            return Value("filtered", call, source=source)
        if qual == "equinox.partition":
            source = argument(call, 0, "pytree")
            return Value("tuple", call, elements=(Value("filtered", call, source=source),
                                                  Value("static", call)))
        if qual in ("equinox.apply_updates", "equinox.tree_at", "equinox.nn.inference_mode",
                    "equinox.tree_inference"):
            target = argument(call, 0 if qual != "equinox.tree_at" else 1,
                              "model" if qual != "equinox.tree_at" else "pytree")
            return again(target) if target is not None else None
        if qual == "equinox.nn.State":
            return Value("state", call)
        if qual.startswith("equinox.nn.") and qual.count(".") == 2:
            name = qual.rsplit(".", 1)[1]
            if name[:1].isupper() and name not in ("State", "StateIndex"):
                return Value("module", call, cls=qual)
            return None
        if qual.startswith(LOCAL_PREFIX):
            if self.is_equinox_module_class(qual):
                return Value("module", call, cls=qual)
            return None
        if qual.startswith("optax."):
            return self._infer_optax(qual[len("optax."):], call, again)
        if qual == "functools.partial":
            return Value("function", call)
        return None

    def _infer_optax(self, name: str, call: cst.Call,
                     again: Callable[[cst.BaseExpression], Optional[Value]]) -> Optional[Value]:
        if name in ("chain", "named_chain"):
            factories: list[str] = [name]
            for arg in call.args:
                element = arg.value
                if name == "named_chain" and isinstance(element, cst.Tuple) \
                        and len(element.elements) == 2:
                    element = element.elements[1].value
                inner = again(element)
                if arg.star or inner is None or inner.kind != "optimizer":
                    factories.append("?")
                else:
                    factories.extend(inner.factories)
            return Value("optimizer", call, factories=tuple(factories), call=call)
        if name == "MultiSteps":
            inner_node = argument(call, 0, "opt")
            inner = again(inner_node) if inner_node is not None else None
            inner_factories = inner.factories if inner is not None and inner.kind == "optimizer" \
                else ("?",)
            return Value("optimizer", call, factories=("MultiSteps",) + inner_factories, call=call)
        if name in optax_transforms.TRANSFORMATIONS:
            return Value("optimizer", call, factories=(name,), call=call)
        return None

    # -- classes -------------------------------------------------------------

    def is_equinox_module_class(self, cls: str, _seen: Optional[set[str]] = None) -> bool:
        """True when `cls` ("<local>.Net") subclasses eqx.Module, directly or not."""
        if not cls.startswith(LOCAL_PREFIX):
            return cls == "equinox.Module" or cls.startswith("equinox.nn.")
        info = self.classes.get(cls[len(LOCAL_PREFIX):])
        if info is None:
            return False
        seen = _seen or set()
        if cls in seen:
            return False
        seen.add(cls)
        for base in info.bases:
            qual = self.qualname(base)
            if qual is not None and self.is_equinox_module_class(qual, seen):
                return True
        return False

    def non_array_leaf(self, value: Value, _seen: Optional[set[str]] = None) -> Optional[str]:
        """Name one non-array leaf the module `value` provably holds, else None.

        The answer reads as a phrase: "`Regressor.norm.axis_name` is a `str`".
        """
        found = self._non_array_leaf(value, _seen)
        if found is None:
            return None
        path, kind = found
        return f"`{path}` is {kind}"

    def _non_array_leaf(self, value: Value, seen: Optional[set[str]] = None
                        ) -> Optional[tuple[str, str]]:
        """(path of the leaf from the class name, what it is), or None."""
        if value.kind != "module" or value.cls is None:
            return None
        cls = value.cls
        if cls.startswith("equinox.nn."):
            name = cls[len("equinox.nn."):]
            if name in equinox_nn.NON_ARRAY_LEAVES:
                leaf, _, kind = equinox_nn.NON_ARRAY_LEAVES[name].split(", ")[0].partition(": ")
                return f"{name}.{leaf}", _describe_kind(kind)
            if name in equinox_nn.CONTAINERS and isinstance(value.node, cst.Call):
                return self._container_non_array_leaf(name, value.node, seen)
            return None
        return self._local_class_non_array_leaf(cls, seen)

    def _container_non_array_leaf(self, name: str, call: cst.Call,
                                  seen: Optional[set[str]]) -> Optional[tuple[str, str]]:
        layers = argument(call, 0, "layers" if name == "Sequential" else "layer")
        if layers is None:
            return None
        listed = isinstance(layers, (cst.List, cst.Tuple))
        candidates = [e.value for e in layers.elements] if isinstance(layers, (cst.List, cst.Tuple)) \
            else [layers]
        for position, candidate in enumerate(candidates):
            inner = self.infer(candidate, scope=self.scope_of_call(call), seq=self.seq_of_call(call))
            where = f"{name}.layers[{position}]" if listed else f"{name}.layer"
            if inner is None:
                continue
            if inner.kind == "function":
                return where, "a function"
            found = self._non_array_leaf(inner, seen)
            if found:
                return f"{where}.{found[0].split('.', 1)[1]}", found[1]
        return None

    def _local_class_non_array_leaf(self, cls: str, seen: Optional[set[str]]
                                    ) -> Optional[tuple[str, str]]:
        seen = set() if seen is None else seen
        if cls in seen or not self.is_equinox_module_class(cls):
            return None
        seen.add(cls)
        info = self.classes[cls[len(LOCAL_PREFIX):]]
        for field_info in info.fields.values():
            if field_info.static:
                continue
            found = self._field_non_array(info, field_info, seen)
            if found:
                inner_path, kind = found
                return f"{info.name}.{field_info.name}{inner_path}", kind
        for base in info.bases:
            qual = self.qualname(base)
            if qual is None or qual == "equinox.Module":
                continue
            found = self._non_array_leaf(Value("module", None, cls=qual), seen)
            if found:
                return f"{info.name}.{found[0].split('.', 1)[1]}", found[1]
        return None

    def _field_non_array(self, info: ClassInfo, field_info: FieldInfo, seen: set[str]
                         ) -> Optional[tuple[str, str]]:
        """(path below the field, what the leaf is) when the field provably holds one."""
        annotation = field_info.annotation
        if annotation is not None:
            qual = self.qualname(annotation) or dotted_name(annotation)
            if qual in _PYTHON_SCALARS:
                return "", f"a Python `{qual}`"
            if qual is not None and (qual.startswith("equinox.nn.") or qual.startswith(LOCAL_PREFIX)):
                inner = self._non_array_leaf(Value("module", None, cls=qual), seen)
                if inner:
                    return "." + inner[0].split(".", 1)[1], inner[1]
        # What the field is given: its default, or what __init__ assigns to it.
        given: list[cst.BaseExpression] = []
        if field_info.default is not None:
            given.append(field_info.default)
        for binding in info.self_assignments.get(field_info.name, []):
            if binding.value is None:
                continue
            value = binding.value
            if isinstance(value, cst.Name) and value.value in info.init_defaults:
                default = info.init_defaults[value.value]
                if default is None:
                    continue
                value = default
            given.append(value)
        for expression in given:
            known = self.infer(expression, scope=self.module_scope, seq=1 << 62)
            if known is not None and known.kind == "function":
                return "", f"a function (`{self.module.code_for_node(expression)}`)"
        return None

    def integer_array_field(self, value: Value, _seen: Optional[set[str]] = None) -> Optional[str]:
        """`Class.field` of a module that provably holds an integer or boolean array.

        Known from jaxtyping annotations (`Int[Array, "n"]`, `Bool[...]`) on fields of
        classes in this file, directly or in a submodule.
        """
        if value.kind != "module" or value.cls is None or not value.cls.startswith(LOCAL_PREFIX):
            return None
        seen = set() if _seen is None else _seen
        if value.cls in seen or not self.is_equinox_module_class(value.cls):
            return None
        seen.add(value.cls)
        info = self.classes[value.cls[len(LOCAL_PREFIX):]]
        for field_info in info.fields.values():
            annotation = field_info.annotation
            if field_info.static or annotation is None:
                continue
            base = annotation.value if isinstance(annotation, cst.Subscript) else None
            qual = self.qualname(base) if base is not None else None
            if qual is not None and qual.startswith("jaxtyping.") and \
                    qual.rsplit(".", 1)[1].rstrip("0123456789") in INTEGER_DTYPES:
                return f"{info.name}.{field_info.name}"
            nested = self.qualname(annotation)
            if nested is not None and nested.startswith(LOCAL_PREFIX):
                found = self.integer_array_field(Value("module", None, cls=nested), seen)
                if found:
                    return f"{info.name}.{field_info.name}.{found.split('.', 1)[1]}"
        for base_node in info.bases:
            qual = self.qualname(base_node)
            if qual is not None and qual.startswith(LOCAL_PREFIX):
                found = self.integer_array_field(Value("module", None, cls=qual), seen)
                if found:
                    return f"{info.name}.{found.split('.', 1)[1]}"
        return None

    # -- call sites ----------------------------------------------------------

    def scope_of_call(self, call: cst.Call) -> Scope:
        site = self._site_by_node().get(id(call))
        return site.scope if site is not None else self.module_scope

    def seq_of_call(self, call: cst.Call) -> int:
        site = self._site_by_node().get(id(call))
        return site.seq if site is not None else 1 << 62

    def _site_by_node(self) -> dict[int, CallSite]:
        cached = getattr(self, "_sites", None)
        if cached is None:
            cached = {id(site.node): site for site in self.calls}
            self._sites = cached
        return cached

    def site(self, call: cst.Call) -> Optional[CallSite]:
        return self._site_by_node().get(id(call))

    def calls_to(self, *qualnames: str) -> Iterator[CallSite]:
        wanted = set(qualnames)
        for site in self.calls:
            if site.qualname in wanted:
                yield site


def _describe_kind(kind: str) -> str:
    """"jax._src.custom_derivatives.custom_jvp" -> "a function"; "str" -> "a `str`"."""
    if kind in ("function", "builtin_function_or_method") or kind.endswith(("custom_jvp", "custom_vjp")):
        return "a function"
    return f"a `{kind.rsplit('.', 1)[-1]}`"


def _literal_index(node: cst.Subscript) -> Optional[int]:
    if len(node.slice) != 1:
        return None
    element = node.slice[0].slice
    if not isinstance(element, cst.Index):
        return None
    value = element.value
    negative = False
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus):
        negative, value = True, value.expression
    if isinstance(value, cst.Integer):
        number = int(value.value, 0)
        return -number if negative else number
    return None


def _annotation_is_static(default: Optional[cst.BaseExpression], semantics: Semantics) -> bool:
    """`eqx.field(static=True)` or the older `eqx.static_field()`."""
    if not isinstance(default, cst.Call):
        return False
    qual = semantics.qualname(default.func)
    if qual == "equinox.static_field":
        return True
    if qual == "equinox.field":
        static = keyword_arg(default, "static")
        return isinstance(static, cst.Name) and static.value == "True"
    return False


# Fields that hold only layout (whitespace, commas, parentheses): never walked.
_LAYOUT_FIELDS = {"lpar", "rpar", "comma", "dot", "semicolon", "leading_lines",
                  "lines_after_decorators", "header", "footer", "trailing_whitespace", "equal",
                  "colon", "newline", "operator", "first_line", "empty_lines", "indent",
                  "asynchronous"}
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _child_fields(node_type: type) -> tuple[str, ...]:
    names = _CHILD_FIELDS.get(node_type)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(node_type)
                      if f.name not in _LAYOUT_FIELDS and not f.name.startswith("whitespace"))
        _CHILD_FIELDS[node_type] = names
    return names


NodeT = TypeVar("NodeT", bound=cst.CSTNode)


def descendants(root: cst.CSTNode, kind: type[NodeT]) -> list[NodeT]:
    """Every node of `kind` below `root` (and `root` itself), in source order.

    The same field walk as the Semantics pass: much cheaper than a CSTVisitor.
    """
    found: list[NodeT] = []
    pending: list[cst.CSTNode] = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, kind):
            found.append(node)
        children = _children(node)
        children.reverse()
        pending.extend(children)
    return found


def _children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """A node's children that carry meaning (no whitespace, commas or parentheses)."""
    children: list[cst.CSTNode] = []
    for name in _child_fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            children.append(value)
        elif isinstance(value, (list, tuple)):
            children.extend(item for item in value if isinstance(item, cst.CSTNode))
    return children


class _Collector:
    """The single pass that fills a Semantics.

    It walks the tree's dataclass fields itself instead of using libcst's visitor
    machinery, which rebuilds every node it passes and costs several times more.
    """

    def walk(self, root: cst.CSTNode) -> None:
        """Visit every node in source order; the per-node work is inlined (hot loop)."""
        node_class = cst.CSTNode
        handlers, leave_handlers, stack = self.handlers, self.leave_handlers, self.stack
        # Entries are nodes to visit; `None` means "leave the node below it".
        pending: list[Optional[cst.CSTNode]] = [root]
        while pending:
            node = pending.pop()
            if node is None:
                node = pending.pop()
                assert node is not None
                stack.pop()
                self.on_leave(node)
                continue
            self.seq += 1
            handler = handlers.get(type(node))
            if handler is not None:
                handler(node)
            # _children(node), inlined: this loop runs once per node of every parsed file.
            children: list[cst.CSTNode] = []
            for name in _child_fields(type(node)):
                value = getattr(node, name)
                if isinstance(value, node_class):
                    children.append(value)
                elif isinstance(value, (list, tuple)):
                    children.extend(item for item in value if isinstance(item, node_class))
            if not children and type(node) not in leave_handlers:
                self.seq += 1  # a leaf (a name, a literal): nothing to do on leaving it
                continue
            stack.append(node)
            pending.append(node)
            pending.append(None)
            children.reverse()
            pending.extend(children)

    def __init__(self, semantics: Semantics) -> None:
        self.sem = semantics
        self.seq = 0
        self.scope = semantics.module_scope
        self.loops: list[int] = []
        self.saved_loops: list[list[int]] = []
        self.stack: list[cst.CSTNode] = []
        self.handlers: dict[type, Callable[[cst.CSTNode], None]] = {
            cst.Import: self._import,
            cst.ImportFrom: self._import_from,
            cst.Call: self._call,
            cst.FunctionDef: self._function,
            cst.Lambda: self._lambda,
            cst.ClassDef: self._class,
            cst.For: self._for,
            cst.While: self._while,
            cst.CompFor: self._comp_for,
            cst.WithItem: self._with_item,
            cst.Global: self._global,
            cst.ExceptHandler: self._except_handler,
            cst.ListComp: self._comprehension,
            cst.SetComp: self._comprehension,
            cst.DictComp: self._comprehension,
            cst.GeneratorExp: self._comprehension,
        }
        self.leave_handlers: dict[type, Callable[[cst.CSTNode], None]] = {
            cst.Assign: self._assign,
            cst.AnnAssign: self._ann_assign,
            cst.AugAssign: self._aug_assign,
            cst.NamedExpr: self._named_expr,
        }

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.seq += 1
        handler = self.leave_handlers.get(type(original_node))
        if handler is not None:
            handler(original_node)
        if self.scope.node is original_node and self.scope.parent is not None:
            if self.scope.kind in ("function", "lambda", "class"):
                self.loops = self.saved_loops.pop()
            self.scope = self.scope.parent
        if self.loops and self.loops[-1] == id(original_node):
            self.loops.pop()

    # -- helpers -------------------------------------------------------------

    def _bind(self, name: str, target: cst.CSTNode, value: Optional[cst.BaseExpression],
              index: Optional[int] = None, annotation: Optional[cst.BaseExpression] = None,
              scope: Optional[Scope] = None, definition: Optional[str] = None) -> None:
        scope = scope or self.scope
        binding = Binding(name, self.seq, value, index, tuple(self.loops), target, annotation,
                          definition)
        scope.bindings.setdefault(name, []).append(binding)
        self.sem.scope_of_node[id(target)] = scope

    def _bind_target(self, target: cst.BaseExpression, value: Optional[cst.BaseExpression],
                     index: Optional[int] = None) -> None:
        if isinstance(target, cst.Name):
            self._bind(target.value, target, value, index)
        elif isinstance(target, (cst.Tuple, cst.List)):
            starred = any(isinstance(e, cst.StarredElement) for e in target.elements)
            for position, element in enumerate(target.elements):
                inner = element.value
                if index is not None or starred:
                    self._bind_target(inner, None)
                else:
                    self._bind_target(inner, value, position)
        elif isinstance(target, cst.StarredElement):
            self._bind_target(target.value, None)
        elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) \
                and target.value.value == "self":
            method = self._enclosing_method()
            if method is not None and method.method_of is not None:
                binding = Binding(target.attr.value, self.seq, value, index, tuple(self.loops),
                                  target)
                method.method_of.self_assignments.setdefault(target.attr.value, []).append(binding)
                self.sem.scope_of_node[id(target)] = self.scope

    def _enclosing_method(self) -> Optional[Scope]:
        scope: Optional[Scope] = self.scope
        while scope is not None and scope.kind in ("function", "lambda", "comprehension"):
            if scope.method_of is not None:
                return scope
            scope = scope.parent
        return None

    def _push_scope(self, kind: str, node: cst.CSTNode) -> Scope:
        scope = Scope(kind, node, self.scope)
        self.scope = scope
        if kind in ("function", "lambda", "class"):
            # A loop around a def does not run the def's body repeatedly.
            self.saved_loops.append(self.loops)
            self.loops = []
        return scope

    def _bind_parameters(self, params: cst.Parameters) -> None:
        everything = list(params.posonly_params) + list(params.params) + list(params.kwonly_params)
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                everything.append(star)
        for param in everything:
            annotation = param.annotation.annotation if param.annotation is not None else None
            self._bind(param.name.value, param.name, None, annotation=annotation)

    # -- handlers ------------------------------------------------------------

    def _import(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.Import)
        for alias in node.names:
            full = dotted_name(alias.name)
            if full is None:
                continue
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.sem.imports[alias.asname.name.value] = full
            else:
                head = full.split(".", 1)[0]
                self.sem.imports[head] = head

    def _import_from(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.ImportFrom)
        if isinstance(node.names, cst.ImportStar) or node.module is None:
            return
        module = dotted_name(node.module)
        if module is None:
            return
        if node.relative:
            module = "." * len(node.relative) + module
        for alias in node.names:
            name = dotted_name(alias.name)
            if name is None:
                continue
            local = alias.asname.name.value if alias.asname is not None and \
                isinstance(alias.asname.name, cst.Name) else name
            self.sem.imports[local] = f"{module}.{name}"

    def _call(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.Call)
        parent = self.stack[-1] if self.stack else None
        # Skip the Arg wrapper so that a call's parent is the call that receives it.
        if isinstance(parent, cst.Arg) and len(self.stack) > 1:
            parent = self.stack[-2]
        statement = self.stack[1] if len(self.stack) > 1 else None
        line = block = None
        for depth in range(len(self.stack) - 1, 0, -1):
            if isinstance(self.stack[depth], cst.SimpleStatementLine):
                line, block = self.stack[depth], self.stack[depth - 1]
                break
            if isinstance(self.stack[depth], (cst.BaseCompoundStatement, cst.Lambda)):
                break  # in a compound statement's header, or deferred: no straight line
        self.sem.calls.append(CallSite(node, self.sem.qualname(node.func), self.scope, self.seq,
                                       parent, tuple(self.loops), statement, line, block))

    def _function(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.FunctionDef)
        self._bind(node.name.value, node.name, None, definition="function")
        self.sem.function_defs.setdefault(node.name.value, node)
        if self.scope is self.sem.module_scope:
            self.sem.functions.add(node.name.value)
        enclosing_class = self.scope.class_info if self.scope.kind == "class" else None
        scope = self._push_scope("function", node)
        scope.method_of = enclosing_class
        if enclosing_class is not None and node.name.value == "__init__":
            for param in list(node.params.params) + list(node.params.kwonly_params):
                enclosing_class.init_defaults[param.name.value] = param.default
        self._bind_parameters(node.params)
        self.sem.scope_of_node[id(node)] = scope

    def _lambda(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.Lambda)
        self._push_scope("lambda", node)
        self._bind_parameters(node.params)

    def _class(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.ClassDef)
        self._bind(node.name.value, node.name, None, definition="class")
        info = ClassInfo(node.name.value, node, [arg.value for arg in node.bases])
        if self.scope is self.sem.module_scope:
            self.sem.classes[node.name.value] = info
        scope = self._push_scope("class", node)
        scope.class_info = info

    def _comprehension(self, node: cst.CSTNode) -> None:
        self._push_scope("comprehension", node)

    def _comp_for(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.CompFor)
        self._bind_target(node.target, None)

    def _for(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.For)
        self.loops.append(id(node))
        self._bind_target(node.target, None)

    def _while(self, node: cst.CSTNode) -> None:
        self.loops.append(id(node))

    def _with_item(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.WithItem)
        if node.asname is not None:
            self._bind_target(node.asname.name, None)

    def _global(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.Global)
        for item in node.names:
            self.scope.declared_global.add(item.name.value)

    def _except_handler(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.ExceptHandler)
        if node.name is not None and isinstance(node.name.name, cst.Name):
            self._bind(node.name.name.value, node.name.name, None)

    def _assign(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.Assign)
        for target in node.targets:
            self._bind_target(target.target, node.value)

    def _ann_assign(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.AnnAssign)
        if self.scope.kind == "class" and self.scope.class_info is not None \
                and isinstance(node.target, cst.Name):
            info = self.scope.class_info
            info.fields[node.target.value] = FieldInfo(
                node.target.value, node.annotation.annotation, node.value,
                _annotation_is_static(node.value, self.sem))
            return
        if isinstance(node.target, cst.Name):
            self._bind(node.target.value, node.target, node.value,
                       annotation=node.annotation.annotation)
        elif node.value is not None:
            self._bind_target(node.target, node.value)

    def _aug_assign(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.AugAssign)
        self._bind_target(node.target, None)

    def _named_expr(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.NamedExpr)
        self._bind_target(node.target, node.value)
