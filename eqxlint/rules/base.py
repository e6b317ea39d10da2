"""What a rule is: its documentation, its examples, its static check, its fix."""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable, Iterator, Optional, Union

import libcst as cst

from eqxlint.diagnostics import Applicability, Diagnostic
from eqxlint.semantics import Semantics
from eqxlint.semantics.project import LIBRARIES, ImportedSources, imports_project_module
from eqxlint.semantics.values import STRUCTURE_PRESERVING, TREE_MAP_FUNCTIONS

if TYPE_CHECKING:  # the runtime context imports jax; the linter must not
    from eqxlint.runtime.checker import RuntimeContext

# A trigger met when the group's other words occur in a project module the file
# imports (see may_fire).
PROJECT_IMPORT = b"\0project-import\0"
# An import that can name optax's public transformations (`import optax`, `from optax
# import adamw`, `from optax.contrib import muon`): the only way the semantics learns
# that a value is an optimizer. optax's own `from optax._src import alias` is not one.
IMPORTS_PUBLIC_OPTAX = re.compile(
    rb"(?m)(?:^|;)[ \t]*(?:import[ \t]+(?:[\w.]+(?:[ \t]+as[ \t]+\w+)?[ \t]*,[ \t\\\n]*)*"
    rb"optax\b|from[ \t]+optax(?:\.(?!_)\w+)*[ \t]+import\b)")
EXPECT_MARKER = re.compile(r"\s*# expect: (EQX\d{3}(?:, *EQX\d{3})*)\s*$")


def dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


@dataclass(frozen=True)
class Bad:
    """Code the rule must flag: each line ending in `# expect: EQXnnn` is a finding."""

    code: str
    note: str = ""

    @property
    def source(self) -> str:
        return dedent(self.code)

    def expected(self) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        for row, line in enumerate(self.source.splitlines(), start=1):
            match = EXPECT_MARKER.search(line)
            if match:
                found.extend((row, code.strip()) for code in match.group(1).split(","))
        return found


@dataclass(frozen=True)
class Good:
    """Correct code that looks like the mistake: the rule must stay quiet."""

    code: str
    note: str = ""

    @property
    def source(self) -> str:
        return dedent(self.code)


@dataclass(frozen=True)
class FixCase:
    """`before` becomes exactly `after` with --fix (and --unsafe-fixes when unsafe)."""

    before: str
    after: str

    @property
    def source_before(self) -> str:
        return dedent(self.before)

    @property
    def source_after(self) -> str:
        return dedent(self.after)


@dataclass
class Finding:
    """What a rule reports: the node, the message, the line to write instead.

    `replacements` pairs nodes of the parsed module with the nodes to put in
    their place; the engine turns them into text edits, so nothing else in the
    file changes.
    """

    node: cst.CSTNode
    message: str
    hint: str
    replacements: tuple[tuple[cst.CSTNode, cst.CSTNode], ...] = ()
    fix_message: Optional[str] = None
    # A call in the same statement as `node`, when `node` is not itself a call:
    # it lets the engine place the finding without laying out the whole file.
    anchor: Optional[cst.Call] = None


class Rule:
    """One mistake: one code, one page, one set of examples.

    Subclasses set the class attributes and, when the rule has a static side,
    implement `check`.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    what_it_does: ClassVar[str]
    why_bad: ClassVar[str]
    example: ClassVar[str]
    use_instead: ClassVar[str]
    fix_safety: ClassVar[str]
    runtime: ClassVar[str] = "None: this rule is static only."
    real_error: ClassVar[str] = ""
    known_limits: ClassVar[str] = ""
    fix_applicability: ClassVar[Optional[Applicability]] = None
    # The file must contain, for each group, at least one of its strings, or the
    # rule cannot fire there and the file is not parsed for it.
    triggers: ClassVar[tuple[tuple["Union[bytes, re.Pattern[bytes]]", ...], ...]] = ()
    static: ClassVar[bool] = True
    # False: selected only when named (`--extend-select EQX001`, a prefix or ALL), as
    # Ruff's RUF100. Must agree with eqxlint.rules.OFF_BY_DEFAULT (read without imports).
    default_enabled: ClassVar[bool] = True
    bad_examples: ClassVar[tuple[Bad, ...]] = ()
    good_examples: ClassVar[tuple[Good, ...]] = ()
    fix_examples: ClassVar[tuple[FixCase, ...]] = ()

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        """The static side: findings in one parsed file."""
        return iter(())

    def check_runtime(self, context: "RuntimeContext") -> Iterator[Diagnostic]:
        """The runtime side: problems in a live model (imports jax inside)."""
        return iter(())

    @classmethod
    def may_fire(cls, source: bytes, look: Optional["FirstLook"] = None) -> bool:
        """The cheap text test: False means the rule cannot fire on this source.

        A needle is code, not text: `b".init("` also matches `opt . init (`, a space
        in a needle matches any whitespace, line continuation or comment, and `\r`
        line endings or form feeds change nothing (see trigger_matches). A group holding
        PROJECT_IMPORT is also met when one of its other needles occurs in a project
        module the file imports (read through `look`; what the rule needs may be defined
        there). Without `look`, any import of a project module meets it.

        A rule may look closer (Python's `ast` of the file, from `look.tree()`), as long
        as False still means "cannot fire": tests compare the findings with and without
        the pre-filter on every example.
        """
        if not cls.static:
            return False
        for group in cls.triggers:
            needles = [needle for needle in group if needle != PROJECT_IMPORT]
            if any(trigger_matches(needle, source) for needle in needles):
                continue
            if PROJECT_IMPORT in group and mentioned_in_project(source, look, *needles):
                continue
            return False
        return True


class FirstLook:
    """What the rules' first looks at one file share: Python's syntax tree of the file
    (`ast`, many times cheaper than libcst; built once, for the first rule that asks)
    and the text of the project modules the file imports."""

    def __init__(self, source: bytes, imported: Optional[ImportedSources] = None) -> None:
        self.source = source
        self.imported = imported
        self._tree: Optional[ast.Module] = None
        self._refused = False

    def tree(self) -> Optional[ast.Module]:
        """The file's `ast`; None when `ast` cannot build it (the rule must then say yes)."""
        if self._tree is None and not self._refused:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # SyntaxWarning: not the rules' business
                    self._tree = ast.parse(self.source)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                self._refused = True
        return self._tree


def statement_blocks(node: ast.AST) -> Iterator[list[ast.stmt]]:
    """Every statement list below `node` (bodies, branches, handlers, cases), outermost
    first, without walking into expressions: the cheap way round an `ast` tree."""
    pending: list[ast.AST] = [node]
    while pending:
        current = pending.pop()
        for value in vars(current).values():
            if not isinstance(value, list) or not value:
                continue
            first = value[0]
            if isinstance(first, ast.stmt):
                yield value
                pending.extend(value)
            elif isinstance(first, (ast.excepthandler, ast.match_case)):
                pending.extend(value)


@dataclass
class RuleSet:
    """The enabled rules, in code order."""

    rules: list[type[Rule]] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return [rule.code for rule in self.rules]


_LEADING_FORM_FEED = re.compile(rb"(?m)^[ \t\x0c]*\x0c")


def prefilter_view(source: bytes) -> bytes:
    """The source as the rules' text tests expect it: `\n` line endings, no form feeds.

    Python ends lines at \r\n, \r and \n, and a form feed resets the indentation count:
    the tests (written with `\n` and spaces in mind) see the same code either way.
    """
    if b"\r" in source:
        source = source.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b"\x0c" in source:
        source = _LEADING_FORM_FEED.sub(b"", source).replace(b"\x0c", b" ")
    return source


_IDENTIFIER_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_TOKEN = re.compile(rb"[A-Za-z0-9_]+|\S")
# What Python allows between two tokens (inside brackets): whitespace of any kind,
# backslash continuations, comments.
# A comment must run to its line's end, so that the pattern has one way to match
# (`#[^\r\n]*` alone could split `###` many ways: exponential backtracking).
_BETWEEN = rb"(?:[ \t\x0c\r\n\\]|#[^\r\n]*(?:\r\n|\r|\n|$))*"
_PATTERNS: dict[bytes, "Optional[re.Pattern[bytes]]"] = {}


def trigger_matches(needle: "Union[bytes, re.Pattern[bytes]]", source: bytes) -> bool:
    """Whether `source` may hold the code `needle` spells, however it is spaced.

    An identifier-only needle is a plain substring test (fast). Any other needle is
    matched token by token, with whatever Python allows between tokens; a leading or
    trailing space means "not glued to a letter" (`" in "` matches `'a'in b`). A compiled
    pattern is searched as it is. The test may say yes too often (in comments and
    strings), never too rarely.
    """
    if isinstance(needle, re.Pattern):
        return needle.search(source) is not None
    pattern = _PATTERNS.get(needle, b"")  # type: ignore[arg-type]
    if pattern == b"":
        pattern = _PATTERNS[needle] = _compile_needle(needle)
    if pattern is None:
        return needle in source
    if not all(part in source for part in _TOKEN.findall(needle) if part[0] in _IDENTIFIER_CHARS):
        return False  # the common case: an identifier of the needle is absent
    return pattern.search(source) is not None


def _compile_needle(needle: bytes) -> "Optional[re.Pattern[bytes]]":
    if all(byte in _IDENTIFIER_CHARS for byte in needle):
        return None
    tokens = _TOKEN.findall(needle)
    body = _BETWEEN.join(re.escape(token) for token in tokens)
    if needle[:1].isspace() and tokens and tokens[0][0] in _IDENTIFIER_CHARS:
        body = rb"(?<![A-Za-z_])" + body
    if needle[-1:].isspace() and tokens and tokens[-1][0] in _IDENTIFIER_CHARS:
        body = body + rb"(?![A-Za-z0-9_])"
    return re.compile(body)


def mentioned_in_project(source: bytes, look: Optional["FirstLook"],
                         *needles: "Union[bytes, re.Pattern[bytes]]") -> bool:
    """Whether a project module the file imports holds one of `needles` (read through
    `look`, matched as trigger_matches does); without `look`, whether the file imports
    a project module at all."""
    imported = look.imported if look is not None else None
    if imported is None:
        return imports_project_module(source)
    return any(trigger_matches(needle, text) for text in imported.sources()
               for needle in needles)


def ast_dotted(node: ast.AST) -> Optional[str]:
    """`a.b.c` for an `ast` Name/Attribute chain, else None (as semantics' dotted_name)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def import_spellings(tree: ast.AST, qualnames: "Iterable[str]") -> set[str]:
    """The dotted names under which this file's imports can spell one of `qualnames`:
    `{"eqx.apply_updates", "apply_updates"}` for "equinox.apply_updates" after `import
    equinox as eqx` and `from equinox import apply_updates`.

    Sound for `Semantics.qualname`, which resolves a dotted name's head through the file's
    `import`/`from ... import` statements (anywhere in the file, aliases included; not
    star imports, not assignments, not other modules' re-exports): a call whose qualified
    name is one of `qualnames` is spelled as one of these. Empty: the file cannot name any.
    """
    wanted = tuple(qualnames)
    found: set[str] = set()

    def add(local: str, full: str) -> None:
        for qual in wanted:
            if qual == full:
                found.add(local)
            elif qual.startswith(full + "."):
                found.add(local + qual[len(full):])

    for block in statement_blocks(tree):
        for statement in block:
            if isinstance(statement, ast.Import):
                for alias in statement.names:
                    if alias.asname is not None:
                        add(alias.asname, alias.name)
                    else:
                        head = alias.name.split(".", 1)[0]
                        add(head, head)
            elif isinstance(statement, ast.ImportFrom) and statement.module is not None:
                module = "." * statement.level + statement.module
                for alias in statement.names:
                    if alias.name != "*":
                        add(alias.asname or alias.name, f"{module}.{alias.name}")
    return found


_SPELLED: dict[str, "re.Pattern[bytes]"] = {}
# Between the parts of a dotted name: what _BETWEEN allows, and the `)` closing a
# parenthesised head (`(eqx).apply_updates`).
_BETWEEN_PARTS = rb"(?:[ \t\x0c\r\n\\)]|#[^\r\n]*(?:\r\n|\r|\n|$))*"


def spelled_in(spellings: "Iterable[str]", *sources: bytes) -> bool:
    """Whether one of these dotted names may occur as code in one of `sources` (however
    spaced, continued, commented or parenthesised; in strings and comments too)."""
    for name in spellings:
        pattern = _SPELLED.get(name)
        if pattern is None:
            parts = [re.escape(part.encode()) for part in name.split(".")]
            pattern = _SPELLED[name] = re.compile(
                (_BETWEEN_PARTS + rb"\." + _BETWEEN_PARTS).join(parts))
        last = name.rsplit(".", 1)[-1].encode()
        if any(last in source and pattern.search(source) for source in sources):
            return True
    return False


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
                 made_by_call_of_call: bool = True) -> None:
        # What is asked for: by default an optimizer, which a call of an `optax.` name
        # makes, and `optax.inject_hyperparams(optax.adam)(...)`. `makers` says which
        # library calls (qualified names) may make it, or which argument's value they
        # hand on (position, keyword); `made_by_call_of_call` whether `f(...)(...)` may.
        self.source = source
        self.look = look
        self.makers = makers
        self.made_by_call_of_call = made_by_call_of_call
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
            for node in ast.walk(tree):
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
            for node in ast.walk(self._tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    self._calls_by_name.setdefault(node.func.id, []).append(node)
        return self._calls_by_name.get(name, [])

    def _qualified_may_hold(self, node: ast.expr, call: Optional[ast.Call], depth: int
                            ) -> bool:
        dotted = ast_dotted(node)
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


def own_statements(function: Union[ast.FunctionDef, ast.AsyncFunctionDef]
                   ) -> Iterator[ast.stmt]:
    """The statements of a def's own scope: not those of the defs and classes inside."""
    pending: list[ast.stmt] = list(reversed(function.body))
    while pending:
        statement = pending.pop()
        yield statement
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for value in vars(statement).values():
            if not isinstance(value, list) or not value:
                continue
            if isinstance(value[0], ast.stmt):
                pending.extend(reversed(value))
            elif isinstance(value[0], (ast.excepthandler, ast.match_case)):
                for item in reversed(value):
                    pending.extend(reversed(item.body))


def call_argument(call: ast.Call, position: int, keyword: str) -> Optional[ast.expr]:
    """As semantics' `argument`: the positional argument (stars skipped), else the keyword."""
    positional = [a for a in call.args if not isinstance(a, ast.Starred)]
    if position < len(positional):
        return positional[position]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def named_besides_definition(source: bytes, name: str, call: bool = False) -> bool:
    """Whether the identifier `name` occurs in `source` other than as the name a `def` or
    `class` statement defines (with `call`: followed by `(`, as a call by that name is).
    A use is always counted; so may be a longer word, a comment or a string."""
    word = re.escape(name.encode())
    tail = _BETWEEN + rb"\(" if call else rb"(?![A-Za-z0-9_])"
    uses = len(re.findall(rb"(?<![A-Za-z0-9_])" + word + tail, source))
    defined = len(re.findall(rb"(?<![A-Za-z0-9_])(?:def|class)" + _BETWEEN + word + tail,
                             source))
    return uses > defined


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
