"""Scopes and bindings: the single pass over a parsed file that every rule shares.

The pass records, in source order:
- imports and aliases, so that `eqx.nn.MLP`, `equinox.nn.MLP` and `MLP` (after
  `from equinox.nn import MLP`) all resolve to the qualified name `equinox.nn.MLP`;
- every binding of a name (assignment, parameter, loop target, def, class) in the
  scope that binds it, with the expression it was bound to when there is one;
- classes defined in the file, with their bases, fields, methods and `self.x = ...`
  assignments; what each function returns;
- every call site, with its scope, its parent node and the loops around it.

It is deliberately not libcst's QualifiedNameProvider/ScopeProvider: those cost
several times the parse, and the rules need far less.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Union

import libcst as cst

from eqxlint.semantics.syntax import NODE_TYPES, child_fields, dotted_name, keyword_arg

if TYPE_CHECKING:
    from eqxlint.semantics.inference import Semantics


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
    # The FunctionDef/ClassDef of a definition; the function (and the Param) of a parameter.
    definition_node: Optional[cst.CSTNode] = field(default=None, repr=False)
    parameter_of: Optional[Union[cst.FunctionDef, cst.Lambda]] = field(default=None, repr=False)
    parameter: Optional[cst.Param] = field(default=None, repr=False)


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
    init: Optional[cst.FunctionDef] = field(default=None, repr=False)
    methods: dict[str, cst.FunctionDef] = field(default_factory=dict, repr=False)


class Collector:
    """The single pass that fills a Semantics.

    It walks the tree's dataclass fields itself instead of using libcst's visitor
    machinery, which rebuilds every node it passes and costs several times more.
    """

    def walk(self, root: cst.CSTNode) -> None:
        """Visit every node in source order; the per-node work is inlined (hot loop)."""
        node_types = NODE_TYPES
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
            # children(node), inlined: this loop runs once per node of every parsed file.
            children: list[cst.CSTNode] = []
            for name in child_fields(type(node)):
                value = getattr(node, name)
                kind = type(value)
                if kind in node_types:
                    children.append(value)
                elif kind is list or kind is tuple:
                    children.extend(item for item in value if type(item) in node_types)
            if not children and type(node) not in leave_handlers:
                self.seq += 1  # a leaf (a name, a literal): nothing to do on leaving it
                continue
            stack.append(node)
            pending.append(node)
            pending.append(None)
            children.reverse()
            pending.extend(children)

    def __init__(self, semantics: "Semantics") -> None:
        self.sem = semantics
        self.seq = 0
        # Each name's first module-level import: (seq, qualified name).
        self.first_imports: dict[str, tuple[int, str]] = {}
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
            cst.Return: self._return,
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
              scope: Optional[Scope] = None, definition: Optional[str] = None,
              definition_node: Optional[cst.CSTNode] = None,
              parameter_of: Optional[Union[cst.FunctionDef, cst.Lambda]] = None,
              parameter: Optional[cst.Param] = None) -> None:
        scope = scope or self.scope
        binding = Binding(name, self.seq, value, index, tuple(self.loops), target, annotation,
                          definition, definition_node, parameter_of, parameter)
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

    def _bind_parameters(self, owner: Union[cst.FunctionDef, cst.Lambda]) -> None:
        params = owner.params
        everything = list(params.posonly_params) + list(params.params) + list(params.kwonly_params)
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                everything.append(star)
        for param in everything:
            annotation = param.annotation.annotation if param.annotation is not None else None
            self._bind(param.name.value, param.name, None, annotation=annotation,
                       parameter_of=owner, parameter=param)

    # -- handlers ------------------------------------------------------------

    def _import(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.Import)
        for alias in node.names:
            full = dotted_name(alias.name)
            if full is None:
                continue
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self._imported(alias.asname.name.value, full)
            else:
                head = full.split(".", 1)[0]
                self._imported(head, head)

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
            self._imported(local, f"{module}.{name}")

    def _imported(self, local: str, qualified: str) -> None:
        self.sem.imports[local] = qualified
        if self.scope is self.sem.module_scope:
            self._module_binding(local, qualified)

    def _rebinds_import(self, name: str) -> None:
        """A module-level class or def named like an import: from here on, the file's."""
        if self.scope is self.sem.module_scope and name in self.sem.imports:
            self._module_binding(name, None)

    def _module_binding(self, name: str, qualified: Optional[str]) -> None:
        """An import (`qualified`) or a class or def (None) binding `name` at module level.
        A name bound once, or imported again as the same thing, needs no history."""
        history = self.sem.rebound_imports.get(name)
        if history is not None:
            if history[-1][1] != qualified or qualified is None:
                history.append((self.seq, qualified))
            return
        first = self.first_imports.get(name)
        if first is None:
            if qualified is not None:
                self.first_imports[name] = (self.seq, qualified)
            else:  # imported only inside functions so far: the def is the first binding
                self.sem.rebound_imports[name] = [(self.seq, None)]
        elif first[1] != qualified or qualified is None:
            self.sem.rebound_imports[name] = [first, (self.seq, qualified)]

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
        self._bind(node.name.value, node.name, None, definition="function", definition_node=node)
        self._rebinds_import(node.name.value)
        self.sem.function_list.append(node)
        self.sem.function_defs.setdefault(node.name.value, node)
        if self.scope is self.sem.module_scope:
            self.sem.functions.add(node.name.value)
        enclosing_class = self.scope.class_info if self.scope.kind == "class" else None
        scope = self._push_scope("function", node)
        scope.method_of = enclosing_class
        if enclosing_class is not None:
            enclosing_class.methods.setdefault(node.name.value, node)
        if enclosing_class is not None and node.name.value == "__init__":
            enclosing_class.init = node
            for param in list(node.params.params) + list(node.params.kwonly_params):
                enclosing_class.init_defaults[param.name.value] = param.default
        self._bind_parameters(node)
        self.sem.scope_of_node[id(node)] = scope

    def _lambda(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.Lambda)
        scope = self._push_scope("lambda", node)
        self._bind_parameters(node)
        self.sem.scope_of_node[id(node)] = scope

    def _class(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.ClassDef)
        self._bind(node.name.value, node.name, None, definition="class", definition_node=node)
        self._rebinds_import(node.name.value)
        info = ClassInfo(node.name.value, node, [arg.value for arg in node.bases])
        if self.scope is self.sem.module_scope:
            if node.name.value in self.sem.classes:
                self.sem.redefined_classes.add(node.name.value)
            self.sem.classes[node.name.value] = info
        scope = self._push_scope("class", node)
        scope.class_info = info

    def _return(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.Return)
        function: Optional[Scope] = self.scope
        while function is not None and function.kind not in ("function", "lambda"):
            function = function.parent
        if function is not None and function.kind == "function":
            self.sem.returns.setdefault(id(function.node), []).append(node)

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
                annotation_is_static(node.value, self.sem))
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


def annotation_is_static(default: Optional[cst.BaseExpression], semantics: "Semantics") -> bool:
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


class NamePositions(Collector):
    """Collector's walk again, numbering the nodes exactly as it does, to learn where
    each use of some names is: {id(name node): (seq, deferred)}, deferred for a use in a
    def's or a lambda's body (run later, not where it is written). Walked only for a
    module that binds an imported name again (4% of the corpus and real code)."""

    def __init__(self, semantics: "Semantics", names: "set[str] | frozenset[str]") -> None:
        super().__init__(semantics)
        self.names = names
        self.positions: dict[int, tuple[int, bool]] = {}
        self.handlers = {cst.Name: self._name}
        self.leave_handlers = {kind: _nothing for kind in self.leave_handlers}

    def _name(self, node: cst.CSTNode) -> None:
        assert isinstance(node, cst.Name)
        if node.value in self.names:
            self.positions[id(node)] = (self.seq, self._deferred(node))

    def _deferred(self, node: cst.CSTNode) -> bool:
        inner = [*self.stack[1:], node]
        return any(type(outer) in (cst.FunctionDef, cst.Lambda)
                   and outer.body is within  # type: ignore[attr-defined]
                   for outer, within in zip(self.stack, inner))


def _nothing(node: cst.CSTNode) -> None:
    return None
