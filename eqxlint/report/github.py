"""GitHub Actions workflow commands: an annotation on the line of each finding."""

from __future__ import annotations

from typing import Sequence

from eqxlint.diagnostics import Diagnostic, Location
from eqxlint.report.concise import where


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(diagnostics: Sequence[Diagnostic], options: object = None) -> str:
    out = []
    for d in diagnostics:
        start = d.location or Location(1, 1)
        end = d.end_location or start
        prefix = ""
        if d.cell is not None:
            # As Ruff: a notebook's lines are JSON, so the annotation falls back to 1:1
            # and the message says where, with the cell.
            prefix = f"{where(d)}: "
            start = end = Location(1, 1)
        properties = ",".join([
            f"title={_escape_property(f'eqxlint ({d.code})')}",
            f"file={_escape_property(d.filename or '')}",
            f"line={start.row}", f"col={start.column}",
            f"endLine={end.row}", f"endColumn={end.column}",
        ])
        message = f"{prefix}{d.code} {d.message}" + (f" Help: {d.hint}" if d.hint else "")
        out.append(f"::error {properties}::{_escape_data(message)}\n")
    return "".join(out)
