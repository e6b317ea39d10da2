"""CPython's own verdict on a file's syntax, before libcst sees it.

Every file is checked here, also those the pre-filter spares from libcst: this
costs about a tenth of a libcst parse. It also protects libcst: input that CPython
refuses for its depth (`too many nested parentheses`) can overflow the stack of
libcst's native parser, which kills the process instead of raising.

The verdict is `compile()`'s, so an EQX000 means exactly "Python would refuse to
run this file", at the line and column CPython gives.
"""

from __future__ import annotations

import ast
import re
import sys
import warnings
from typing import TYPE_CHECKING, Optional

from eqxlint.diagnostics import Diagnostic, Location

if TYPE_CHECKING:  # imported where a file needs it: most runs never do
    import libcst

SYNTAX_ERROR = "EQX000"
_LINE_END = re.compile(r"\r\n|\r|\n")  # only these end a line for Python


def cpython_refusal(text: str, display: str, top_level_await: bool = False
                    ) -> Optional[Diagnostic]:
    """EQX000 if CPython's compile() refuses `text`, else None."""
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if top_level_await else 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning, DeprecationWarning: not ours
            compile(text, display, "exec", flags=flags, dont_inherit=True)
    except SyntaxError as error:  # IndentationError and TabError too
        if _newer_python_accepts(text, error):
            return None  # e.g. `type X = ...` (3.12) read by eqxlint on 3.11: not an error
        message = f"{type(error).__name__}: {error.msg}"
        return syntax_diagnostic(text, display, message, error.lineno, error.offset)
    except (RecursionError, MemoryError) as error:
        return syntax_diagnostic(
            text, display, f"could not be parsed: CPython's compiler gave up "
            f"({type(error).__name__}: {error})", 1, 1,
            hint="Split the deeply nested or very long expression")
    except Exception as error:  # ValueError and kin on odd input: still a refusal
        return syntax_diagnostic(text, display,
                                 f"could not be parsed: {type(error).__name__}: {error}", 1, 1)
    return None


def _newer_python_accepts(text: str, error: SyntaxError) -> bool:
    """Valid in a newer Python than the one running eqxlint (libcst knows its grammar)?

    Only asked for files this interpreter refuses; never for nesting too deep for
    libcst's native parser, which would crash instead of answering.
    """
    if sys.version_info >= (3, 13) or "nested" in str(error.msg) or len(text) > 1_000_000:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
        return False  # the grammar accepts it: a compiler's refusal (`return` outside a def)
    except SyntaxError:
        pass
    except Exception:
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
