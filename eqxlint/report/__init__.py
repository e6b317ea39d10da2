"""Output formats: one module each. A reporter turns findings into text."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from eqxlint.diagnostics import Diagnostic
from eqxlint.report import concise, full, github, gitlab, json_format, junit, pylint, sarif
from eqxlint.report.options import ReportOptions, fix_applies

Reporter = Callable[..., str]  # (diagnostics, options: Optional[ReportOptions] = None) -> text

REPORTERS: dict[str, Reporter] = {
    "full": full.render,
    "concise": concise.render,
    "json": json_format.render,
    "sarif": sarif.render,
    "github": github.render,
    "gitlab": gitlab.render,
    "junit": junit.render,
    "pylint": pylint.render,
}

__all__ = ["REPORTERS", "ReportOptions", "fix_applies", "where", "render"]


def render(name: str, diagnostics: Sequence[Diagnostic],
           options: Optional[ReportOptions] = None) -> str:
    return REPORTERS[name](diagnostics, options)


def where(diagnostic: Diagnostic) -> str:
    """`path:row:col` (or `path:cell N:row:col` in a notebook)."""
    return concise.where(diagnostic)
