"""What a rule is: its documentation, its examples, its static check, its fix."""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable, Iterator, Optional, TypeVar, Union

import libcst as cst

from eqxlint.diagnostics import Applicability, Diagnostic
from eqxlint.semantics import Semantics
from eqxlint.semantics.project import LIBRARIES, ImportedSources, imports_project_module
from eqxlint.semantics.values import STRUCTURE_PRESERVING, TREE_MAP_FUNCTIONS

if TYPE_CHECKING:  # the runtime context imports jax; the linter must not
    from eqxlint.runtime.checker import RuntimeContext

T = TypeVar("T")

# A trigger met when the group's other words occur in a project module the file
# imports (see may_fire).
PROJECT_IMPORT = b"\0project-import\0"
_SPACE = rb"(?:[ \t\x0c]|\\\n)"
# A statement that binds a name to optax itself: `import optax`, `import jax, optax as ox`,
# `import optax.contrib` (it binds `optax`), on any line, after `try:` or `;` too.
_IMPORTS_OPTAX = re.compile(rb"\bimport\b(?:[^\n;#\\]|\\\n|\\.)*?\boptax\b")
# An import that can name optax's public transformations (`import optax`, `from optax
# import adamw`, `from optax.contrib import muon`, also after `try:` or `if x:` on its
# line): the only way the semantics learns that a value is an optimizer. optax's own
# `from optax._src import alias` is not one.
IMPORTS_PUBLIC_OPTAX = re.compile(
    _IMPORTS_OPTAX.pattern + rb"|\bfrom" + _SPACE + rb"+optax(?:" + _SPACE + rb"*\." + _SPACE
    + rb"*(?!_)\w+)*" + _SPACE + rb"+import\b")
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
        self._optax: Optional[frozenset[str]] = None
        self._calls: dict[str, list[ast.Call]] = {}
        self._reads: Optional[set[tuple[str, str]]] = None
        self._memo: dict[str, object] = {}
        self._newer: Optional[ast.Module] = None
        self._newer_refused = False
        self._imports: Optional[dict[str, frozenset[str]]] = None
        self._text_imports: object = False  # not read yet

    def optax_names(self) -> Optional[frozenset[str]]:
        """The optax names this file's code can spell as `optax.<name>`: the last part of
        each name imported from optax (`from optax import adamw`, `from optax.contrib
        import muon`) and of each attribute read from an import of optax itself
        (`optax.adamw`, `ox.contrib.muon`, after `import optax as ox`). Read from the
        `ast`, so a docstring's `>>> optax.adam(...)` is not code. None without an `ast`."""
        if self._optax is None:
            tree = self.tree()
            if tree is None:
                return None
            self._optax = _optax_names(tree, self)
        return self._optax

    def memo(self, key: str, build: "Callable[[ast.Module], T]") -> "Optional[T]":
        """`build(tree)`, computed once per file for every rule that asks by `key` (rules
        of one family share what they learn); None without an `ast`."""
        if key not in self._memo:
            tree = self.tree()
            if tree is None:
                return None
            self._memo[key] = build(tree)
        return self._memo[key]  # type: ignore[no-any-return]

    def import_bindings(self) -> Optional[dict[str, frozenset[str]]]:
        """The file's import table (see import_table); None without an `ast`."""
        return self.imports()

    def text_imports(self) -> Optional[dict[str, frozenset[str]]]:
        """The import table read from the text (see text_import_table): a superset of
        imports(), without parsing the file; None when the text cannot tell."""
        if self._text_imports is False:
            self._text_imports = text_import_table(self.source)
        return self._text_imports  # type: ignore[return-value]

    def imports(self) -> Optional[dict[str, frozenset[str]]]:
        """The file's import table (see import_table); None when `ast` cannot parse it."""
        if self._imports is None:
            tree = self.tree()
            if tree is None:
                return None
            self._imports = import_table(tree)
        return self._imports

    def method_calls(self, method: str) -> Optional[list[ast.Call]]:
        """Every call `<expression>.<method>(...)` in the file's code; None without an `ast`."""
        if self._walk() is None:
            return None
        return self._calls.get(method, [])

    def attribute_reads(self) -> Optional[set[tuple[str, str]]]:
        """("a", "b") for each `a.b` in the code and ("a.b", "c") for each `a.b.c` (a, b
        names); None without an `ast`."""
        return self._walk()

    def _walk(self) -> Optional[set[tuple[str, str]]]:
        """One `ast.walk` for the questions above, shared by every rule that asks."""
        if self._reads is None:
            tree = self.tree()
            if tree is None:
                return None
            calls: dict[str, list[ast.Call]] = {}
            reads: set[tuple[str, str]] = set()
            for node in walk(tree):
                kind = type(node)
                if kind is ast.Attribute:
                    value = node.value  # type: ignore[attr-defined]
                    if type(value) is ast.Name:
                        reads.add((value.id, node.attr))  # type: ignore[attr-defined]
                    elif type(value) is ast.Attribute and type(value.value) is ast.Name:
                        reads.add((f"{value.value.id}.{value.attr}", node.attr))  # type: ignore
                elif kind is ast.Call and type(node.func) is ast.Attribute:  # type: ignore
                    calls.setdefault(node.func.attr, []).append(node)  # type: ignore
            self._calls, self._reads = calls, reads
        return self._reads

    def tree(self, newer_syntax: bool = False) -> Optional[ast.Module]:
        """The file's `ast`; None when `ast` cannot build it (the rule must then say yes).

        `newer_syntax=True`: where this Python's `ast` refuses the file, the tree of the
        file without its type parameter lists (`def f[T](x)`, `class C[T: Base]`, Python
        3.12) and with `type X = v` read as `_eqx_type_alias = v` (see
        without_type_parameters). Only for a rule whose first look loses nothing there:
        a list with no parentheses holds no call, no lambda and no statement.
        """
        if self._tree is None and not self._refused:
            self._tree = _parse(self.source)
            self._refused = self._tree is None
        if self._tree is not None or not newer_syntax:
            return self._tree
        if self._newer is None and not self._newer_refused:
            rewritten = without_type_parameters(self.source)
            self._newer = _parse(rewritten) if rewritten != self.source else None
            self._newer_refused = self._newer is None
        return self._newer


def _parse(source: bytes) -> Optional[ast.Module]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning: not the rules' business
            return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


# A type parameter list without parentheses (one level of brackets inside: `T: list[int]`).
_BRACKETED = rb"\[[^\[\]()]*(?:\[[^\[\]()]*\][^\[\]()]*)*\]"
_TYPE_PARAMETERS = re.compile(rb"\b(def|class)([ \t]+\w+)[ \t]*" + _BRACKETED)
_TYPE_ALIAS = re.compile(rb"(?m)^([ \t]*)type[ \t]+\w+[ \t]*(?:" + _BRACKETED + rb")?[ \t]*=(?!=)")


def without_type_parameters(source: bytes) -> bytes:
    """The source with Python 3.12's type parameter lists dropped and `type X = v` written
    `_eqx_type_alias = v`, for an older `ast` (line numbers may move: first looks do not
    need them). Lists that hold parentheses are left alone (the parse then fails, and the
    rule says yes)."""
    if b"[" not in source and b"type" not in source:
        return source
    source = _TYPE_PARAMETERS.sub(rb"\1\2", source)
    return _TYPE_ALIAS.sub(rb"\1_eqx_type_alias =", source)


def _optax_names(tree: ast.Module, look: FirstLook) -> frozenset[str]:
    """See FirstLook.optax_names: what `Semantics.qualname` can resolve to `optax.<x>`
    (every import statement counts, wherever it is: the semantics' imports are per file)."""
    names: set[str] = set()
    modules: dict[str, str] = {}  # local name -> "optax" or "optax.contrib"
    for block in statement_blocks(tree):
        for statement in block:
            if isinstance(statement, ast.Import):
                for alias in statement.names:
                    if alias.name != "optax" and not alias.name.startswith("optax."):
                        continue
                    if alias.asname is None:
                        modules["optax"] = "optax"  # `import optax.tree` binds optax
                    elif alias.name in ("optax", "optax.contrib"):
                        modules[alias.asname] = alias.name
                    else:
                        names.add(alias.name.rsplit(".", 1)[-1])  # `import optax.x as y`
            elif isinstance(statement, ast.ImportFrom) and not statement.level \
                    and statement.module is not None \
                    and (statement.module == "optax" or statement.module.startswith("optax.")):
                for alias in statement.names:
                    names.add(alias.name)
                    if statement.module == "optax" and alias.name == "contrib":
                        modules[alias.asname or alias.name] = "optax.contrib"
    if modules:
        for value, attribute in look.attribute_reads() or ():
            head, _, rest = value.partition(".")
            if value in modules or (rest == "contrib" and modules.get(head) == "optax"):
                names.add(attribute)
    return frozenset(names)

def import_table(tree: ast.AST) -> dict[str, frozenset[str]]:
    """Each local name an import statement binds, with every qualified name it is bound to.

    Read as the semantics reads imports (eqxlint/semantics/scopes.py), from every import
    statement of the file, nested ones included: `import a.b` binds `a` to "a",
    `import a.b as c` binds `c` to "a.b", `from m import x as y` binds `y` to "m.x", a
    relative import keeps its dots (".m.x"); `from . import x` and star imports bind
    nothing. The semantics keeps the last import of a name; this keeps them all, so that
    a first look can say yes for any of them.
    """
    table: dict[str, set[str]] = {}
    for block in statement_blocks(tree):
        for statement in block:
            if isinstance(statement, ast.Import):
                for alias in statement.names:
                    if alias.asname is not None:
                        table.setdefault(alias.asname, set()).add(alias.name)
                    else:
                        head = alias.name.split(".", 1)[0]
                        table.setdefault(head, set()).add(head)
            elif isinstance(statement, ast.ImportFrom) and statement.module is not None:
                module = "." * (statement.level or 0) + statement.module
                for alias in statement.names:
                    if alias.name == "*":
                        continue
                    table.setdefault(alias.asname or alias.name, set()).add(
                        f"{module}.{alias.name}")
    return {name: frozenset(quals) for name, quals in table.items()}


_IMPORT_WORD = re.compile(rb"\bimport\b")
# What may stand before `import` on its line in a statement: nothing, a statement and
# `;`, a header and `:`, each maybe followed by `from module`.
_BEFORE_IMPORT = re.compile(rb"(?:.*[;:])?[ \t]*(?P<from>from(?:[ \t]+|(?=\.))[.\w]+[ \t]*)?\Z",
                            re.DOTALL)


def text_import_table(source: bytes) -> Optional[dict[str, frozenset[str]]]:
    """The import table (see import_table) read from the text, without parsing the file:
    each place the word `import` starts a statement (at a line's start, or after `;` or
    a header's `:`) is taken up to the end of its logical line, and those statements
    alone are parsed. A superset of the table `ast` gives (text in strings that looks
    like an import adds entries). None when the text cannot tell: an `import` on a line
    continuing the one before, or a statement that does not parse alone (the caller
    then asks `ast`)."""
    if b"import" not in source:
        return {}
    regions: list[tuple[int, int]] = []
    for match in _IMPORT_WORD.finditer(source):
        start = match.start()
        line_start = source.rfind(b"\n", 0, start) + 1
        if line_start >= 2 and source[line_start - 2:line_start - 1] == b"\\":
            return None  # a continued line: what comes before is unknown
        before = _BEFORE_IMPORT.match(source, line_start, start)
        if before is None:
            continue  # not a statement's start: prose, or inside an expression
        if before.group("from"):
            start = before.start("from")
        regions.append((start, _logical_line_end(source, start)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tree = ast.parse(b"\n".join(source[start:end] for start, end in regions))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            tree = None
        if tree is not None:  # each statement alone: the imports are its top level
            return import_table(ast.Module(body=[statement for statement in tree.body
                                                 if isinstance(statement, (ast.Import,
                                                                           ast.ImportFrom))],
                                           type_ignores=[]))
        table: dict[str, set[str]] = {}
        for start, end in regions:  # one of them does not parse alone: find it
            parsed = None
            for _ in range(8):
                try:
                    parsed = ast.parse(source[start:end])
                    break
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    if end >= len(source):
                        break
                    following = source.find(b"\n", end + 1)  # a bracket in a comment
                    end = len(source) if following < 0 else following  # or a string
            if parsed is None:
                return None
            for name, quals in import_table(parsed).items():
                table.setdefault(name, set()).update(quals)
    return {name: frozenset(quals) for name, quals in table.items()}


def _logical_line_end(source: bytes, start: int) -> int:
    """Where the logical line holding `start` ends: brackets and backslashes continue it
    (counted roughly: a parse tells whether the guess was right)."""
    end = source.find(b"\n", start)
    end = len(source) if end < 0 else end
    depth = source.count(b"(", start, end) - source.count(b")", start, end)
    while (depth > 0 or source[end - 1:end] == b"\\") and end < len(source):
        following = source.find(b"\n", end + 1)
        following = len(source) if following < 0 else following
        depth += source.count(b"(", end, following) - source.count(b")", end, following)
        end = following
    return end


def qualified_names(node: ast.expr, table: dict[str, frozenset[str]]) -> list[str]:
    """The qualified names a Name/Attribute chain may refer to through the file's imports
    (as Semantics.qualname resolves them: only imports count, not local assignments)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return []
    quals = table.get(node.id)
    if not quals:
        return []
    rest = ".".join(reversed(parts))
    return [f"{qual}.{rest}" if rest else qual for qual in quals]


# What Python allows between the parts of a callee: whitespace, continuations,
# comments, brackets.
_CALLEE_GAP = rb"(?:[ \t\r\n\\()]|#[^\n]*(?:\n|$))*"
_NAME = rb"[A-Za-z_\x80-\xff][\w\x80-\xff]*"
_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
                        + bytes(range(0x80, 0x100)))


def calls_resolving_to(source: bytes, table: dict[str, frozenset[str]],
                       wanted: "Callable[[str], bool]") -> Optional[list[int]]:
    """Offsets of the calls the text shows whose callee (a name chain from an imported
    name, with whatever Python allows between its parts, then `(`) the import table
    resolves to a qualified name `wanted` accepts. Strings and comments may add some;
    no such call is missed. None when an imported name is not ASCII (the text may
    spell it in another encoding)."""
    if not table:
        return []
    if not all(name.isascii() for name in table):
        return None
    chain = re.compile(rb"(" + b"|".join(re.escape(name.encode()) for name in sorted(table))
                       + rb")(?![\w\x80-\xff])((?:" + _CALLEE_GAP + rb"\." + _CALLEE_GAP
                       + _NAME + rb")*)" + _CALLEE_GAP + rb"\(")
    found = []
    for match in chain.finditer(source):
        at = match.start()
        if at and source[at - 1] in _NAME_BYTES:
            continue  # the end of a longer name (tested here: a look-behind is slow)
        try:
            rest = ".".join(part.decode() for part in re.findall(_NAME, match.group(2)))
        except UnicodeDecodeError:
            found.append(at)
            continue
        if any(wanted(f"{qual}.{rest}" if rest else qual)
               for qual in table[match.group(1).decode()]):
            found.append(at)
    return found


def walk(node: ast.AST) -> Iterable[ast.AST]:
    """`ast.walk(node)`: the same nodes in the same order, somewhat faster, and a
    whole module's walk is kept on the module: the first looks of many rules walk the
    same tree (measured: ast.walk was the biggest cost of the first looks)."""
    if type(node) is ast.Module:
        known = getattr(node, "_eqxlint_nodes", None)
        if known is None:
            known = list(_walk(node))
            node._eqxlint_nodes = known  # type: ignore[attr-defined]
        return known
    return _walk(node)


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    node_class = ast.AST
    pending = deque([node])
    append, popleft = pending.append, pending.popleft
    while pending:
        node = popleft()
        for name in node._fields:
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, node_class):
                        append(item)
            elif isinstance(value, node_class):
                append(value)
        yield node


def statement_blocks(node: ast.AST) -> Iterable[list[ast.stmt]]:
    """Every statement list below `node` (bodies, branches, handlers, cases), outermost
    first, without walking into expressions: the cheap way round an `ast` tree. A whole
    module's blocks are kept on the module (many first looks ask for them)."""
    if type(node) is ast.Module:
        known = getattr(node, "_eqxlint_blocks", None)
        if known is None:
            known = list(_statement_blocks(node))
            node._eqxlint_blocks = known  # type: ignore[attr-defined]
        return known
    return _statement_blocks(node)


def _statement_blocks(node: ast.AST) -> Iterator[list[ast.stmt]]:
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


def ast_dotted_name(node: ast.AST) -> Optional[str]:
    """`a.b.c` for an `ast` Name/Attribute chain, else None (syntax.dotted_name's twin)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def import_aliases(tree: ast.Module, *names: str) -> set[str]:
    """`names`, and the local names that an import statement anywhere in the file binds to
    something whose last part is one of them (`from equinox.nn import inference_mode as
    im`, `import equinox.nn.inference_mode as im`): what a call must be spelled as for the
    semantics to resolve it to one of `names` (see may_name)."""
    found = set(names)
    for block in statement_blocks(tree):
        for statement in block:
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                found.update(alias.asname for alias in statement.names
                             if alias.asname and alias.name.rsplit(".", 1)[-1] in names)
    return found


def may_name(node: ast.AST, names: "set[str] | frozenset[str]", aliases: set[str]) -> bool:
    """Could Semantics.qualname resolve `node` to a name whose last part is in `names`? Its
    dotted spelling must end in one of them, or be one of `aliases` (import_aliases)."""
    dotted = ast_dotted_name(node)
    if dotted is None:
        return False
    return dotted.rsplit(".", 1)[-1] in names or dotted in aliases


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
    return any(imported.mention(needle, trigger_matches) for needle in needles)


# -- optax factories: what the optimizer rules need proven -------------------------------

# `from optax import ...` / `from optax.contrib import ...`: the only from-imports whose
# names can be optax factories (`from optax._src import alias`, `from optax.transforms
# import ...` bind names that are not: optax.<factory> is all the semantics knows).
_FROM_OPTAX = re.compile(rb"\bfrom" + _SPACE + rb"+optax(?:" + _SPACE + rb"*\." + _SPACE
                         + rb"*contrib)?" + _SPACE + rb"+import\b")
_OPTAX_PATTERNS: dict["frozenset[str]", tuple["frozenset[str]", "re.Pattern[bytes]",
                                               "re.Pattern[bytes]"]] = {}


def _imported_names_after(text: bytes, start: int) -> bytes:
    """The names part of the `from ... import` that ends at `start`: a bracketed list (to
    its `)`, comments skipped) or the rest of the logical line (a superset is fine)."""
    index, end = start, len(text)
    while index < end and text[index:index + 1] in b" \t\x0c\\\n":
        if text[index:index + 1] == b"\n" and text[index - 1:index] != b"\\":
            return b""
        index += 1
    if text[index:index + 1] != b"(":
        line = re.compile(rb"(?:[^\n\\]|\\\n|\\.)*").match(text, index)
        return line.group(0) if line is not None else text[index:]
    scan = index + 1
    while scan < end:
        char = text[scan:scan + 1]
        if char == b"#":
            newline = text.find(b"\n", scan)
            scan = end if newline < 0 else newline
        elif char == b")":
            return text[index:scan]
        scan += 1
    return text[index:]


def words_of(factories: "frozenset[str]") -> "frozenset[str]":
    """The names the factories are spelled by in code: "contrib.muon" -> "muon"."""
    return frozenset(name.rsplit(".", 1)[-1] for name in factories)


def optax_factory_named(source: bytes, look: Optional["FirstLook"],
                        factories: "frozenset[str]") -> bool:
    """Whether this file, or a project module it imports, may build an optimizer from one of
    `factories` (optax names as eqxlint.knowledge spells them: "adamw", "contrib.muon",
    "MultiSteps") as the semantics sees it: a call whose qualified name is
    `optax.<factory>`. The semantics resolves names only through the imports of the module
    that spells them, so some module (this file, or one it imports directly or through
    others) must spell the factory through an optax import:
    - this file: its `ast` (FirstLook.optax_names) holds the factory's last name, imported
      from optax or read as an attribute of an import of optax;
    - an imported module (its text): an import binding optax itself (`import optax`, `from
      optax import contrib`) and `.<factory>` written as an attribute, or `from
      optax[.contrib] import` naming the factory (`from optax import adamw as make`,
      which other modules may re-export).
    Optax's own source (`from optax._src import alias`, `>>> optax.adam` in docstrings)
    holds none of these. Without the imported modules' text, any import of a project
    module says yes; without an `ast`, this file is read as text too."""
    patterns = _OPTAX_PATTERNS.get(factories)
    if patterns is None:
        names = words_of(factories)
        alternation = b"|".join(re.escape(word.encode())
                                for word in sorted(names, key=len, reverse=True))
        patterns = _OPTAX_PATTERNS[factories] = (
            names,
            re.compile(rb"\." + _BETWEEN + rb"(?:" + alternation + rb")(?![A-Za-z0-9_])"),
            re.compile(rb"(?<![A-Za-z0-9_])(?:" + alternation + rb")(?![A-Za-z0-9_])"))
    names, attribute, word = patterns
    imported = look.imported if look is not None else None
    if imported is None:
        if imports_project_module(source):
            return True
        texts: list[bytes] = []
    else:
        texts = imported.sources()
    known = look.optax_names() if look is not None else None
    if known is None:
        texts = [source, *texts]
    elif not names.isdisjoint(known):
        return True
    for text in texts:
        if b"optax" not in text:
            continue
        if attribute.search(text) and (_IMPORTS_OPTAX.search(text) or _FROM_OPTAX.search(text)):
            return True
        for statement in _FROM_OPTAX.finditer(text):
            if word.search(_imported_names_after(text, statement.end())):
                return True
    return False


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
        self._defined: dict[str, bool] = {}
        self._quals: dict[int, set[str]] = {}  # by id of a node of `tree`, which lives on
        self._collect(tree)
        # Answers by demand: ("name"|"attr"|"return", spelling) -> (may hold a module,
        # tuple positions that may hold one). An answer found while a question it
        # depends on was still open (a cycle) is not kept, unless it is a plain yes.
        self._answers: dict[tuple[str, str], tuple[bool, frozenset[int]]] = {}
        self._open: set[tuple[str, str]] = set()
        self._cycle = False
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
        if not rest and head in self.class_names:
            found.add("<local>." + head)
        return found

    def is_project(self, qual: str) -> bool:
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
        """The least fixpoint, by depth-first search: an open question counts as no."""
        known = self._answers.get(key)
        if known is not None:
            return known
        if key in self._open:
            self._cycle = True
            return False, frozenset()
        self._budget -= 1
        if self._budget < 0 or len(self._open) > _FLOW_DEPTH:
            raise FlowTooDeep
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
        finally:
            self._open.discard(key)
        answer = (held, frozenset(positions))
        if not self._cycle:
            self._answers[key] = answer
        self._cycle = outer or self._cycle
        return answer

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
        """Whether `node` may hold an Equinox module (or a container of one)."""
        kind = type(node)
        if kind is ast.Name:
            name = node.id  # type: ignore[attr-defined]
            if self._ask(("name", name))[0]:
                return True
            return any(self.is_project(qual) for qual in self.quals(node))
        if kind is ast.Attribute:
            value = node.value  # type: ignore[attr-defined]
            if type(value) is ast.Name and value.id == "self":  # type: ignore[attr-defined]
                return self._ask(("attr", node.attr))[0]  # type: ignore[attr-defined]
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
        """The positions at which `node`, if it is a tuple or list, may hold a module."""
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
            if name in self._returns and self._ask(("return", name))[0]:
                return True
        for qual in self.quals(func):
            if _is_equinox_nn(qual) or qual.startswith("<local>.") or \
                    self._project_class(qual, True):
                return True
            if (qual in _FLOWING_CALLS or qual == _PARTITION) and self.call_passes(call):
                return True
        return False


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
