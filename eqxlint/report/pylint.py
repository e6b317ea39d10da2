"""Pylint's parseable format, as Ruff writes it: `path:row: [CODE] message`."""

from __future__ import annotations

from typing import Sequence

from eqxlint.diagnostics import Diagnostic, Location


def render(diagnostics: Sequence[Diagnostic], options: object = None) -> str:
    out = []
    for d in diagnostics:
        row = (d.location or Location(1, 1)).row
        cell = f"cell {d.cell}:" if d.cell is not None else ""
        out.append(f"{d.filename}:{cell}{row}: [{d.code}] {d.message}\n")
    return "".join(out)
