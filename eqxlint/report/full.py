"""The default format: the finding, the source line with a caret, and the fix hint."""

from __future__ import annotations

from typing import Sequence

from eqxlint.diagnostics import Diagnostic
from eqxlint.report.concise import line


def _snippet(diagnostic: Diagnostic) -> list[str]:
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
    return [
        f"{gutter} |",
        f"{row} | {source}",
        f"{gutter} | {' ' * start}{'^' * width} {diagnostic.code}",
        f"{gutter} |",
    ]


def render_one(diagnostic: Diagnostic) -> str:
    lines = [line(diagnostic), *_snippet(diagnostic)]
    if diagnostic.hint:
        pad = " " * (len(str(diagnostic.location.row)) if diagnostic.location else 1)
        lines.append(f"{pad} = help: {diagnostic.hint}")
    return "\n".join(lines) + "\n"


def render(diagnostics: Sequence[Diagnostic]) -> str:
    return "\n".join(render_one(d) for d in diagnostics)
