"""`path:row:col: EQX101 message`, one line per finding."""

from __future__ import annotations

from typing import Sequence

from eqxlint.diagnostics import Diagnostic, Location


def where(diagnostic: Diagnostic) -> str:
    location = diagnostic.location or Location(1, 1)
    cell = f"cell {diagnostic.cell}:" if diagnostic.cell is not None else ""
    return f"{diagnostic.filename}:{cell}{location.row}:{location.column}"


def line(diagnostic: Diagnostic) -> str:
    marker = " [*]" if diagnostic.fix is not None and diagnostic.fix.edits else ""
    return f"{where(diagnostic)}: {diagnostic.code}{marker} {diagnostic.message}"


def render(diagnostics: Sequence[Diagnostic]) -> str:
    return "".join(line(d) + "\n" for d in diagnostics)
