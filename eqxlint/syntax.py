"""CPython's own verdict on a file's syntax, before libcst sees it.

Every file is checked here, also those the pre-filter spares from libcst. The
verdict is that of CPython's parser (`ast.parse`), so an EQX000 means exactly
"Python cannot parse this file", at the line and column CPython gives, as for a
notebook's cells. The `ast` it builds is what the rules' first looks read next: a
file is parsed by CPython once. (Errors that CPython raises only when it compiles a
parsed file, such as `'return' outside function`, are not syntax errors to
eqxlint: general linters report them, as Ruff's F706 does.)

It also protects libcst: input that CPython refuses for its depth (`too many nested
parentheses`) can overflow the stack of libcst's native parser, which kills the
process instead of raising.
"""

from __future__ import annotations

import ast
import re
import sys
import warnings
from typing import TYPE_CHECKING, NamedTuple, Optional

from eqxlint.diagnostics import Diagnostic, Location

if TYPE_CHECKING:  # imported where a file needs it: most runs never do
    import libcst

SYNTAX_ERROR = "EQX000"
_LINE_END = re.compile(r"\r\n|\r|\n")  # only these end a line for Python


class Verdict(NamedTuple):
    """What CPython's parser made of a text: its EQX000 (None if it parses) and its `ast`
    (None if it was refused, or is newer syntax than this Python's `ast` builds)."""

    refusal: Optional[Diagnostic]
    tree: Optional[ast.Module]


def parse_verdict(text: str, display: str) -> Verdict:
    """CPython's parser on `text`: an EQX000 where it refuses the text, else its `ast`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning, DeprecationWarning: not ours
            return Verdict(None, ast.parse(text, display))
    except SyntaxError as error:  # IndentationError and TabError too
        if _type_parameters_are_all_that_is_newer(text) or _newer_python_accepts(text, error):
            return Verdict(None, None)  # e.g. `type X = ...` (3.12) read on 3.11
        message = f"{type(error).__name__}: {error.msg}"
        return Verdict(syntax_diagnostic(text, display, message, error.lineno, error.offset),
                       None)
    except (RecursionError, MemoryError):
        # Parsed, but too deep for the `ast` objects to be built (a sum of 10,000 terms):
        # the parser alone decides, without building them.
        return Verdict(_parser_refusal_without_ast(text, display), None)
    except Exception as error:  # ValueError and kin on odd input: still a refusal
        return Verdict(syntax_diagnostic(
            text, display, f"could not be parsed: {type(error).__name__}: {error}", 1, 1), None)


def cpython_refusal(text: str, display: str) -> Optional[Diagnostic]:
    """EQX000 if CPython's parser refuses `text`, else None."""
    return parse_verdict(text, display).refusal


def _parser_refusal_without_ast(text: str, display: str) -> Optional[Diagnostic]:
    """The verdict on a text that parsed but whose `ast` objects are too deep to build:
    `compile()` reads it without building them. What it refuses then is a compiler's
    refusal, not the parser's (the parser accepted the text)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, display, "exec", dont_inherit=True)
    except SyntaxError:
        return None
    except (RecursionError, MemoryError) as error:
        return syntax_diagnostic(
            text, display, f"could not be parsed: CPython's compiler gave up "
            f"({type(error).__name__}: {error})", 1, 1,
            hint="Split the deeply nested or very long expression")
    except Exception as error:
        return syntax_diagnostic(text, display,
                                 f"could not be parsed: {type(error).__name__}: {error}", 1, 1)
    return None


def _type_parameters_are_all_that_is_newer(text: str) -> bool:
    """Whether the text parses once its type parameter lists and `type` aliases (PEP 695,
    the commonest newer syntax) are rewritten away: valid 3.12 code, told without the
    libcst parse that _newer_python_accepts needs (a tenth of a cold run otherwise)."""
    if sys.version_info >= (3, 12):
        return False
    from eqxlint.rules.first_look import parse_quietly, without_type_parameters

    source = text.encode("utf-8", "surrogatepass")
    rewritten = without_type_parameters(source, strict=True)
    return rewritten != source and parse_quietly(rewritten) is not None


def _newer_python_accepts(text: str, error: SyntaxError) -> bool:
    """Valid in a newer Python than the one running eqxlint (libcst knows its grammar)?

    Only asked for files this interpreter's parser refuses; never for nesting too deep
    for libcst's native parser, which would crash instead of answering.
    """
    if sys.version_info >= (3, 13) or "nested" in str(error.msg) or len(text) > 1_000_000:
        return False
    try:
        from eqxlint.parse import parse_module

        module = parse_module(text)
    except Exception:
        return False
    # libcst's word alone is not enough: it does not decode literals, so `'\x0#2'` or
    # `b'é'` (refused by every Python) parse. Only a construct newer than this Python,
    # in a file whose literals this Python can decode, is newer syntax.
    found, bad_literal = _newer_syntax(module)
    if found and not bad_literal:
        _PARSED_FOR_ANALYSIS[:] = [(text, module)]
        return True
    return False


# The libcst tree _newer_python_accepts built, for the analysis that follows to reuse:
# at most one (text, module), taken by the next parse of the same text.
_PARSED_FOR_ANALYSIS: list = []


def take_parsed(text: str) -> "Optional[libcst.Module]":
    """The libcst tree the syntax check already built for `text`, if any (taken once)."""
    if _PARSED_FOR_ANALYSIS and _PARSED_FOR_ANALYSIS[0][0] == text:
        return _PARSED_FOR_ANALYSIS.pop()[1]
    return None


def _newer_syntax(module: "libcst.Module") -> tuple[bool, bool]:
    """Whether a module uses syntax newer than 3.11 (PEP 695 type aliases and
    parameters, PEP 701 f-strings, PEP 750 t-strings, PEP 758 unparenthesised
    except), and whether any string literal is one this Python cannot decode.

    A walk over the nodes' fields (eqxlint.semantics.syntax.children), several times
    cheaper than a libcst visitor on the big files that reach it."""
    import libcst

    from eqxlint.semantics.syntax import children

    newer = tuple(getattr(libcst, name) for name in
                  ("TypeAlias", "TypeParameters", "TemplatedString") if hasattr(libcst, name))
    found = bad_literal = False
    pending: list[libcst.CSTNode] = [module]
    while pending:
        node = pending.pop()
        kind = type(node)
        if kind is libcst.SimpleString:
            bad_literal |= not _decodes(node.value)
        elif kind is libcst.FormattedString:
            newer_string, bad_string = _formatted_string(module, node)
            found |= newer_string
            bad_literal |= bad_string
        elif kind is libcst.ExceptHandler:
            found |= isinstance(node.type, libcst.Tuple) and not node.type.lpar
        elif isinstance(node, newer):
            found = True
        pending.extend(children(node))
    return found, bad_literal


def _formatted_string(module: "libcst.Module", node: "libcst.FormattedString"
                      ) -> tuple[bool, bool]:
    """(newer syntax, undecodable literal) in one f-string's own parts."""
    import libcst

    found = bad_literal = False
    quote = node.end
    prefix = node.start[:-len(quote)].replace("f", "").replace("F", "")
    for part in node.parts:
        if isinstance(part, libcst.FormattedStringText):
            text = part.value + ("{" if part.value.endswith("\\") else "")  # `\{`
            bad_literal |= not _decodes(prefix + quote + text + quote)
            continue
        inside = "".join(module.code_for_node(piece) for piece in (
            part.whitespace_before_expression, part.expression,
            part.whitespace_after_expression))
        if (quote in inside or "\\" in inside or "#" in inside
                or (len(quote) == 1 and ("\n" in inside or "\r" in inside))):
            found = True  # what PEP 701 (3.12) allows in a replacement field
    return found, bad_literal


def _decodes(literal: str) -> bool:
    """Can this Python decode a lone string literal (its escapes, bytes' ASCII)?"""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.literal_eval(literal)
        return True
    except Exception:
        return False


def syntax_diagnostic(text: str, display: str, message: str, row: Optional[int],
                      column: Optional[int], hint: str = "Fix the syntax; this file was not "
                      "checked") -> Diagnostic:
    """An EQX000 at CPython's (1-based) row and column, kept inside the text."""
    lines = _LINE_END.split(text)
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    count = max(1, len(lines))
    row = max(1, min(row or 1, count))
    column = max(1, column or 1)
    source_line = lines[row - 1] if lines else ""
    return Diagnostic(code=SYNTAX_ERROR, message=message, hint=hint, filename=display,
                      location=Location(row, column), end_location=Location(row, column),
                      noqa_row=row, source_line=source_line)
