"""The part of the engine that parses: libcst, the Semantics pass, rules, positions.

Kept apart from linter.py so that a run whose files are all cached never imports
libcst (most of such a run's cost).
"""

from __future__ import annotations

import ast
import bisect
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import libcst as cst

from eqxlint.diagnostics import Diagnostic, Edit, Fix, Location
from eqxlint.linter import LineIndex
from eqxlint.rules.base import Finding, Rule
from eqxlint.rules.first_look import FirstLook, prefilter_view
from eqxlint.semantics import Semantics
from eqxlint.semantics.project import ImportedSources, ProjectIndex, shared_index
from eqxlint.syntax import SYNTAX_ERROR, cpython_refusal, take_parsed

if TYPE_CHECKING:
    from libcst.metadata import CodeRange

# libcst's memory and time grow fast with size (a 5 MB one-line list took 6.8 GB and
# minutes): a bigger file is syntax-checked by CPython but not analysed.
MAX_ANALYSED_CHARACTERS = 4_000_000


_UNVALIDATED = threading.Lock()


@contextmanager
def unvalidated_nodes() -> Iterator[None]:
    """libcst checks every node it builds (`CSTNode.__post_init__` calls `_validate`),
    also those its own parser builds, which are valid by construction: measured at about
    a seventh of a parse (libcst's own PERF note there says as much). Skipped while
    eqxlint parses; nodes built for fixes are still checked, the switch is off again
    when the parse returns. A lock keeps two parses from interleaving the switch."""
    from libcst._nodes.base import CSTNode

    with _UNVALIDATED:
        validating = CSTNode.__dict__["__post_init__"]
        CSTNode.__post_init__ = _no_validation  # type: ignore[method-assign]
        try:
            yield
        finally:
            CSTNode.__post_init__ = validating  # type: ignore[method-assign]


def _no_validation(self: object) -> None:
    return None


def parse_module(text: str) -> cst.Module:
    """`libcst.parse_module`, without re-validating what the parser built."""
    known = take_parsed(text)  # the syntax check parsed it already (newer syntax)
    if known is not None:
        return known
    with unvalidated_nodes():
        return cst.parse_module(text)


class NotAnalysed(Exception):
    """Valid Python (CPython compiles it) that libcst cannot parse: eqxlint's limit,
    not the user's mistake. The message says why, for a warning."""


def parse_or_explain(text: str, display: str) -> "cst.Module | Diagnostic":
    """libcst's tree of `text`; EQX000 (CPython's words and position) when the text is
    not Python; NotAnalysed when it is Python that libcst cannot parse."""
    if len(text) > MAX_ANALYSED_CHARACTERS:
        return Diagnostic(
            code=SYNTAX_ERROR, filename=display, location=Location(1, 1),
            end_location=Location(1, 1),
            message=f"not analysed: {len(text):,} characters, more than the "
                    f"{MAX_ANALYSED_CHARACTERS:,} eqxlint gives libcst",
            hint="Exclude this file (generated code?) or split it")
    try:
        return parse_module(text)
    except cst.ParserSyntaxError as error:
        reason = f"libcst's parser stops at {error.raw_line}:{error.raw_column + 1}: " + (
            error.message.strip().splitlines() or ["invalid syntax"])[0]
    except (RecursionError, MemoryError) as error:
        reason = f"libcst gave up ({type(error).__name__})"
    except Exception as error:  # libcst raises a few other types on odd input
        reason = f"libcst failed: {type(error).__name__}: {error}"
    refusal = cpython_refusal(text, display)
    if refusal is not None:
        return refusal
    raise NotAnalysed(f"eqxlint could not analyse this file: {reason} (CPython accepts the "
                      f"file; this is a limit of libcst, not a mistake in the code)")


def _may_fire(rule: type[Rule], data: bytes, look: FirstLook) -> bool:
    """The rule's first look; a first look that fails says yes (a bug there must not
    cost the file its findings: the full check decides)."""
    try:
        return rule.may_fire(data, look)
    except Exception:
        return True


# Only for benchmarks/compare.py, which reports what the project index costs.
_WITHOUT_PROJECT_INDEX = os.environ.get("EQXLINT_NO_PROJECT_INDEX") == "1"


def lint_text(text: str, display: str, rules: Sequence[type[Rule]],
              raw: Optional[bytes] = None, use_prefilter: bool = True,
              path: Optional[Path] = None, project: Optional[ProjectIndex] = None,
              cells: tuple[tuple[int, int], ...] = (), tree: Optional[ast.Module] = None
              ) -> list[Diagnostic]:
    """All findings for one source text (before noqa and per-file ignores).

    `path` is where the text lives (or would): imports of the project's own modules
    are resolved from there, through `project` (the process's shared index by default).
    `cells`: for a notebook's joined text, where each code cell begins (row, cell number).
    `tree`: the text's `ast` where the syntax check built it (it is not parsed again).
    """
    source = raw if raw is not None else text.encode("utf-8", "surrogatepass")
    data = prefilter_view(source)
    if b"\x0c" in source:
        tree = None  # the first looks read a leading form feed as gone: columns move
    index = (project or shared_index()) if path and not _WITHOUT_PROJECT_INDEX else None
    # Without an index nothing is learnt from imported modules: an empty view says so.
    look = FirstLook(data, ImportedSources(index, path, data), tree)
    try:
        active = [rule for rule in rules
                  if rule.static and (not use_prefilter or _may_fire(rule, data, look))]
    finally:
        look.release()
    if not active:
        return []
    shared = index is not None and path is not None and not cells
    semantics = index.known_semantics(path, text) if shared else None  # type: ignore[union-attr]
    if semantics is not None:
        module = semantics.module
    else:
        parsed = parse_or_explain(text, display)
        if isinstance(parsed, Diagnostic):
            return [parsed]
        module = parsed
        semantics = Semantics.of(module, path, index, cells, text)
        if shared:
            index.remember(path, text, semantics)  # type: ignore[union-attr,arg-type]
    findings: list[tuple[type[Rule], Finding]] = []
    for rule in active:
        for finding in rule().check(semantics):
            findings.append((rule, finding))
    if not findings:
        return []
    positions = _positions_of(module, text, semantics, findings)
    lines = LineIndex(text)
    diagnostics = []
    for rule, finding in findings:
        where = positions[finding.node]
        fix = None
        if finding.replacements and rule.fix_applicability is not None:
            edits = []
            for old, new in finding.replacements:
                span = positions[old]
                edits.append(Edit(
                    content=module.code_for_node(_without_outer_parens(old, new)),
                    location=Location(span.start.line, span.start.column + 1),
                    end_location=Location(span.end.line, span.end.column + 1),
                    replaces=module.code_for_node(_without_own_parens(old))))
            fix = Fix(rule.fix_applicability, finding.fix_message or finding.hint, tuple(edits))
        diagnostics.append(Diagnostic(
            code=rule.code, message=finding.message, hint=finding.hint, filename=display,
            location=Location(where.start.line, where.start.column + 1),
            end_location=Location(where.end.line, where.end.column + 1),
            fix=fix, noqa_row=where.start.line,
            source_line=lines.line_text(where.start.line)))
    diagnostics.sort(key=Diagnostic.sort_key)
    return diagnostics


class _Placed(dict):  # type: ignore[type-arg]
    """CodeRanges of the nodes that findings need, keyed by node identity."""

    def __getitem__(self, node: cst.CSTNode) -> "CodeRange":
        return dict.__getitem__(self, id(node))


def _positions_of(module: cst.Module, text: str, semantics: Semantics,
                  findings: Sequence[tuple[type[Rule], Finding]]) -> _Placed:
    """Place each finding's nodes, laying out only the statements that hold them.

    libcst's PositionProvider lays out the whole module, which costs more than the
    parse on a big file. A module-level statement's code occurs verbatim in the text
    (libcst is lossless); when it occurs exactly once, its own layout, shifted to
    where it starts, gives the same positions. Otherwise: the whole module.
    """
    from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider

    placed = _Placed()
    by_statement: dict[int, tuple[cst.CSTNode, list[cst.CSTNode]]] = {}
    for _, finding in findings:
        anchor = finding.anchor if finding.anchor is not None else finding.node
        site = semantics.site(anchor) if isinstance(anchor, cst.Call) else None
        if site is None or site.statement is None:
            return _positions_of_module(module)
        nodes = [finding.node] + [old for old, _ in finding.replacements]
        by_statement.setdefault(id(site.statement), (site.statement, []))[1].extend(nodes)
    lines = LineIndex(text)
    for statement, nodes in by_statement.values():
        code = module.code_for_node(statement)
        start = text.find(code)
        if start < 0 or text.find(code, start + 1) >= 0:
            return _positions_of_module(module)
        first_line = bisect.bisect_right(lines.starts, start)
        if lines.starts[first_line - 1] != start:
            return _positions_of_module(module)
        alone = module.with_changes(body=[statement], header=[], footer=[])
        local = MetadataWrapper(alone, unsafe_skip_copy=True).resolve(PositionProvider)
        shift = first_line - 1
        for node in nodes:
            if node not in local:
                return _positions_of_module(module)
            where = local[node]
            placed[id(node)] = CodeRange(CodePosition(where.start.line + shift, where.start.column),
                                         CodePosition(where.end.line + shift, where.end.column))
    return placed


def _positions_of_module(module: cst.Module) -> _Placed:
    from libcst.metadata import MetadataWrapper, PositionProvider

    placed = _Placed()
    for node, where in MetadataWrapper(module, unsafe_skip_copy=True).resolve(
            PositionProvider).items():
        placed[id(node)] = where
    return placed


def _without_own_parens(node: cst.CSTNode) -> cst.CSTNode:
    """The node as its position spans it: without its own parentheses."""
    if getattr(node, "lpar", None) or getattr(node, "rpar", None):
        return node.with_changes(lpar=[], rpar=[])
    return node


def _without_outer_parens(old: cst.CSTNode, new: cst.CSTNode) -> cst.CSTNode:
    """libcst's positions exclude a node's own parentheses: so must its replacement."""
    old_lpar, new_lpar = getattr(old, "lpar", ()), getattr(new, "lpar", ())
    if not old_lpar or not new_lpar:
        return new
    count = min(len(old_lpar), len(new_lpar))
    new_rpar = list(getattr(new, "rpar", ()))
    return new.with_changes(lpar=list(new_lpar)[count:], rpar=new_rpar[:len(new_rpar) - count])


def parses(text: str) -> bool:
    try:
        cst.parse_module(text)
    except Exception:
        return False
    return True


