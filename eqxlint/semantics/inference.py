"""What an expression holds: the questions rules ask of one parsed file.

`Semantics.of(module)` runs the shared pass (scopes.py); rules then ask
`infer(expr, at=call)` for a `Value` (values.py), `leaves(value)` for the leaves a
module provably holds, and the call sites, bindings and classes of the file.
Imports of the project's own modules are followed through the project index
(project.py), which builds the Semantics of the imported file once per content.
Nothing here guesses from a name's spelling; `None` means "the code does not say".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional, Union

import libcst as cst

from eqxlint.knowledge import equinox_nn, optax_transforms
from eqxlint.semantics import values as v
from eqxlint.semantics.scopes import (Binding, CallSite, ClassInfo, Collector, FieldInfo,
                                      NamePositions, Scope)
from eqxlint.semantics.syntax import (argument, dotted_name, keyword_arg, literal_index,
                                      parameters_of, positional_args)
from eqxlint.semantics.values import Leaf, Value

if TYPE_CHECKING:
    from pathlib import Path

    from eqxlint.semantics.project import ProjectIndex

LOCAL_PREFIX = "<local>."
MAX_DEPTH = 40
_NOT_SHOWN = object()  # a field or parameter whose value no visible code gives

_CALLABLE_ANNOTATIONS = frozenset({"typing.Callable", "collections.abc.Callable", "Callable",
                                   "callable"})
_SCALAR_ANNOTATIONS = {"int": v.PYTHON_INT, "bool": v.PYTHON_BOOL, "str": v.STR,
                       "float": v.PYTHON_FLOAT, "complex": v.PYTHON_COMPLEX}
_JAXTYPING_DTYPES = {"Float": v.INEXACT_ARRAY, "Inexact": v.INEXACT_ARRAY,
                     "Complex": v.INEXACT_ARRAY, "Int": v.INTEGER_ARRAY,
                     "UInt": v.INTEGER_ARRAY, "Integer": v.INTEGER_ARRAY,
                     "Bool": v.BOOL_ARRAY, "Shaped": v.ARRAY, "Num": v.ARRAY}
_FILTER_KEEPS = {
    "equinox.is_array": v.ARRAY_KINDS,
    "equinox.is_inexact_array": frozenset({v.INEXACT_ARRAY, v.ARRAY}),
    "equinox.is_array_like": v.ARRAY_KINDS | v.ARRAY_LIKE_SCALARS,
    "equinox.is_inexact_array_like": frozenset({v.INEXACT_ARRAY, v.ARRAY, v.PYTHON_FLOAT,
                                                v.PYTHON_COMPLEX}),
}


class Semantics:
    """The facts of one module that rules query. Build with `Semantics.of(module)`."""

    def __init__(self, module: cst.Module, path: Optional["Path"] = None,
                 project: Optional["ProjectIndex"] = None,
                 cells: tuple[tuple[int, int], ...] = ()) -> None:
        self.module = module
        self.path = path
        self.project = project
        # For a notebook: (first row in the joined text, cell number) of each code cell,
        # so that rules that treat a cell as its own block can tell where one begins.
        self.cells = cells
        self.imports: dict[str, str] = {}
        # An imported name that the module binds again (imported as something else, or
        # a class or def of the file): its module-level bindings in order, as (seq, the
        # qualified name imported, or None for a class or def). `imports` holds the last.
        self.rebound_imports: dict[str, list[tuple[int, Optional[str]]]] = {}
        self._name_positions: Optional[dict[int, tuple[int, bool]]] = None
        self._walking = False  # while Collector walks, bindings further down are unknown
        self.calls: list[CallSite] = []
        self.classes: dict[str, ClassInfo] = {}  # the last module-level class of a name
        self.redefined_classes: set[str] = set()  # module-level classes defined twice or more
        self.functions: set[str] = set()
        # Every def in the file by name (the first one, where a name is reused). Rules
        # that resolve a name use `function_named` (the def its scope sees) instead.
        self.function_defs: dict[str, cst.FunctionDef] = {}
        self.function_list: list[cst.FunctionDef] = []  # every def, in source order
        self.returns: dict[int, list[cst.Return]] = {}
        self.module_scope = Scope("module", module, None)
        self.scope_of_node: dict[int, Scope] = {}
        self._sites: Optional[dict[int, CallSite]] = None
        self._calls_by_callee: Optional[dict[str, list[CallSite]]] = None
        self._in_progress: set[tuple[int, int]] = set()
        self._binding_values: dict[int, Optional[Value]] = {}
        self.text: Optional[str] = None  # the source, when the engine has it

    def mentions(self, *needles: str) -> bool:
        """Does this file, or a project module it imports, contain one of `needles`?

        A cheap text test that lets a rule skip inference where nothing it looks for
        can be defined (no libcst parse of the imported modules).
        """
        text = self.text if self.text is not None else self.module.code
        if any(needle in text for needle in needles):
            return True
        if self.project is None or self.path is None:
            return False
        data = text.encode("utf-8", "surrogatepass")
        for dependency in self.project.dependencies(self.path, data):
            source = self.project.text_of(dependency)
            if source is not None and any(needle in source for needle in needles):
                return True
        return False

    @classmethod
    def of(cls, module: cst.Module, path: Optional["Path"] = None,
           project: Optional["ProjectIndex"] = None,
           cells: tuple[tuple[int, int], ...] = (), text: Optional[str] = None) -> "Semantics":
        semantics = cls(module, path, project, cells)
        semantics.text = text
        semantics._walking = True
        try:
            Collector(semantics).walk(module)
        finally:
            semantics._walking = False
        if semantics.rebound_imports:
            # A call site's callee was named while walking, before all of its name's
            # bindings were known (a def's body runs after the module's last one).
            for site in semantics.calls:
                site.qualname = semantics.qualname(site.node.func)
        return semantics

    # -- names ---------------------------------------------------------------

    def qualname(self, node: cst.BaseExpression, seq: Optional[int] = None) -> Optional[str]:
        """The qualified name an expression refers to through this file's imports.

        `eqx.nn.MLP` -> "equinox.nn.MLP"; a class defined in this file -> "<local>.Net";
        a relative import keeps its dots (".model.CNN"); anything else -> None.
        A name the module binds more than once (imported twice as different things, or
        imported and then defined by a class or def of the file) means, in module code,
        its latest binding before the use (`seq`, where the caller knows it), and in a
        def's body its last binding.
        """
        dotted = dotted_name(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        imported = self.imports.get(head)
        if imported is not None and head in self.rebound_imports:
            imported = self._binding_at(head, node, seq)
        if imported is not None:
            return f"{imported}.{rest}" if rest else imported
        if not rest and head in self.classes:
            return LOCAL_PREFIX + head
        return None

    def _binding_at(self, name: str, node: cst.BaseExpression, seq: Optional[int]
                    ) -> Optional[str]:
        """What a use (`node`) of a name bound more than once at module level means: the
        qualified name imported, or None for a class or def of the file."""
        history = self.rebound_imports[name]
        if self._walking:  # asked where the walk is: the latest binding is the one before
            return history[-1][1]
        if seq is None:
            head = node
            while isinstance(head, cst.Attribute):
                head = head.value
            if self._name_positions is None:
                walk = NamePositions(self, frozenset(self.rebound_imports))
                walk.walk(self.module)
                self._name_positions = walk.positions
            position = self._name_positions.get(id(head))
            if position is not None and not position[1]:
                seq = position[0]
        if seq is None:  # in a def's body, or a node of no known place: the last binding
            return history[-1][1]
        before = [qualified for at, qualified in history if at < seq]
        if before:
            return before[-1]
        # Above every module-level binding: only an import inside a def can bind it there.
        return self.imports.get(name) if history[0][1] is None else history[0][1]

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
        if len(bindings) == 1:
            return bindings[0]
        kinds = {self._binding_signature(b) for b in bindings}
        return bindings[-1] if len(kinds) == 1 else None

    def _binding_signature(self, binding: Binding) -> object:
        if binding.definition is not None:
            return (binding.definition, id(binding.definition_node))
        value = self.infer_binding(binding)
        return None if value is None else value.signature

    def function_named(self, name: str, scope: Scope, seq: int) -> Optional[cst.FunctionDef]:
        """The def that `name` refers to from (scope, seq), resolved in the scope that binds it."""
        binding = self.lookup(name, scope, seq)
        if binding is not None and binding.definition == "function" \
                and isinstance(binding.definition_node, cst.FunctionDef):
            return binding.definition_node
        return None

    # -- inference -----------------------------------------------------------

    def infer(self, node: cst.BaseExpression, at: Union[CallSite, Binding, None] = None,
              scope: Optional[Scope] = None, seq: Optional[int] = None,
              _depth: int = 0) -> Optional[Value]:
        """What `node`, evaluated at a call site or binding, is known to hold."""
        if _depth > MAX_DEPTH:
            return None
        if at is not None:
            scope = at.scope if isinstance(at, CallSite) else self._scope_of_binding(at)
            seq = at.seq
        if scope is None or seq is None:
            scope, seq = self.module_scope, 1 << 62
        depth = _depth + 1

        if isinstance(node, cst.Name):
            if node.value == "None":
                return Value("none", node)
            if node.value in ("True", "False"):
                return v.leaf(v.PYTHON_BOOL, node)
            binding = self.lookup(node.value, scope, seq)
            if binding is not None:
                return self.infer_binding(binding, depth)
            qual = self.qualname(node, seq if scope is self.module_scope else None)
            if qual is not None:
                return self._infer_qualified(qual, node, depth)
            return None
        if isinstance(node, cst.Attribute):
            if isinstance(node.value, cst.Name) and node.value.value == "self":
                return self._infer_self_attribute(node.attr.value, scope, depth)
            qual = self.qualname(node, seq if scope is self.module_scope else None)
            if qual is not None:
                return self._infer_qualified(qual, node, depth)
            return None
        if isinstance(node, cst.Lambda):
            return Value("function", node)
        kind = v.literal_leaf(node)
        if kind is not None:
            return v.leaf(kind, node)
        if isinstance(node, (cst.List, cst.Tuple)):
            if any(isinstance(e, cst.StarredElement) for e in node.elements):
                return None
            elements = tuple(self.infer(e.value, scope=scope, seq=seq, _depth=depth)
                             for e in node.elements)
            return Value("list" if isinstance(node, cst.List) else "tuple", node,
                         elements=elements)
        if isinstance(node, cst.Dict):
            keys: list[Optional[str]] = []
            items: list[Optional[Value]] = []
            for element in node.elements:
                if not isinstance(element, cst.DictElement):
                    return None
                key = element.key
                keys.append(key.evaluated_value if isinstance(key, cst.SimpleString)
                            and isinstance(key.evaluated_value, str) else None)
                items.append(self.infer(element.value, scope=scope, seq=seq, _depth=depth))
            return Value("dict", node, keys=tuple(keys), elements=tuple(items))
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator,
                                                               (cst.Minus, cst.Plus)):
            operand = self.infer(node.expression, scope=scope, seq=seq, _depth=depth)
            if operand is not None and operand.kind == "leaf" \
                    and operand.leaf in v.PYTHON_SCALAR_KINDS:
                return v.leaf(v.PYTHON_INT if operand.leaf == v.PYTHON_BOOL else operand.leaf,
                              node)
            return None
        if isinstance(node, cst.DictComp):
            # `{k: v.numpy() for k, v in sd.items()}`: still weights by name.
            source = self.infer(node.for_in.iter, scope=scope, seq=seq, _depth=depth)
            if source is not None and source.kind == "state_dict_values":
                return Value("state_dict", node)
            return None
        if isinstance(node, cst.Subscript):
            base = self.infer(node.value, scope=scope, seq=seq, _depth=depth)
            index = literal_index(node)
            if base is not None and base.kind in ("tuple", "list") and index is not None \
                    and -len(base.elements) <= index < len(base.elements):
                return base.elements[index]
            return None
        if isinstance(node, cst.Call):
            return self._infer_call(node, scope, seq, depth)
        return None

    def infer_binding(self, binding: Binding, _depth: int = 0) -> Optional[Value]:
        """What a binding holds (computed once: it does not depend on where it is read)."""
        key = id(binding)
        if key in self._binding_values:
            return self._binding_values[key]
        value = self._infer_binding(binding, _depth)
        if value is not None or _depth < MAX_DEPTH // 2:  # not a cut-off deep in a chain
            self._binding_values[key] = value
        return value

    def _infer_binding(self, binding: Binding, _depth: int) -> Optional[Value]:
        if binding.definition == "function":
            return Value("function", binding.definition_node or binding.target)
        if binding.parameter is not None:
            return self._parameter_value(binding, _depth + 1)
        if binding.value is None:
            return None
        value = self.infer(binding.value, scope=self._scope_of_binding(binding),
                           seq=binding.seq - 1, _depth=_depth + 1)
        if binding.index is None:
            return value
        if value is not None and value.kind in ("tuple", "list") \
                and binding.index < len(value.elements):
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
        found = [self.infer_binding(b, depth) for b in bindings]
        if not found or any(value is None for value in found):
            return None
        signatures = {value.signature for value in found if value is not None}
        return found[-1] if len(signatures) == 1 else None

    def _parameter_value(self, binding: Binding, depth: int) -> Optional[Value]:
        """A parameter: what every visible caller passes, its default, or its annotation."""
        function, param = binding.parameter_of, binding.parameter
        if function is None or param is None or depth > MAX_DEPTH:
            return None
        key = (id(function), id(param))
        if key in self._in_progress:
            return None
        self._in_progress.add(key)
        try:
            passed = self._passed_to(function, param, depth)
        finally:
            self._in_progress.discard(key)
        if passed is not _NOT_SHOWN:
            return passed  # type: ignore[return-value]
        if param.default is not None:
            return self.infer(param.default, scope=self.module_scope, seq=1 << 62, _depth=depth)
        if param.annotation is not None:
            return self.annotation_value(param.annotation.annotation)
        return None

    def _passed_to(self, function: Union[cst.FunctionDef, cst.Lambda], param: cst.Param,
                   depth: int) -> object:
        """What the file's callers of `function` pass for `param`; _NOT_SHOWN if none does."""
        if not isinstance(function, cst.FunctionDef):
            return _NOT_SHOWN
        sites, skip_self = self._callers_of(function)
        if not sites:
            return _NOT_SHOWN
        params = parameters_of(function)
        if param not in params and param not in function.params.kwonly_params:
            return None  # *args, **kwargs
        position = params.index(param) - skip_self if param in params else None
        found: list[Value] = []
        for site in sites:
            call = site.node
            if any(arg.star for arg in call.args):
                return None
            given = keyword_arg(call, param.name.value)
            if given is None and position is not None and position >= 0:
                positional = positional_args(call)
                given = positional[position] if position < len(positional) else None
            if given is None:
                if param.default is None:
                    return None
                given = param.default
                value = self.infer(given, scope=self.module_scope, seq=1 << 62, _depth=depth)
            else:
                value = self.infer(given, at=site, _depth=depth)
            if value is None:
                return None
            found.append(value)
        if len({value.signature for value in found}) != 1:
            return None
        return found[0]

    def _callers_of(self, function: cst.FunctionDef) -> tuple[list[CallSite], int]:
        """Call sites of a def in this file (by name, as its scope binds it), and whether
        the first parameter is `self` (for __init__: the class's constructor calls)."""
        scope = self.scope_of_node.get(id(function))
        owner = scope.method_of if scope is not None else None
        if owner is not None:
            if function.name.value != "__init__":
                return [], 1
            return list(self._calls_by_name().get(owner.name, [])), 1
        sites = []
        for site in self._calls_by_name().get(function.name.value, []):
            if self.function_named(function.name.value, site.scope, site.seq) is function:
                sites.append(site)
        return sites, 0

    def _calls_by_name(self) -> dict[str, list[CallSite]]:
        if self._calls_by_callee is None:
            index: dict[str, list[CallSite]] = {}
            for site in self.calls:
                if isinstance(site.node.func, cst.Name):
                    index.setdefault(site.node.func.value, []).append(site)
            self._calls_by_callee = index
        return self._calls_by_callee

    def annotation_value(self, annotation: cst.BaseExpression) -> Optional[Value]:
        """What a parameter or field annotated this way holds, where nothing else says."""
        if isinstance(annotation, cst.Subscript):
            base = self.qualname(annotation.value) or dotted_name(annotation.value)
            if base is not None and base.startswith("jaxtyping."):
                kind = _JAXTYPING_DTYPES.get(base.rsplit(".", 1)[1].rstrip("0123456789"))
                return v.leaf(kind) if kind is not None else None
            if base in _CALLABLE_ANNOTATIONS:
                return Value("function", annotation)
            return None
        qual = self.qualname(annotation) or dotted_name(annotation)
        if qual is None:
            return None
        if qual in _CALLABLE_ANNOTATIONS:
            return Value("function", annotation)
        if qual in _SCALAR_ANNOTATIONS and qual not in self.imports:
            return v.leaf(_SCALAR_ANNOTATIONS[qual])
        if qual in ("jax.Array", "jax.numpy.ndarray", "jaxtyping.Array"):
            return v.leaf(v.ARRAY)
        return self._class_value(qual, None, 0)

    def _infer_qualified(self, qual: str, node: cst.BaseExpression, depth: int) -> Optional[Value]:
        """A name reached through an import: a library function, or a project definition."""
        if qual.startswith(v.FUNCTION_NAMESPACES):
            name = qual.rsplit(".", 1)[-1]
            if name in v.FLOAT_CONSTANTS:
                return v.leaf(v.PYTHON_FLOAT, node)  # jnp.inf, math.pi: numbers
            if v.is_dtype_name(name) or not name[:1].islower():
                return None  # jnp.float32, np.ndarray: types, not functions
            return Value("function", node)
        target = self._project_definition(qual)
        if target is None:
            return None
        owner, name = target
        if name in owner.classes:
            return None  # a class object, not an instance
        binding = owner.lookup(name, owner.module_scope, 1 << 62)
        if binding is not None:
            return owner.infer_binding(binding, depth)
        reexported = owner.imports.get(name)
        if reexported is not None:
            return owner._infer_qualified(reexported, node, depth + 1)
        return None

    def _project_definition(self, qual: str) -> Optional[tuple["Semantics", str]]:
        """(the Semantics of the project file that defines `qual`'s head, the top-level name)."""
        if self.project is None or self.path is None or qual.startswith(LOCAL_PREFIX):
            return None
        return self.project.definition(self.path, qual)

    def _infer_call(self, call: cst.Call, scope: Scope, seq: int, depth: int) -> Optional[Value]:
        func = call.func
        # eqx.nn.make_with_state(Net)(...) -> (model, state)
        if isinstance(func, cst.Call):
            inner = self.qualname(func.func)
            if inner == "equinox.nn.make_with_state":
                cls_node = argument(func, 0, "model_class")
                cls = self.qualname(cls_node) if cls_node is not None else None
                if cls is not None and cls.startswith(LOCAL_PREFIX) \
                        and not self._means_last_class(cls_node, scope, seq):
                    cls = None
                module = self._class_value(cls, call, depth) if cls is not None else None
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
            if method == "copy" and not call.args:
                owner = again(func.value)
                if owner is not None and owner.kind == "state_dict":
                    return owner
        if isinstance(func, cst.Name) and func.value in ("list", "tuple", "dict") \
                and func.value not in self.imports and self.lookup(func.value, scope, seq) is None:
            if len(call.args) != 1 or call.args[0].keyword is not None:
                return None
            inner_value = again(call.args[0].value)
            if inner_value is None:
                return None
            if func.value == "dict" and inner_value.kind == "state_dict":
                return inner_value  # dict(np.load(path)): still weights by name
            if inner_value.kind in ("leaves", "state_dict_values"):
                return inner_value
            if func.value != "dict" and inner_value.kind in ("list", "tuple"):
                return Value(func.value, call, elements=inner_value.elements)
            return None
        if isinstance(func, cst.Name):
            local_def = self.function_named(func.value, scope, seq)
            if local_def is not None:
                return self.returned_value(local_def, depth)
        qual = self.qualname(func, seq if scope is self.module_scope else None)
        if qual is None:
            return None
        if qual in v.STATE_DICT_LOADERS:
            return Value("state_dict", call)
        if qual in v.LEAVES_FUNCTIONS:
            tree = argument(call, 0, "tree")
            mapped = again(tree) if tree is not None else None
            # The leaves of `tree_map(id, tree)` are Python ints, not arrays.
            return Value("leaves", call, source=tree,
                         leaf=mapped.leaf if mapped is not None and mapped.kind == "mapped"
                         else None)
        if qual in v.FLATTEN_FUNCTIONS:
            return Value("tuple", call, elements=(Value("leaves", call), Value("treedef", call)))
        if qual == "equinox.filter":
            source = argument(call, 0, "pytree")
            spec = argument(call, 1, "filter_spec")
            spec_qual = self.qualname(spec) if spec is not None else None
            return Value("filtered", call, source=source,
                         factories=(spec_qual,) if spec_qual in _FILTER_KEEPS else ())
        if qual == "equinox.partition":
            source = argument(call, 0, "pytree")
            spec = argument(call, 1, "filter_spec")
            spec_qual = self.qualname(spec) if spec is not None else None
            factories = (spec_qual,) if spec_qual in _FILTER_KEEPS else ()
            return Value("tuple", call, elements=(Value("filtered", call, source=source,
                                                        factories=factories),
                                                  Value("static", call)))
        if qual == "equinox.combine":
            first = argument(call, 0, "")
            first_value = again(first) if first is not None else None
            if first_value is not None and first_value.kind == "filtered" \
                    and first_value.source is not None:
                return again(first_value.source)
            return None
        if qual in v.TREE_MAP_FUNCTIONS:
            mapped_function = argument(call, 0, "f")
            if isinstance(mapped_function, cst.Name) and mapped_function.value == "id" \
                    and self.lookup("id", scope, seq) is None and "id" not in self.imports:
                return Value("mapped", call, leaf=v.PYTHON_INT)
            tree = argument(call, 1, "tree")
            tree_value = again(tree) if tree is not None else None
            if tree_value is not None and tree_value.kind == "filtered":
                return Value("filtered", call, source=tree_value.source,
                             factories=tree_value.factories)
            return None
        if qual in v.STRUCTURE_PRESERVING:
            where = v.STRUCTURE_PRESERVING[qual]
            if where is None:
                return None
            target = argument(call, where[0], where[1])
            return again(target) if target is not None else None
        if qual == "equinox.nn.State":
            return Value("state", call)
        if qual in v.ARRAY_FROM_LITERAL or qual in v.INEXACT_ARRAY_FACTORIES \
                or qual in v.INTEGER_ARRAY_FACTORIES:
            return v.leaf(self._array_kind(qual, call), call)
        if qual.startswith("equinox.nn.") and qual.count(".") == 2:
            name = qual.rsplit(".", 1)[1]
            if name[:1].isupper() and name not in ("State", "StateIndex"):
                return Value("module", call, cls=qual, site=self)
            return None
        if qual.startswith(LOCAL_PREFIX):
            if not self._means_last_class(func, scope, seq):
                return None
            return self._class_value(qual, call, depth)
        if qual.startswith("optax."):
            return self._infer_optax(qual[len("optax."):], call, scope, seq, depth)
        if qual == "functools.partial":
            return Value("function", call)
        return self._infer_call_of(qual, call, self, depth)

    def _infer_call_of(self, qual: str, call: cst.Call, caller: "Semantics", depth: int
                       ) -> Optional[Value]:
        """A call written in `caller` whose callee `qual` is named through this file."""
        if depth > MAX_DEPTH:
            return None
        if qual.startswith("equinox.nn.") and qual.count(".") == 2:
            return Value("module", call, cls=qual, site=caller)
        if qual.startswith("optax."):
            return caller._infer_optax(qual[len("optax."):], call, caller.module_scope, 1 << 62,
                                       depth)
        target = self._project_definition(qual)
        if target is None:
            return None
        owner, name = target
        if name in owner.classes:
            if owner.is_equinox_module_class(LOCAL_PREFIX + name):
                return Value("module", call, cls=LOCAL_PREFIX + name, owner=owner, site=caller)
            return None
        definition = owner.function_named(name, owner.module_scope, 1 << 62)
        if definition is not None:
            return owner.returned_value(definition, depth)
        reexported = owner.imports.get(name)
        if reexported is not None:
            return owner._infer_call_of(reexported, call, caller, depth + 1)
        return None

    def _array_kind(self, qual: str, call: cst.Call) -> str:
        dtype = keyword_arg(call, "dtype")
        if dtype is not None:
            kind = v.dtype_kind(self.qualname(dtype) or dotted_name(dtype)
                                or (dtype.evaluated_value if isinstance(dtype, cst.SimpleString)
                                    else None))  # type: ignore[arg-type]
            return kind or v.ARRAY
        if qual in v.INTEGER_ARRAY_FACTORIES:
            if qual.endswith("arange") and any(isinstance(a.value, cst.Float) for a in call.args):
                return v.INEXACT_ARRAY
            return v.INTEGER_ARRAY if not qual.endswith("permutation") else v.ARRAY
        if qual in v.ARRAY_FROM_LITERAL:
            first = argument(call, 0, "object")
            return v.array_of_literal(first) if first is not None else v.ARRAY
        return v.INEXACT_ARRAY

    def returned_value(self, function: cst.FunctionDef, depth: int = 0) -> Optional[Value]:
        """What a def of this file returns, when all its `return`s agree."""
        key = (id(function), -1)
        if depth > MAX_DEPTH or key in self._in_progress:
            return None
        returns = self.returns.get(id(function), [])
        if not returns or any(r.value is None for r in returns):
            return None
        self._in_progress.add(key)
        try:
            found: list[Value] = []
            for statement in returns:
                assert statement.value is not None
                value = self.infer(statement.value, scope=self.scope_of_node.get(id(function)),
                                   seq=1 << 62, _depth=depth + 1)
                if value is None:
                    return None
                found.append(value)
        finally:
            self._in_progress.discard(key)
        return found[0] if len({value.signature for value in found}) == 1 else None

    def _infer_optax(self, name: str, call: cst.Call, scope: Scope, seq: int, depth: int
                     ) -> Optional[Value]:
        def again(node: cst.BaseExpression) -> Optional[Value]:
            return self.infer(node, scope=scope, seq=seq, _depth=depth)

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

    def class_ref(self, cls: str, _depth: int = 0) -> Optional[tuple["Semantics", ClassInfo]]:
        """The file and the ClassInfo of a project class named `cls` from this file."""
        if _depth > MAX_DEPTH:
            return None
        if cls.startswith(LOCAL_PREFIX):
            info = self.classes.get(cls[len(LOCAL_PREFIX):])
            return (self, info) if info is not None else None
        target = self._project_definition(cls)
        if target is None:
            return None
        owner, name = target
        if name in owner.classes:
            return owner, owner.classes[name]
        reexported = owner.imports.get(name)
        if reexported is not None:
            return owner.class_ref(reexported, _depth + 1)
        return None

    def class_info(self, value: Value) -> Optional[ClassInfo]:
        """The ClassInfo of a module value of a project class, wherever it is defined."""
        ref = self.class_ref_of(value)
        return ref[1] if ref is not None else None

    def class_ref_of(self, value: Value) -> Optional[tuple["Semantics", ClassInfo]]:
        """(the file defining it, its ClassInfo) for a module value of a project class."""
        if value.kind != "module" or value.cls is None or value.cls.startswith("equinox."):
            return None
        owner = value.owner or self
        return owner.class_ref(value.cls)

    def _means_last_class(self, node: Optional[cst.BaseExpression], scope: Scope, seq: int
                          ) -> bool:
        """Whether a class name of the file, used at (`scope`, `seq`), means the class that
        `classes` holds: its last module-level definition. Module code above a later
        definition means an earlier one (a notebook redefines its classes cell by cell),
        which `classes` has not kept: nothing is inferred there. A def's body runs once
        the module has run: the last."""
        if not isinstance(node, cst.Name) or node.value not in self.redefined_classes \
                or scope is not self.module_scope:
            return True
        binding = self.lookup(node.value, scope, seq)
        return binding is not None and \
            binding.definition_node is self.classes[node.value].node

    def _class_value(self, qual: str, call: Optional[cst.Call], depth: int) -> Optional[Value]:
        """A module value of class `qual` (an equinox.nn layer or a project class)."""
        if qual.startswith("equinox.nn.") and qual.count(".") == 2:
            return Value("module", call, cls=qual, site=self)
        ref = self.class_ref(qual)
        if ref is None:
            return None
        owner, info = ref
        if not owner.is_equinox_module_class(LOCAL_PREFIX + info.name):
            return None
        return Value("module", call, cls=LOCAL_PREFIX + info.name,
                     owner=owner if owner is not self else None, site=self)

    def is_equinox_module_class(self, cls: str, _seen: Optional[set[int]] = None) -> bool:
        """True when `cls` ("<local>.Net", or a project class) subclasses eqx.Module."""
        if cls == "equinox.Module" or cls.startswith("equinox.nn."):
            return True
        ref = self.class_ref(cls)
        if ref is None:
            return False
        owner, info = ref
        seen = _seen if _seen is not None else set()
        if id(info) in seen:
            return False
        seen.add(id(info))
        for base in info.bases:
            qual = owner.qualname(base)
            if qual is not None and owner.is_equinox_module_class(qual, seen):
                return True
        return False

    # -- leaves --------------------------------------------------------------

    def leaves(self, value: Optional[Value], _path: str = "", _seen: Optional[set[int]] = None,
               _depth: int = 0) -> Iterator[Leaf]:
        """The leaves `value` provably holds, with their paths ("CNN.layers[2]").

        A leaf the code does not show is not yielded: an empty answer means "nothing
        proven", never "arrays only".
        """
        if value is None or _depth > MAX_DEPTH:
            return
        depth = _depth + 1
        if value.kind == "leaf" and value.leaf is not None:
            yield Leaf(_path or "value", value.leaf, self._shown(value))
        elif value.kind == "function":
            yield Leaf(_path or "value", v.FUNCTION, self._shown(value))
        elif value.kind in ("list", "tuple"):
            for index, element in enumerate(value.elements):
                yield from self.leaves(element, f"{_path}[{index}]", _seen, depth)
        elif value.kind == "dict":
            for key, element in zip(value.keys, value.elements):
                if key is not None:
                    yield from self.leaves(element, f"{_path}[{key!r}]", _seen, depth)
        elif value.kind == "filtered":
            keeps = _FILTER_KEEPS.get(value.factories[0]) if value.factories else None
            if keeps is None or value.source is None or not isinstance(value.node, cst.Call):
                return
            site_sem = self
            source = site_sem.infer(value.source, scope=site_sem.scope_of_call(value.node),
                                    seq=site_sem.seq_of_call(value.node))
            for found in self.leaves(source, _path, _seen, depth):
                if found.kind in keeps:
                    yield found
        elif value.kind == "module":
            yield from self._module_leaves(value, _path, _seen if _seen is not None else set(),
                                           depth)

    def _shown(self, value: Value) -> Optional[str]:
        node = value.node
        return dotted_name(node) if isinstance(node, (cst.Name, cst.Attribute)) else None

    def _module_leaves(self, value: Value, path: str, seen: set[int], depth: int
                       ) -> Iterator[Leaf]:
        cls = value.cls
        if cls is None:
            return
        site = value.site or self
        if cls.startswith("equinox.nn."):
            name = cls[len("equinox.nn."):]
            prefix = path or name
            call = value.node if isinstance(value.node, cst.Call) else None
            if name in equinox_nn.CONTAINERS:
                if call is not None:
                    yield from site._container_leaves(name, call, prefix, seen, depth)
                return
            yield from site._equinox_layer_leaves(name, call, prefix)
            return
        ref = self.class_ref_of(value)
        if ref is None:
            return
        owner, info = ref
        if id(info) in seen:
            return
        seen = seen | {id(info)}
        call = value.node if isinstance(value.node, cst.Call) else None
        prefix = path or info.name
        for field_info in owner._fields_of(info):
            if field_info.static:
                continue
            held = owner._field_value(info, field_info, call, site, depth)
            if held is _NOT_SHOWN or held is None:
                # Nothing shown: the annotation says what the field holds. Shown but not
                # known: only annotations that are precise about it (a jaxtyping dtype, a
                # module class) speak; `float` fields often hold arrays, `Callable` ones
                # whatever a factory made.
                annotated = owner.annotation_value(field_info.annotation) \
                    if field_info.annotation is not None else None
                precise = annotated is not None and (
                    annotated.kind == "module"
                    or (annotated.kind == "leaf" and annotated.leaf in v.ARRAY_KINDS))
                held = annotated if held is _NOT_SHOWN or precise else None
            if held is None:
                continue
            assert isinstance(held, Value)
            yield from owner.leaves(held, f"{prefix}.{field_info.name}", seen, depth)

    def _equinox_layer_leaves(self, name: str, call: Optional[cst.Call], prefix: str
                              ) -> Iterator[Leaf]:
        """An equinox.nn layer's leaves, as measured from the installed equinox.

        Its array fields (and submodules, which hold arrays) come from FIELD_KINDS; its
        non-array leaves, nested ones included (`MultiheadAttention.dropout.p`), from
        NON_ARRAY_LEAVES. A field given in the call speaks for itself.
        """
        dependent = equinox_nn.CONSTRUCTOR_DEPENDENT_FIELDS.get(name, {})
        for field_name, kind in equinox_nn.FIELD_KINDS.get(name, {}).items():
            if kind in ("module", "modules"):
                yield Leaf(f"{prefix}.{field_name}", v.ARRAY, from_library=True)
            elif kind in v.ARRAY_KINDS and "none" not in dependent.get(field_name, ()):
                yield Leaf(f"{prefix}.{field_name}", kind, from_library=True)
        described = equinox_nn.NON_ARRAY_LEAVES.get(name)
        if not described:
            return
        for item in described.split(", "):
            field_name, _, kind = item.partition(": ")
            given = keyword_arg(call, field_name) if call is not None else None
            if given is not None:
                known = self.infer(given, scope=self.scope_of_call(call), seq=self.seq_of_call(call))  # type: ignore[arg-type]
                if known is None:
                    continue
                yield from self.leaves(known, f"{prefix}.{field_name}")
                continue
            yield Leaf(f"{prefix}.{field_name}", _measured_kind(kind), from_library=True)

    def _container_leaves(self, name: str, call: cst.Call, prefix: str, seen: set[int],
                          depth: int) -> Iterator[Leaf]:
        layers = argument(call, 0, "layers" if name == "Sequential" else "layer")
        if layers is None:
            return
        held = self.infer(layers, scope=self.scope_of_call(call), seq=self.seq_of_call(call))
        if held is None:
            return
        where = f"{prefix}.layers" if name == "Sequential" else f"{prefix}.layer"
        if held.kind in ("list", "tuple"):
            for position, element in enumerate(held.elements):
                yield from self.leaves(element, f"{where}[{position}]", seen, depth)
        else:
            yield from self.leaves(held, where, seen, depth)

    def _fields_of(self, info: ClassInfo, _seen: Optional[set[int]] = None) -> list[FieldInfo]:
        """Fields in dataclass order: the bases' (project classes) first, then the class's."""
        seen = _seen if _seen is not None else set()
        if id(info) in seen:
            return []
        seen.add(id(info))
        fields: dict[str, FieldInfo] = {}
        for base in info.bases:
            qual = self.qualname(base)
            ref = self.class_ref(qual) if qual is not None else None
            if ref is not None:
                for inherited in ref[0]._fields_of(ref[1], seen):
                    fields[inherited.name] = inherited
        for name, field_info in info.fields.items():
            fields[name] = field_info
        return list(fields.values())

    def _init_of(self, info: ClassInfo, _seen: Optional[set[int]] = None
                 ) -> Optional[tuple["Semantics", ClassInfo]]:
        """The class (here or a project base) whose __init__ builds instances of `info`."""
        seen = _seen if _seen is not None else set()
        if id(info) in seen:
            return None
        seen.add(id(info))
        if info.init is not None:
            return self, info
        for base in info.bases:
            qual = self.qualname(base)
            ref = self.class_ref(qual) if qual is not None else None
            if ref is not None:
                found = ref[0]._init_of(ref[1], seen)
                if found is not None:
                    return found
        return None

    def _field_value(self, info: ClassInfo, field_info: FieldInfo, call: Optional[cst.Call],
                     site: "Semantics", depth: int) -> object:
        """What a field holds: a Value, None (shown but unknown) or _NOT_SHOWN."""
        builder = self._init_of(info)
        if builder is not None:
            owner, init_class = builder
            if init_class is not info and field_info.name not in init_class.self_assignments:
                return _NOT_SHOWN if owner is self else None
            return owner._assigned_in_init(init_class, field_info, call, site, depth)
        # The dataclass __init__: the call's arguments, in field order, else the default.
        given: Optional[cst.BaseExpression] = None
        if call is not None:
            if any(arg.star for arg in call.args):
                return None
            given = keyword_arg(call, field_info.name)
            if given is None:
                order = [f.name for f in self._fields_of(info)]
                position = order.index(field_info.name) if field_info.name in order else -1
                positional = positional_args(call)
                if 0 <= position < len(positional):
                    given = positional[position]
        if given is not None:
            return site.infer(given, scope=site.scope_of_call(call), seq=site.seq_of_call(call),  # type: ignore[arg-type]
                              _depth=depth)
        default = _field_default(field_info, self)
        if default is not None:
            return self.infer(default, scope=self.module_scope, seq=1 << 62, _depth=depth)
        return _NOT_SHOWN

    def _assigned_in_init(self, info: ClassInfo, field_info: FieldInfo, call: Optional[cst.Call],
                          site: "Semantics", depth: int) -> object:
        bindings = info.self_assignments.get(field_info.name, [])
        if not bindings:
            default = _field_default(field_info, self)
            if default is not None:
                return self.infer(default, scope=self.module_scope, seq=1 << 62, _depth=depth)
            return _NOT_SHOWN
        found: list[Value] = []
        not_shown = False
        for binding in bindings:
            if binding.value is None:
                return None
            held = self._init_expression(info, binding, call, site, depth)
            if held is _NOT_SHOWN:
                not_shown = True
                continue
            if held is None:
                return None
            assert isinstance(held, Value)
            found.append(held)
        if not found:
            return _NOT_SHOWN if not_shown else None
        if not_shown or len({value.signature for value in found}) != 1:
            return None
        return found[-1]

    def _init_expression(self, info: ClassInfo, binding: Binding, call: Optional[cst.Call],
                         site: "Semantics", depth: int) -> object:
        """`self.f = <expr>` in __init__, with __init__'s parameters bound to `call`'s arguments."""
        expression = binding.value
        assert expression is not None
        init = info.init
        if isinstance(expression, cst.Name) and init is not None:
            scope = self.scope_of_node.get(id(init))
            param_binding = scope.bindings.get(expression.value, [None])[0] \
                if scope is not None else None
            if param_binding is not None and param_binding.parameter is not None:
                param = param_binding.parameter
                if call is not None:
                    if any(arg.star for arg in call.args):
                        return None
                    given = keyword_arg(call, param.name.value)
                    params = parameters_of(init)
                    if given is None and param in params:
                        position = params.index(param) - 1
                        positional = positional_args(call)
                        if 0 <= position < len(positional):
                            given = positional[position]
                    if given is not None:
                        return site.infer(given, scope=site.scope_of_call(call),
                                          seq=site.seq_of_call(call), _depth=depth)
                if param.default is not None:
                    return self.infer(param.default, scope=self.module_scope, seq=1 << 62,
                                      _depth=depth)
                if call is None and not self._callers_of(init)[0]:
                    if param.annotation is not None:
                        return self.annotation_value(param.annotation.annotation)
                    return _NOT_SHOWN
                if call is None:
                    return self.infer_binding(param_binding, depth)
                return None
        return self.infer_binding(binding, depth)

    def non_array_leaf(self, value: Value) -> Optional[str]:
        """Name one non-array leaf the module `value` provably holds, else None.

        The answer reads as a phrase: "`Regressor.norm.axis_name` is a `str`".
        """
        found = self.first_leaf(value, v.NON_ARRAY_KINDS)
        return found.phrase() if found is not None else None

    def first_leaf(self, value: Optional[Value], kinds: "frozenset[str] | set[str]"
                   ) -> Optional[Leaf]:
        """The leaf of `value` whose kind is one of `kinds` that best explains a failure.

        Functions first (they fail everywhere), then strings and objects, then scalars;
        among equals the shallowest, then the first in source order.
        """
        def rank(candidate: Leaf) -> tuple[int, int]:  # then the one nearest the top
            return _PRIORITY.get(candidate.kind, 9), candidate.path.count(".")

        best: Optional[Leaf] = None
        for found in self.leaves(value):
            if found.kind in kinds and (best is None or rank(found) < rank(best)):
                best = found
        return best

    def refused_leaf(self, value: Optional[Value], consumer: str) -> Optional[Leaf]:
        """The leaf of `value` that `consumer` ("jax.jit", "jax.grad", "jax.lax.scan(carry)",
        ... as measured in eqxlint/knowledge/jax_transforms.py) cannot take, if one is proven."""
        from eqxlint.knowledge import jax_transforms

        accepts = jax_transforms.ACCEPTS.get(consumer)
        if accepts is None:
            raise KeyError(f"no measured knowledge of {consumer!r}")
        refused = {kind for kind, ok in accepts.items() if not ok}
        return self.first_leaf(value, refused)

    def integer_array_field(self, value: Value) -> Optional[str]:
        """`Class.field` of a module that provably holds an integer or boolean array."""
        found = self.first_leaf(value, {v.INTEGER_ARRAY, v.BOOL_ARRAY})
        return found.path if found is not None else None

    # -- call sites ----------------------------------------------------------

    def scope_of_call(self, call: cst.Call) -> Scope:
        site = self._site_by_node().get(id(call))
        return site.scope if site is not None else self.module_scope

    def seq_of_call(self, call: cst.Call) -> int:
        site = self._site_by_node().get(id(call))
        return site.seq if site is not None else 1 << 62

    def _site_by_node(self) -> dict[int, CallSite]:
        if self._sites is None:
            self._sites = {id(site.node): site for site in self.calls}
        return self._sites

    def site(self, call: cst.Call) -> Optional[CallSite]:
        return self._site_by_node().get(id(call))

    def calls_to(self, *qualnames: str) -> Iterator[CallSite]:
        wanted = set(qualnames)
        for site in self.calls:
            if site.qualname in wanted:
                yield site


_PRIORITY = {v.FUNCTION: 0, v.STR: 1, v.OBJECT: 2, v.PYTHON_INT: 3, v.PYTHON_BOOL: 4,
             v.PYTHON_FLOAT: 5, v.PYTHON_COMPLEX: 6, v.INTEGER_ARRAY: 7, v.BOOL_ARRAY: 8}


def _measured_kind(kind: str) -> str:
    """The knowledge table's type names ("jax._src.custom_derivatives.custom_jvp") as leaf kinds."""
    if kind in ("function", "builtin_function_or_method") or kind.endswith(("custom_jvp",
                                                                           "custom_vjp")):
        return v.FUNCTION
    return {"int": v.PYTHON_INT, "float": v.PYTHON_FLOAT, "bool": v.PYTHON_BOOL,
            "str": v.STR, "complex": v.PYTHON_COMPLEX}.get(kind, v.OBJECT)


def _field_default(field_info: FieldInfo, semantics: Semantics) -> Optional[cst.BaseExpression]:
    """`x: int = 3` -> 3; `x: int = eqx.field(default=3)` -> 3; `eqx.field(static=...)` -> None."""
    default = field_info.default
    if isinstance(default, cst.Call) and semantics.qualname(default.func) in (
            "equinox.field", "dataclasses.field", "equinox.static_field"):
        return keyword_arg(default, "default")
    return default
