"""A rule's first look at a file, before libcst: the text tests, Python's `ast` of the
file (built once, shared by every rule), its imports read from the `ast` or the text,
and the text of the project modules it imports. False from a first look means "this
rule cannot fire here", and the file is not parsed for it."""

from __future__ import annotations

import ast
import re
import warnings
from collections import deque
from typing import Callable, Iterable, Iterator, Optional, TypeVar, Union

from eqxlint.semantics.project import ImportedSources, imports_project_module

T = TypeVar("T")
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


class FirstLook:
    """What the rules' first looks at one file share: Python's syntax tree of the file
    (`ast`, many times cheaper than libcst; built once, for the first rule that asks)
    and the text of the project modules the file imports."""

    def __init__(self, source: bytes, imported: Optional[ImportedSources] = None,
                 tree: Optional[ast.Module] = None) -> None:
        """`tree`: the file's `ast`, where the syntax check has built it already."""
        self.source = source
        self.imported = imported
        self._tree: Optional[ast.Module] = tree
        self._refused = False
        self._optax: Optional[frozenset[str]] = None
        self._calls: dict[str, list[ast.Call]] = {}
        self._reads: Optional[set[tuple[str, str]]] = None
        self._memo: dict[str, object] = {}
        self._newer: Optional[ast.Module] = None
        self._newer_refused = False
        self._imports: Optional[dict[str, frozenset[str]]] = None
        self._text_imports: object = False  # not read yet

    def release(self) -> None:
        """Drop the `ast` and all that the rules learnt from it, once every rule has looked
        (the look is not asked again). What they kept often refers back to the look or the
        tree (a rule's flow keeps the look; the module keeps its own walk): cycles, which
        would leave each file's whole tree for the garbage collector to walk and free."""
        for tree in (self._tree, self._newer):
            if tree is not None:
                tree.__dict__.pop("_eqxlint_nodes", None)
                tree.__dict__.pop("_eqxlint_blocks", None)
        kept = {"source": self.source, "imported": self.imported}
        self.__dict__.clear()
        self.__dict__.update(kept)

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
        imports(), without parsing the file; None when the text cannot tell. Where the
        file's `ast` is built already (the syntax check's), its exact table instead."""
        if self._tree is not None:
            return self.imports()
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

    def tree(self, newer_syntax: bool = True) -> Optional[ast.Module]:
        """The file's `ast`; None when `ast` cannot build it (the rule must then say yes).

        Where this Python's `ast` refuses the file, the tree of the file without its type
        parameter lists (`def f[T](x)`, `class C[T: Base]`, Python 3.12) and with `type X
        = v` read as `_eqx_type_alias = v` (see without_type_parameters): no first look
        asks about type parameters or aliases, and a list with no parentheses holds no
        call, no lambda and no statement (2% of the corpus is such code). A rule that
        must not see that tree asks with `newer_syntax=False`.
        """
        if self._tree is None and not self._refused:
            self._tree = parse_quietly(self.source)
            self._refused = self._tree is None
        if self._tree is not None or not newer_syntax:
            return self._tree
        if self._newer is None and not self._newer_refused:
            rewritten = without_type_parameters(self.source)
            self._newer = parse_quietly(rewritten) if rewritten != self.source else None
            self._newer_refused = self._newer is None
        return self._newer


def parse_quietly(source: bytes) -> Optional[ast.Module]:
    """Python's `ast` of `source`, or None where it refuses it (no warnings shown)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning: not the rules' business
            return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


# A type parameter list without parentheses (one level of brackets inside: `T: list[int]`).
_BRACKETED = rb"\[[^\[\]()]*(?:\[[^\[\]()]*\][^\[\]()]*)*\]"


def _type_syntax(bracketed: bytes) -> "tuple[re.Pattern[bytes], re.Pattern[bytes]]":
    """(a def's or class's type parameter list, a `type X[...] =` alias), for `bracketed`."""
    return (re.compile(rb"\b(def|class)([ \t]+\w+)[ \t]*" + bracketed),
            re.compile(rb"(?m)^([ \t]*)type[ \t]+\w+[ \t]*(?:" + bracketed + rb")?[ \t]*=(?!=)"))


_TYPE_SYNTAX = _type_syntax(_BRACKETED)
# Only a list that begins as type parameters do (`[T`, `[*Ts`, `[**P`).
_STRICT_TYPE_SYNTAX = _type_syntax(rb"\[(?=[ \t]*\*{0,2}[A-Za-z_])" + _BRACKETED[2:])


def without_type_parameters(source: bytes, strict: bool = False) -> bytes:
    """The source with Python 3.12's type parameter lists dropped and `type X = v` written
    `_eqx_type_alias = v`, for an older `ast` (line numbers may move: first looks do not
    need them). Lists that hold parentheses are left alone (the parse then fails, and the
    rule says yes). `strict`: only lists that begin as type parameters do (`[T`, `[*Ts`,
    `[**P`), so that what parses after the rewrite was valid 3.12 code before it."""
    if b"[" not in source and b"type" not in source:
        return source
    parameters, alias = _STRICT_TYPE_SYNTAX if strict else _TYPE_SYNTAX
    source = parameters.sub(rb"\1\2", source)
    return alias.sub(rb"\1_eqx_type_alias =", source)


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
BETWEEN_TOKENS = _BETWEEN  # for rules that build their own token patterns
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
