"""The default format: the finding, the source line with a caret, and the fix hint."""

from __future__ import annotations

from typing import Optional, Sequence

from eqxlint.diagnostics import Diagnostic
from eqxlint.report.concise import line
from eqxlint.report.options import DEFAULT, ReportOptions, paint


def _snippet(diagnostic: Diagnostic, options: ReportOptions = DEFAULT) -> list[str]:
    if diagnostic.source_line is None or diagnostic.location is None:
        return []
    row = diagnostic.location.row
    gutter = " " * len(str(row))
    source = diagnostic.source_line.expandtabs(1)
    start = max(0, diagnostic.location.column - 1)
    end_location = diagnostic.end_location or diagnostic.location
    if end_location.row == row:
        width = max(1, end_location.column - diagnostic.location.column)
    else:
        width = max(1, len(source.rstrip()) - start)
    bar = paint("|", options, fg="blue", bold=True)
    carets = paint(f"{'^' * width} {diagnostic.code}", options, fg="red", bold=True)
    return [
        f"{gutter} {bar}",
        f"{paint(str(row), options, fg='blue', bold=True)} {bar} {source}",
        f"{gutter} {bar} {' ' * start}{carets}",
        f"{gutter} {bar}",
    ]


def render_one(diagnostic: Diagnostic, options: Optional[ReportOptions] = None) -> str:
    options = options or DEFAULT
    lines = [line(diagnostic, options), *_snippet(diagnostic, options)]
    if diagnostic.hint:
        pad = " " * (len(str(diagnostic.location.row)) if diagnostic.location else 1)
        lines.append(f"{pad} {paint('= help', options, fg='cyan', bold=True)}: {diagnostic.hint}")
    return "\n".join(lines) + "\n"


def render(diagnostics: Sequence[Diagnostic], options: Optional[ReportOptions] = None) -> str:
    return "\n".join(render_one(d, options) for d in diagnostics)
