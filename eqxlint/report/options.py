"""What every reporter may be told: which fixes `--fix` would apply, and colour."""

from __future__ import annotations

from dataclasses import dataclass

import click

from eqxlint.diagnostics import Diagnostic


@dataclass(frozen=True)
class ReportOptions:
    unsafe_fixes: bool = False  # `--unsafe-fixes` given: unsafe fixes count as applicable
    color: bool = False


DEFAULT = ReportOptions()


def fix_applies(diagnostic: Diagnostic, unsafe_fixes: bool) -> bool:
    """Would `--fix` (with `--unsafe-fixes` if given) apply this finding's fix? Ruff's `[*]`."""
    fix = diagnostic.fix
    return fix is not None and bool(fix.edits) and (
        fix.applicability == "safe" or unsafe_fixes)


def paint(text: str, options: ReportOptions, **style: object) -> str:
    return click.style(text, **style) if options.color else text  # type: ignore[arg-type]
