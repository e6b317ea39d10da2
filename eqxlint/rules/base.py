"""What a rule is: its documentation, its examples, its static check, its fix."""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Iterator, Optional, Union

import libcst as cst

from eqxlint.diagnostics import Applicability, Diagnostic
from eqxlint.semantics import Semantics
from eqxlint.semantics.project import ImportedSources, imports_project_module

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
        self._imports: Optional[dict[str, frozenset[str]]] = None
        self._text_imports: object = False  # not read yet

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
