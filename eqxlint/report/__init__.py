"""Output formats: one module each. A reporter turns findings into text."""

from __future__ import annotations

from typing import Callable, Sequence

from eqxlint.diagnostics import Diagnostic
from eqxlint.report import concise, full, github, json_format, sarif

Reporter = Callable[[Sequence[Diagnostic]], str]

REPORTERS: dict[str, Reporter] = {
    "full": full.render,
    "concise": concise.render,
    "json": json_format.render,
    "sarif": sarif.render,
    "github": github.render,
}


def where(diagnostic: Diagnostic) -> str:
    """`path:row:col` (or `path:cell N:row:col` in a notebook)."""
    return concise.where(diagnostic)
