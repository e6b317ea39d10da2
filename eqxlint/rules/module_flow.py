"""Which expressions of a file may hold an Equinox module, on Python's `ast`: the first
look of the rules whose check needs a module at a precise place (EQX201, EQX203)."""

from __future__ import annotations

import ast
import re
from typing import Optional, Union

from eqxlint.rules.first_look import FirstLook, trigger_matches

# Calls whose result the semantics follows from an argument (eqx.combine, tree_map over
# a filtered tree, eqx.tree_at, inference_mode, copy, ...): a module in an argument may
# come out (see Semantics._infer_call). eqx.filter and eqx.partition keep their source
# for a later eqx.combine.
_FLOWING_CALLS = frozenset({
    "equinox.filter", "equinox.combine", "jax.tree_util.tree_map",
    "jax.tree.map", "jax.tree_map", "equinox.apply_updates", "equinox.nn.inference_mode",
    "equinox.tree_inference", "equinox.tree_at", "equinox.tree_deserialise_leaves",
    "dataclasses.replace", "copy.deepcopy", "copy.copy"})
_PARTITION = "equinox.partition"
# Questions one file's ModuleFlow may ask before its rule gives up and says yes.
_FLOW_BUDGET = 20_000
# Open questions at once (each costs a few Python frames): deeper chains say yes.
_FLOW_DEPTH = 100


class FlowTooDeep(Exception):
    """A ModuleFlow spent its budget: the first look must say yes."""
_ANY = -1  # in a set of tuple positions: any position


class ModuleFlow:
    """Which expressions of a file may hold an Equinox module as the semantics infers
    one (Semantics.infer giving a "module" value, or a tuple/list/dict holding one): an
    over-approximation on Python's `ast`, for the rules whose check needs a module at a
    precise place (EQX201, EQX203). Built once per file (module_flow).

    Sound by construction: it follows every way `Semantics.infer` reaches a module, more
    loosely. Names are taken by spelling, whatever scope binds them (every binding of a
    name counts); a parameter may hold what any call of a def of that name (of the class,
    for `__init__`) passes at its position or keyword, its default or its annotation; a
    call of a def of the file may return what any of its `return`s gives; `self.x` what
    any `.x = ...` assigns. A module comes from an `equinox.nn` class, a class of the
    file, `make_with_state`, or a class or def of a project module (named through an
    import that the project index resolves, and written `class Name`/`def Name` or
    re-exported `as Name` in the project's text); a module-level value of a project
    module may be anything. It flows through tuples, lists and dicts (tuple positions
    are tracked, for unpacking and `x[0]`), `list(...)`/`tuple(...)`, eqx.partition then
    eqx.combine, and the calls of _FLOWING_CALLS (any argument). Everything else holds
    no module for the semantics: literals, lambdas, slices, arithmetic, conditional
    expressions, unknown calls, names bound by loops or `with`.
    Each question (what a name, an attribute, a def's returns may hold) is answered on
    demand, depth first, and remembered (the least fixpoint); past _FLOW_BUDGET
    questions, or past _FLOW_DEPTH open at once, a query raises FlowTooDeep, and the
    rule must say yes.
    """

    def __init__(self, tree: ast.Module, look: Optional["FirstLook"]) -> None:
        self.look = look
        self.imports: dict[str, set[str]] = {}
        self.class_names: set[str] = set()
        self.calls: list[ast.Call] = []
        self.defs: dict[str, list[Union[ast.FunctionDef, ast.AsyncFunctionDef]]] = {}
        self.classes_with_bases: set[str] = set()
        self.methods: dict[int, str] = {}  # id of a def directly in a class body -> the class
        # name -> (value, position when bound by unpacking a tuple, else None)
        self._values: dict[str, list[tuple[ast.expr, Optional[int]]]] = {}
        self._attrs: dict[str, list[tuple[ast.expr, Optional[int]]]] = {}
        self._returns: dict[str, list[ast.expr]] = {}
        # name -> (position among the positional parameters or None, default, annotation,
        # the name its callers call (a def's name, a class's for __init__, None for
        # other methods and lambdas), how many leading parameters callers do not pass)
        self._params: dict[str, list[tuple[Optional[int], Optional[ast.expr],
                                           Optional[ast.expr], Optional[str], int]]] = {}
        self._callers: dict[str, list[ast.Call]] = {}
        self._project: dict[str, bool] = {}
        self._project_modules: Optional[bool] = None
        self._defined: dict[str, bool] = {}
        self._quals: dict[int, set[str]] = {}  # by id of a node of `tree`, which lives on
        self._collect(tree)
        # Answers by demand: ("name"|"attr"|"return", spelling) -> (may hold a module,
        # tuple positions that may hold one). An answer found while a question it
        # depends on was still open (a cycle) is not kept, unless it is a plain yes.
        self._answers: dict[tuple[str, str], tuple[bool, frozenset[int]]] = {}
        self._open: set[tuple[str, str]] = set()
        self._cycle = False
        self._held: dict[int, bool] = {}  # by id of a node of `tree`: see holds
        self._yes: set[tuple[str, str]] = set()  # questions answered yes inside a cycle
        self._assumed: set[tuple[str, str]] = set()  # questions met open (taken for no)
        self._tainted: dict[tuple[str, str], tuple[bool, frozenset[int]]] = {}
        self._positioned: dict[int, frozenset[int]] = {}
        self._budget = _FLOW_BUDGET

    # -- collection ------------------------------------------------------------

    def _collect(self, tree: ast.Module) -> None:
        pending: list[tuple[ast.AST, Optional[str], Optional[str]]] = [(tree, None, None)]
        while pending:
            node, function, klass = pending.pop()
            kind = type(node)
            if kind is ast.Call:
                self.calls.append(node)  # type: ignore[arg-type]
                func = node.func  # type: ignore[attr-defined]
                if type(func) is ast.Name:
                    self._callers.setdefault(func.id, []).append(node)  # type: ignore[arg-type]
            elif kind is ast.Import:
                for alias in node.names:  # type: ignore[attr-defined]
                    if alias.asname:
                        self.imports.setdefault(alias.asname, set()).add(alias.name)
                    else:
                        head = alias.name.split(".", 1)[0]
                        self.imports.setdefault(head, set()).add(head)
            elif kind is ast.ImportFrom:
                module = "." * (node.level or 0) + (node.module or "")  # type: ignore[attr-defined]
                for alias in node.names:  # type: ignore[attr-defined]
                    if alias.name != "*":
                        separator = "" if module.endswith(".") or not module else "."
                        self.imports.setdefault(alias.asname or alias.name, set()).add(
                            f"{module}{separator}{alias.name}")
            elif kind is ast.Assign:
                for target in node.targets:  # type: ignore[attr-defined]
                    self._bind(target, node.value)  # type: ignore[attr-defined]
            elif kind is ast.AnnAssign or kind is ast.NamedExpr:
                if node.value is not None:  # type: ignore[attr-defined]
                    self._bind(node.target, node.value)  # type: ignore[attr-defined]
            elif kind is ast.ClassDef:
                self.class_names.add(node.name)  # type: ignore[attr-defined]
                if node.bases:  # type: ignore[attr-defined]
                    self.classes_with_bases.add(node.name)  # type: ignore[attr-defined]
                pending.extend((child, function, node.name)  # type: ignore[attr-defined]
                               for child in _children(node))
                continue
            elif kind is ast.FunctionDef or kind is ast.AsyncFunctionDef:
                name = node.name  # type: ignore[attr-defined]
                self.defs.setdefault(name, []).append(node)  # type: ignore[arg-type]
                if klass is None:
                    self._parameters(node.args, name, 0)  # type: ignore[attr-defined]
                else:  # a method: only __init__ has callers (the class's), after `self`
                    self.methods[id(node)] = klass
                    self._parameters(node.args, klass if name == "__init__" else None, 1)  # type: ignore[attr-defined]
                pending.extend((child, name, None) for child in _children(node))
                continue
            elif kind is ast.Lambda:
                self._parameters(node.args, None, 0)  # type: ignore[attr-defined]
                # a lambda's body is not a return
                pending.extend((child, None, None) for child in _children(node))
                continue
            elif kind is ast.Return:
                if function is not None and node.value is not None:  # type: ignore[attr-defined]
                    self._returns.setdefault(function, []).append(node.value)  # type: ignore[attr-defined]
            pending.extend((child, function, klass) for child in _children(node))

    def _bind(self, target: ast.expr, value: ast.expr) -> None:
        """Scopes.Collector._bind_target: a tuple target binds each name to a position of
        the value; a nested or starred one binds nothing the semantics follows."""
        kind = type(target)
        if kind is ast.Tuple or kind is ast.List:
            elements = target.elts  # type: ignore[attr-defined]
            if any(type(element) is ast.Starred for element in elements):
                return
            for position, element in enumerate(elements):
                self._bind_one(element, value, position)
        else:
            self._bind_one(target, value, None)

    def _bind_one(self, target: ast.expr, value: ast.expr, position: Optional[int]) -> None:
        kind = type(target)
        if kind is ast.Name:
            self._values.setdefault(target.id, []).append((value, position))  # type: ignore[attr-defined]
        elif kind is ast.Attribute:
            self._attrs.setdefault(target.attr, []).append((value, position))  # type: ignore[attr-defined]

    def _parameters(self, args: ast.arguments, callers: Optional[str], skip: int) -> None:
        positional = list(args.posonlyargs) + list(args.args)
        defaults: list[Optional[ast.expr]] = [None] * (len(positional) - len(args.defaults)) \
            + list(args.defaults)
        for position, (arg, default) in enumerate(zip(positional, defaults)):
            self._params.setdefault(arg.arg, []).append(
                (position, default, arg.annotation, callers, skip))
        for arg, default in zip(args.kwonlyargs, args.kw_defaults):
            self._params.setdefault(arg.arg, []).append((None, default, arg.annotation, callers, 0))
        for star in (args.vararg, args.kwarg):
            if star is not None:  # the semantics does not follow what *args receives
                self._params.setdefault(star.arg, []).append((None, None, star.annotation, None, 0))

    # -- names -----------------------------------------------------------------

    def quals(self, node: ast.expr) -> set[str]:
        """The qualified names `node` may refer to through the file's imports (any of
        them), or `<local>.Name` for a class of the file."""
        kind = type(node)
        if kind is not ast.Name and kind is not ast.Attribute:
            return set()
        known = self._quals.get(id(node))
        if known is None:
            known = self._quals[id(node)] = self._qualify(node)
        return known

    def _qualify(self, node: ast.expr) -> set[str]:
        parts: list[str] = []
        while type(node) is ast.Attribute:
            parts.append(node.attr)  # type: ignore[attr-defined]
            node = node.value  # type: ignore[attr-defined]
        if type(node) is not ast.Name:
            return set()
        head = node.id  # type: ignore[attr-defined]
        rest = ".".join(reversed(parts))
        found = {f"{target}.{rest}" if rest else target for target in self.imports.get(head, ())}
        if not rest and head in self.classes_with_bases:  # no base: never an Equinox module
            found.add("<local>." + head)
        return found

    def is_project(self, qual: str) -> bool:
        """Could `qual` name something a project file defines (ProjectIndex.definition)
        that is, builds or holds an Equinox module? Not where no project module the file
        imports, however indirectly, spells `equinox`: a module's class derives from
        `equinox.Module` through a chain of imports that does (a class of a third-party
        library is unknown to the semantics). A project function may still hand back a
        module it is given (see _call_holds)."""
        return self.from_project(qual) and self._project_may_hold_modules()

    def _project_may_hold_modules(self) -> bool:
        if self._project_modules is None:
            imported = self.look.imported if self.look is not None else None
            self._project_modules = imported is None or \
                imported.mention(b"equinox", trigger_matches) or \
                (b"equinox" in self.look.source and imported.imports_back())  # type: ignore[union-attr]
        return self._project_modules

    def from_project(self, qual: str) -> bool:
        """Could `qual` name something a project file defines (ProjectIndex.definition)?"""
        if qual.startswith("<local>."):
            return False
        known = self._project.get(qual)
        if known is None:
            from eqxlint.semantics.project import LIBRARIES
            head = qual.lstrip(".").split(".", 1)[0]
            known = qual.startswith(".") or head not in LIBRARIES
            imported = self.look.imported if self.look is not None else None
            if known and imported is not None:
                known = imported.resolves(qual)
            self._project[qual] = known
        return known

    def defines(self, qual: str, functions: bool) -> bool:
        """Could the project class (or, with `functions`, def) that `qual` names exist?
        Its name, or the name it is re-exported under (`import ... as Name`), is written
        `class Name` (`def Name`) or `as Name` in this file, in the file `qual` resolves
        to, or in a project module the file imports, however indirectly (each re-export
        is an import). Without the project's text: yes."""
        name = qual.rsplit(".", 1)[-1]
        key = f"{qual}{'()' if functions else ''}"
        known = self._defined.get(key)
        if known is None:
            imported = self.look.imported if self.look is not None else None
            if imported is None or not name.isidentifier() or not name.isascii():
                known = True
            else:
                sources = [self.look.source] + imported.sources()  # type: ignore[union-attr]
                target = imported.resolved_text(qual)  # the first step, whatever the regexes
                if target is not None:
                    sources.append(target)
                known = False
                for text in sources:
                    classes, defs, aliases = _declared_names(text)
                    if name in classes or name in aliases or (functions and name in defs):
                        known = True
                        break
            self._defined[key] = known
        return known

    def _project_class(self, qual: str, functions: bool) -> bool:
        return self.is_project(qual) and self.defines(qual, functions)

    # -- the fixpoint ----------------------------------------------------------

    def _ask(self, key: tuple[str, str]) -> tuple[bool, frozenset[int]]:
        """The least fixpoint, by depth-first search: an open question counts as no.

        An answer found while a question it depends on was open is kept aside, not
        forgotten: once the outermost question is answered, if every question that was
        met open ended a plain no (what it was taken for), all those answers are exact
        (a fixed point no greater than the least one is the least one) and kept."""
        known = self._answers.get(key)
        if known is not None:
            return known
        if key in self._open:
            self._cycle = True
            self._assumed.add(key)
            return _NO
        self._budget -= 1
        if self._budget < 0 or len(self._open) > _FLOW_DEPTH:
            raise FlowTooDeep
        outermost = not self._open
        outer, self._cycle = self._cycle, False
        self._open.add(key)
        try:
            kind, name = key
            if kind == "name":
                held, positions = self._name_value(name)
            elif kind == "attr":
                held, positions = self._bound(self._attrs.get(name, []))
            else:
                values = self._returns.get(name, [])
                held = any(self.holds(value) for value in values)
                positions = set().union(*(self.positions(value) for value in values))
        except BaseException:
            if outermost:
                self._assumed.clear()
                self._tainted.clear()
            raise
        finally:
            self._open.discard(key)
        answer = (held, frozenset(positions))
        if not self._cycle:
            self._answers[key] = answer
        else:
            if held:
                self._yes.add(key)  # a yes stands (the positions may still grow)
            self._tainted[key] = answer
        self._cycle = outer or self._cycle
        if outermost:
            if all((self._answers.get(assumed) or self._tainted.get(assumed)) == _NO
                   for assumed in self._assumed):
                self._answers.update(self._tainted)
            self._assumed.clear()
            self._tainted.clear()
        return answer

    def _asked_yes(self, key: tuple[str, str]) -> bool:
        return key in self._yes or self._ask(key)[0]

    def _bound(self, bindings: list[tuple[ast.expr, Optional[int]]]) -> tuple[bool, set[int]]:
        held, positions = False, set()
        for value, position in bindings:
            if position is None:
                held = held or self.holds(value)
                positions |= self.positions(value)
            else:
                found = self.positions(value)
                if position in found or _ANY in found:
                    held = True
                    positions.add(_ANY)  # the element may itself be a tuple
        return held, positions

    def _name_value(self, name: str) -> tuple[bool, set[int]]:
        held, positions = self._bound(self._values.get(name, []))
        for position, default, annotation, callers, skip in self._params.get(name, ()):
            given_values = [default] if default is not None else []
            if callers is not None:
                where = None if position is None else position - skip
                for call in self._callers.get(callers, ()):
                    given = self._given(call, name, where)
                    if given is not None:
                        given_values.append(given)
            for given in given_values:
                held = held or self.holds(given)
                positions |= self.positions(given)
            if not held and annotation is not None and self.annotation_holds(annotation):
                held = True
        return held, positions

    @staticmethod
    def _given(call: ast.Call, name: str, position: Optional[int]) -> Optional[ast.expr]:
        """What `call` passes for parameter `name` at `position` (Semantics._passed_to: a
        call with `*args` or `**kwargs` tells the semantics nothing)."""
        given = None
        for keyword in call.keywords:
            if keyword.arg is None:
                return None
            if keyword.arg == name:
                given = keyword.value
        positional = call.args
        if any(type(arg) is ast.Starred for arg in positional):
            return None
        if given is None and position is not None and 0 <= position < len(positional):
            given = positional[position]
        return given

    # -- questions -------------------------------------------------------------

    def annotation_holds(self, annotation: ast.expr) -> bool:
        """Whether a parameter so annotated may hold a module (Semantics.annotation_value)."""
        if type(annotation) not in (ast.Name, ast.Attribute):
            return False  # a subscript, a string: a leaf, a function or unknown
        quals = self.quals(annotation)
        if not quals:  # not imported: the dotted name itself may name a project class
            dotted = ast.unparse(annotation)
            return "." in dotted and self._project_class(dotted, False)
        return any(_is_equinox_nn(qual) or qual.startswith("<local>.")
                   or self._project_class(qual, False) for qual in quals)

    def bound_calls(self) -> dict[str, list[ast.Call]]:
        """Names bound (not by unpacking) to a call: `step = jax.jit(loss)`."""
        return {name: [value for value, position in bindings
                       if position is None and type(value) is ast.Call]  # type: ignore[misc]
                for name, bindings in self._values.items()}

    def call_passes(self, call: ast.Call) -> bool:
        """Whether an argument of `call` may hold a module."""
        return any(self.holds(arg) for arg in call.args) or \
            any(self.holds(keyword.value) for keyword in call.keywords)

    def holds(self, node: ast.expr) -> bool:
        """Whether `node` may hold an Equinox module (or a container of one). Kept per node:
        a yes always (more of the fixpoint only adds), a no if no open question fed it."""
        key = id(node)
        known = self._held.get(key)
        if known is not None:
            return known
        outer, self._cycle = self._cycle, False
        try:
            held = self._holds(node)
        finally:
            cycle = self._cycle
            self._cycle = outer or cycle
        if held or not cycle:
            self._held[key] = held
        return held

    def _holds(self, node: ast.expr) -> bool:
        kind = type(node)
        if kind is ast.Name:
            name = node.id  # type: ignore[attr-defined]
            if self._asked_yes(("name", name)):
                return True
            return any(self.is_project(qual) for qual in self.quals(node))
        if kind is ast.Attribute:
            value = node.value  # type: ignore[attr-defined]
            if type(value) is ast.Name and value.id == "self":  # type: ignore[attr-defined]
                return self._asked_yes(("attr", node.attr))  # type: ignore[attr-defined]
            return any(self.is_project(qual) for qual in self.quals(node))
        if kind is ast.Tuple or kind is ast.List:
            elements = node.elts  # type: ignore[attr-defined]
            return not any(type(element) is ast.Starred for element in elements) and \
                any(self.holds(element) for element in elements)
        if kind is ast.Dict:
            return None not in node.keys and \
                any(self.holds(value) for value in node.values)  # type: ignore[attr-defined]
        if kind is ast.Subscript:
            index = _literal_index(node.slice)  # type: ignore[attr-defined]
            if index is None:
                return False  # the semantics reads only `x[2]`, `x[-1]` of a tuple or list
            found = self.positions(node.value)  # type: ignore[attr-defined]
            return index in found or _ANY in found or (index < 0 and bool(found))
        if kind is ast.Call:
            return self._call_holds(node)  # type: ignore[arg-type]
        return False

    def positions(self, node: ast.expr) -> set[int]:
        """The positions at which `node`, if it is a tuple or list, may hold a module (kept
        per node when no open question fed the answer)."""
        key = id(node)
        known = self._positioned.get(key)
        if known is not None:
            return set(known)
        outer, self._cycle = self._cycle, False
        try:
            found = self._positions(node)
        finally:
            cycle = self._cycle
            self._cycle = outer or cycle
        if not cycle:
            self._positioned[key] = frozenset(found)
        return found

    def _positions(self, node: ast.expr) -> set[int]:
        kind = type(node)
        if kind is ast.Tuple or kind is ast.List:
            elements = node.elts  # type: ignore[attr-defined]
            if any(type(element) is ast.Starred for element in elements):
                return set()
            return {i for i, element in enumerate(elements) if self.holds(element)}
        if kind is ast.Name:
            if any(self.is_project(qual) for qual in self.quals(node)):
                return {_ANY}
            return set(self._ask(("name", node.id))[1])  # type: ignore[attr-defined]
        if kind is ast.Attribute:
            value = node.value  # type: ignore[attr-defined]
            if type(value) is ast.Name and value.id == "self":  # type: ignore[attr-defined]
                return set(self._ask(("attr", node.attr))[1])  # type: ignore[attr-defined]
            return {_ANY} if self.holds(node) else set()
        if kind is ast.Subscript or kind is ast.Call:
            return {_ANY} if self.holds(node) else set()
        return set()

    def _call_holds(self, call: ast.Call) -> bool:
        func = call.func
        if type(func) is ast.Call:
            return "equinox.nn.make_with_state" in self.quals(func.func)
        if type(func) is ast.Name:
            name = func.id
            if name in ("list", "tuple") and call.args and self.holds(call.args[0]):
                return True
            if name in self._returns and self._asked_yes(("return", name)):
                return True
        for qual in self.quals(func):
            if _is_equinox_nn(qual) or qual.startswith("<local>.") or \
                    self._project_class(qual, True):
                return True
            if self.from_project(qual) and self.defines(qual, True) and self.call_passes(call):
                return True  # a project function may return what it is given
            if (qual in _FLOWING_CALLS or qual == _PARTITION) and self.call_passes(call):
                return True
        return False


_NO: tuple[bool, frozenset[int]] = (False, frozenset())


# Nodes without children that matter: names, constants, contexts, operators.
_LEAVES = frozenset({ast.Name, ast.Constant, ast.Load, ast.Store, ast.Del, ast.alias,
                     ast.Pass, ast.Break, ast.Continue})
_FIELDS: dict[type, tuple[str, ...]] = {}


def _children(node: ast.AST) -> list[ast.AST]:
    """ast.iter_child_nodes without contexts and operators, faster."""
    kind = type(node)
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(name for name in kind._fields
                                      if name not in ("ctx", "op", "ops", "type_comment"))
    found: list[ast.AST] = []
    leaves = _LEAVES
    for name in names:
        value = getattr(node, name, None)
        if type(value) is list:
            found.extend(item for item in value
                         if type(item) not in leaves and isinstance(item, ast.AST))
        elif value is not None and type(value) not in leaves and isinstance(value, ast.AST):
            found.append(value)
    return found


def _literal_index(node: ast.expr) -> Optional[int]:
    """`2`, `-1` (syntax.literal_index); a tuple index stands for any position."""
    negative = False
    if type(node) is ast.UnaryOp and type(node.op) is ast.USub:  # type: ignore[attr-defined]
        negative, node = True, node.operand  # type: ignore[attr-defined]
    if type(node) is ast.Constant and type(node.value) is int:  # type: ignore[attr-defined]
        return -node.value if negative else node.value  # type: ignore[attr-defined]
    if type(node) is ast.Tuple and not negative:  # `x[0,]`: libcst may read it as `x[0]`
        return _ANY
    return None


_DECLARED = re.compile(rb"\b(class|def|as)[ \t\\\n]+([A-Za-z_][A-Za-z0-9_]*)")
# A project module's text -> the names it writes after `class`, `def`, `as` (by id; the
# text is kept with them so that the id stays its own). The project index keeps one
# text per module, shared by all the files that import it.
_DECLARED_BY_TEXT: dict[int, tuple[bytes, tuple[frozenset[str], frozenset[str], frozenset[str]]]] = {}


def _declared_names(text: bytes) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(names after `class`, after `def`, after `as`) in `text` (ASCII names; the
    caller says yes for any other)."""
    known = _DECLARED_BY_TEXT.get(id(text))
    if known is not None and known[0] is text:
        return known[1]
    found: dict[bytes, set[str]] = {b"class": set(), b"def": set(), b"as": set()}
    for keyword, name in _DECLARED.findall(text):
        found[keyword].add(name.decode("ascii"))
    names = (frozenset(found[b"class"]), frozenset(found[b"def"]), frozenset(found[b"as"]))
    if len(_DECLARED_BY_TEXT) > 4096:
        _DECLARED_BY_TEXT.clear()
    _DECLARED_BY_TEXT[id(text)] = (text, names)
    return names


def _is_equinox_nn(qual: str) -> bool:
    return qual.startswith("equinox.nn.") and qual.count(".") == 2


def module_flow(source: bytes, look: Optional[FirstLook]) -> Optional[ModuleFlow]:
    """The file's ModuleFlow (built once per FirstLook); None when `ast` cannot parse it."""
    if look is None:
        look = FirstLook(source)
    flow = getattr(look, "_module_flow", None)
    if flow is None:
        tree = look.tree()
        if tree is None:
            return None
        flow = ModuleFlow(tree, look)
        look._module_flow = flow  # type: ignore[attr-defined]
    return flow
