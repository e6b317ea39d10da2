"""What a rule is: its documentation, its examples, its static check, its fix."""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Iterator, Optional, TypeVar, Union

import libcst as cst

from eqxlint.diagnostics import Applicability, Diagnostic
from eqxlint.semantics import Semantics
from eqxlint.semantics.project import ImportedSources, imports_project_module

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
        self._imports: Optional[dict[str, set[str]]] = None
        self._memo: dict[str, object] = {}
        self._newer: Optional[ast.Module] = None
        self._newer_refused = False

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

    def import_bindings(self) -> Optional[dict[str, set[str]]]:
        """Each name the file's imports bind, with every qualified name they bind it to, as
        the semantics records imports (`import a.b` binds a; `from . import x` nothing);
        None without an `ast`."""
        if self._imports is None:
            tree = self.tree()
            if tree is None:
                return None
            found: dict[str, set[str]] = {}
            for block in statement_blocks(tree):
                for statement in block:
                    if isinstance(statement, ast.Import):
                        for alias in statement.names:
                            local = alias.asname or alias.name.split(".", 1)[0]
                            full = alias.name if alias.asname else local
                            found.setdefault(local, set()).add(full)
                    elif isinstance(statement, ast.ImportFrom) and statement.module:
                        module = "." * statement.level + statement.module
                        for alias in statement.names:
                            if alias.name != "*":
                                found.setdefault(alias.asname or alias.name, set()).add(
                                    f"{module}.{alias.name}")
            self._imports = found
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
            for node in ast.walk(tree):
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
