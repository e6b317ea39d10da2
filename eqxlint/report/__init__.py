"""Output formats: one module each. A reporter turns findings into text."""

from __future__ import annotations

import importlib
from typing import Callable, Optional, Sequence

from eqxlint.diagnostics import Diagnostic
from eqxlint.report import concise, full
from eqxlint.report.options import ReportOptions, fix_applies

Reporter = Callable[..., str]  # (diagnostics, options: Optional[ReportOptions] = None) -> text


def _on_use(module: str) -> Reporter:
    """A format's render, imported when first used: junit's XML alone pulls in urllib,
    http and email, a tenth of what a one-file run (pre-commit) costs beyond libcst."""
    def render(diagnostics: Sequence[Diagnostic], options: Optional[ReportOptions] = None
               ) -> str:
        return importlib.import_module(f"eqxlint.report.{module}").render(  # type: ignore[no-any-return]
            diagnostics, options)
    return render


REPORTERS: dict[str, Reporter] = {
    "full": full.render,
    "concise": concise.render,
    "json": _on_use("json_format"),
    "sarif": _on_use("sarif"),
    "github": _on_use("github"),
    "gitlab": _on_use("gitlab"),
    "junit": _on_use("junit"),
    "pylint": _on_use("pylint"),
}

__all__ = ["REPORTERS", "ReportOptions", "fix_applies", "where", "render"]


def render(name: str, diagnostics: Sequence[Diagnostic],
           options: Optional[ReportOptions] = None) -> str:
    return REPORTERS[name](diagnostics, options)


def where(diagnostic: Diagnostic) -> str:
    """`path:row:col` (or `path:cell N:row:col` in a notebook)."""
    return concise.where(diagnostic)
