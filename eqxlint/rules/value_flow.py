"""Which expressions of a file may hold an optax optimizer or a filtered tree, on
Python's `ast`: the first look of the update rules (EQX101, EQX104, EQX503)."""

from __future__ import annotations

import ast
import re
from typing import Callable, Optional, Union

from eqxlint.rules.first_look import (FirstLook, ast_dotted_name, call_argument,
                                      mentioned_in_project, own_statements, statement_blocks,
                                      walk)
from eqxlint.semantics.project import LIBRARIES
from eqxlint.semantics.values import STRUCTURE_PRESERVING, TREE_MAP_FUNCTIONS

_VALUE_NODES = (ast.Name, ast.Attribute, ast.Call, ast.Subscript)


class ValueFirstLook:
    """What `Semantics.infer` may find an expression of this file to hold, answered from
    Python's `ast` of the file, saying yes whenever the inference might: an optax
    transformation (kind "optimizer": `optim.update(...)`, `optim.init(...)`), or anything
    at all (`may_be_known`: a callee that must be a known model).

    The inference builds an optimizer only from a call of an optax factory, through
    bindings (assignments, tuple unpacking, `self.x = ...` in methods, parameters given by
    callers or defaults, walrus), element access, local defs that return one, and names
    a project module defines; the project definition must sit in a module the file
    imports (directly or through others) and spell the name there. Whatever else an
    expression is (a literal, an operation, a name bound only by `for`/`with`/`except`,
    a builtin call such as `dict(...)`, an attribute of a library module such as
    `jax.config`), it holds no optimizer. Bindings are gathered over the whole file,
    whatever their scope: a superset of what a lookup sees.
    """

    def __init__(self, tree: ast.AST, source: bytes, look: Optional["FirstLook"],
                 makers: "Callable[[str], Union[bool, tuple[int, str]]]"
                 = lambda qual: qual.startswith("optax."),
                 made_by_call_of_call: bool = True,
                 made_by_methods: frozenset[str] = frozenset(),
                 passed_on_by_builtins: frozenset[str] = frozenset()) -> None:
        # What is asked for: by default an optimizer, which a call of an `optax.` name
        # makes, and `optax.inject_hyperparams(optax.adam)(...)`. `makers` says which
        # library calls (qualified names) may make it, or which argument's value they
        # hand on (position, keyword); `made_by_call_of_call` whether `f(...)(...)` may;
        # `made_by_methods` which methods called with no arguments may (`sd.values()`,
        # whatever `sd` is); `passed_on_by_builtins` which builtins given one argument
        # may hand on what it holds (`list(x)`).
        self.source = source
        self.look = look
        self.makers = makers
        self.made_by_call_of_call = made_by_call_of_call
        self.made_by_methods = made_by_methods
        self.passed_on_by_builtins = passed_on_by_builtins
        self.values: dict[str, list[tuple[ast.expr, bool]]] = {}
        self.self_values: dict[str, list[tuple[ast.expr, bool]]] = {}
        self.params: set[str] = set()  # every parameter, *args and **kwargs too
        # Parameter -> (its function's name, the class when it is a method, its default,
        # its position in a call: `self` not counted; None when keyword-only).
        self.param_of: dict[str, list[tuple[str, Optional[str], Optional[ast.expr],
                                            Optional[int]]]] = {}
        self._tree = tree
        self._calls_by_name: Optional[dict[str, list[ast.Call]]] = None
        self.defs: set[str] = set()
        self.returns: dict[str, list[ast.expr]] = {}  # def name -> what its returns give
        self.imported: dict[str, list[str]] = {}
        self._names: dict[str, bool] = {}
        self._open: set[str] = set()
        self._cycle = False
        self._defined: dict[str, bool] = {}
        methods: dict[int, str] = {}
        for block in statement_blocks(tree):
            for statement in block:
                if isinstance(statement, ast.Assign):
                    for target in statement.targets:
                        self._target(target, statement.value, False)
                elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                    self._target(statement.target, statement.value, False)
                elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self._function(statement, methods.get(id(statement)))
                elif isinstance(statement, ast.ClassDef):
                    # Met before its body's statements (statement_blocks: outermost first).
                    methods.update((id(inner), statement.name) for inner in statement.body)
                elif isinstance(statement, ast.Import):
                    for alias in statement.names:
                        local = alias.asname or alias.name.split(".", 1)[0]
                        full = alias.name if alias.asname else local
                        self.imported.setdefault(local, []).append(full)
                elif isinstance(statement, ast.ImportFrom):
                    module = "." * statement.level + (statement.module or "")
                    for alias in statement.names:
                        if alias.name != "*":
                            self.imported.setdefault(alias.asname or alias.name, []).append(
                                f"{module}.{alias.name}")
        if b":=" in source:
            for node in walk(tree):
                if isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
                    self.values.setdefault(node.target.id, []).append((node.value, False))

    def _function(self, function: Union[ast.FunctionDef, ast.AsyncFunctionDef],
                  owner: Optional[str]) -> None:
        arguments = function.args
        positional = arguments.posonlyargs + arguments.args
        defaults: list[Optional[ast.expr]] = \
            [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
        pairs = list(zip(positional, defaults)) + list(zip(arguments.kwonlyargs,
                                                            arguments.kw_defaults))
        for star in (arguments.vararg, arguments.kwarg):
            if star is not None:
                self.params.add(star.arg)
        for index, (param, default) in enumerate(pairs):
            self.params.add(param.arg)
            position = index - (owner is not None) if index < len(positional) else None
            self.param_of.setdefault(param.arg, []).append(
                (function.name, owner, default, position))
        self.defs.add(function.name)
        returns: list[ast.expr] = []
        for statement in own_statements(function):
            if isinstance(statement, ast.Return):
                if statement.value is None:
                    return  # `returned_value`: a bare return says nothing
                returns.append(statement.value)
        self.returns.setdefault(function.name, []).extend(returns)

    def _target(self, target: ast.expr, value: ast.expr, indexed: bool) -> None:
        if isinstance(target, ast.Name):
            self.values.setdefault(target.id, []).append((value, indexed))
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                and target.value.id == "self":
            self.self_values.setdefault(target.attr, []).append((value, indexed))
        elif isinstance(target, (ast.Tuple, ast.List)) and not indexed \
                and not any(isinstance(e, ast.Starred) for e in target.elts):
            for element in target.elts:
                self._target(element, value, True)
        # Starred or nested unpacking, subscripts: bound to nothing the inference follows.

    def may_be_known(self, node: ast.expr) -> bool:
        """Could `Semantics.infer` give a value for this callee at all (a name with some
        binding, an attribute of `self` assigned somewhere, an imported project name)?"""
        if isinstance(node, ast.Call):
            return True
        if isinstance(node, ast.Name):
            name = node.id
            return name in self.params or name in self.values or any(
                self._qualified(full, None) for full in self.imported.get(name, ()))
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return node.attr in self.self_values
            return self._qualified_may_hold(node, None, 0)
        return False

    def may_hold(self, node: ast.expr, depth: int = 0) -> bool:
        """Could `node` be inferred to be an optimizer (or what `makers` make)?"""
        if depth > 30:
            return True
        if isinstance(node, ast.Name):
            return self._memo(node.id, depth)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return self._memo("self." + node.attr, depth)
            return self._qualified_may_hold(node, None, depth)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Call):
                return self.made_by_call_of_call  # optax.inject_hyperparams(optax.adam)(...)
            if isinstance(func, ast.Attribute) and func.attr in self.made_by_methods \
                    and not node.args and not node.keywords:
                return True
            if isinstance(func, ast.Name) and func.id in self.passed_on_by_builtins \
                    and len(node.args) == 1 and not node.keywords \
                    and self.may_hold(_unstarred(node.args[0]), depth + 1):
                return True  # whether or not the builtin's name is rebound: both are asked
            if isinstance(func, ast.Name) and func.id in self.defs:
                return self._memo("def " + func.id, depth)  # what the def returns
            return self._qualified_may_hold(func, node, depth)
        if isinstance(node, ast.Subscript):
            index = node.slice
            if isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.USub):
                index = index.operand
            # Only `x[2]`, `x[-1]` of a tuple or list are followed (literal_index).
            return isinstance(index, ast.Constant) and type(index.value) is int \
                and self._inside(node.value)
        return False

    def _inside(self, node: ast.expr) -> bool:
        """Could `node` hold an optimizer, or a tuple or list holding one?"""
        if isinstance(node, (ast.Tuple, ast.List)):
            return any(isinstance(e, ast.Starred) or self._inside(e) for e in node.elts)
        return isinstance(node, _VALUE_NODES)

    def _bound(self, value: ast.expr, indexed: bool, depth: int) -> bool:
        return self._inside(value) if indexed else self.may_hold(value, depth + 1)

    def _memo(self, key: str, depth: int) -> bool:
        """A name (or `self.x`): yes when one of its bindings may hold it.

        The least answer that the bindings allow: a binding that leads back to a name
        still being answered adds nothing (whatever reaches it through the cycle
        reaches it without). A "no" reached while such a name was open is not kept."""
        known = self._names.get(key)
        if known is not None:
            return known
        if key in self._open:
            self._cycle = True
            return False
        self._open.add(key)
        outer, self._cycle = self._cycle, False
        try:
            if key.startswith("def "):
                found = any(self.may_hold(value, depth + 1)
                            for value in self.returns.get(key[4:], ()))
            elif key.startswith("self."):
                found = any(self._bound(value, indexed, depth)
                            for value, indexed in self.self_values.get(key[5:], ()))
            else:
                found = self._parameter(key, depth) or any(
                    self._bound(value, indexed, depth)
                    for value, indexed in self.values.get(key, ())
                ) or any(self._qualified(full, None) for full in self.imported.get(key, ()))
        finally:
            self._open.discard(key)
        if found or not self._cycle:
            self._names[key] = found
        self._cycle = outer or (self._cycle and not found)
        return found

    def _parameter(self, name: str, depth: int) -> bool:
        """A parameter holds what the file's calls of its function pass (`_passed_to`: by
        the function's name; for `__init__`, by its class's; a call with `*`/`**` gives
        nothing), else its default (an annotation never says "optimizer" or "filtered");
        a method other than `__init__` has no such callers."""
        for function, owner, default, position in self.param_of.get(name, ()):
            if default is not None and self.may_hold(default, depth + 1):
                return True
            if owner is not None and function != "__init__":
                continue
            if owner is None and function == "__init__":
                return True  # a method this first look did not place in its class
            for call in self._calls_of(owner if owner is not None else function):
                if any(isinstance(a, ast.Starred) for a in call.args) or \
                        any(k.arg is None for k in call.keywords):
                    continue
                given = next((k.value for k in call.keywords if k.arg == name), None)
                if given is None and position is not None and 0 <= position < len(call.args):
                    given = call.args[position]
                if given is not None and self.may_hold(given, depth + 1):
                    return True
        return False

    def _calls_of(self, name: str) -> list[ast.Call]:
        """The calls `name(...)` of the file (one walk of the whole tree, when first asked)."""
        if self._calls_by_name is None:
            self._calls_by_name = {}
            for node in walk(self._tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    self._calls_by_name.setdefault(node.func.id, []).append(node)
        return self._calls_by_name.get(name, [])

    def _qualified_may_hold(self, node: ast.expr, call: Optional[ast.Call], depth: int
                            ) -> bool:
        dotted = ast_dotted_name(node)
        if dotted is None:
            return False
        head, _, rest = dotted.partition(".")
        return any(self._qualified(f"{full}.{rest}" if rest else full, call, "." in rest, depth)
                   for full in self.imported.get(head, ()))

    def _qualified(self, qual: str, call: Optional[ast.Call], deep: bool = False,
                   depth: int = 0) -> bool:
        """Could the name `qual` (reached through an import; called: `call`) be or make
        it? `deep`: reached through attributes of an imported module (`pkg.sub.name`)."""
        if call is not None:
            made = self.makers(qual)
            if made is True:
                return True
            if isinstance(made, tuple):  # what one of its arguments holds
                given = call_argument(call, *made)
                if given is not None and self.may_hold(given, depth + 1):
                    return True
        if not qual.startswith(".") and qual.split(".", 1)[0] in LIBRARIES:
            return False  # never a project module (ProjectIndex.resolve)
        if deep:
            return True  # a submodule the file may not import itself
        name = qual.rsplit(".", 1)[-1]
        known = self._defined.get(name)
        if known is None:
            known = self._defined[name] = bool(name) and mentioned_in_project(
                self.source, self.look, name.encode())
        return known


def _unstarred(node: ast.expr) -> ast.expr:
    return node.value if isinstance(node, ast.Starred) else node


FILTERS = ("equinox.filter", "equinox.partition")
# Any spelling of them holds one of these words (an import names them, aliased or not;
# `filter_jit` does not count).
FILTER_WORDS = re.compile(rb"(?<![A-Za-z0-9_])(?:filter|partition)(?![A-Za-z0-9_])")


def _filtered_maker(qual: str) -> Union[bool, tuple[int, str]]:
    """May a call of this library function be a filtered tree (the inference's
    `_infer_call`): the filters (and `combine`, which gives back what was filtered);
    a tree map or a structure-preserving call, when the tree it is given is one."""
    if qual in FILTERS or qual == "equinox.combine":
        return True
    if qual in TREE_MAP_FUNCTIONS:
        return (1, "tree")
    where = STRUCTURE_PRESERVING.get(qual)
    return where if where is not None else False


def may_be_filtered(tree: ast.Module, source: bytes, look: Optional[FirstLook]
                    ) -> ValueFirstLook:
    """A ValueFirstLook that asks whether an expression may be a filtered tree."""
    return ValueFirstLook(tree, source, look, _filtered_maker, made_by_call_of_call=False)
