"""What a rule is: its documentation, its examples, its static check, its fix."""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Iterator, Optional, Union

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
        self._newer: Optional[ast.Module] = None
        self._newer_refused = False

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
    return any(trigger_matches(needle, text) for text in imported.sources()
               for needle in needles)
