"""`path:row:col: EQX101 message`, one line per finding."""

from __future__ import annotations

from typing import Optional, Sequence

from eqxlint.diagnostics import Diagnostic, Location
from eqxlint.report.options import DEFAULT, ReportOptions, fix_applies, paint


def where(diagnostic: Diagnostic, options: ReportOptions = DEFAULT) -> str:
    location = diagnostic.location or Location(1, 1)
    cell = f"cell {diagnostic.cell}:" if diagnostic.cell is not None else ""
    colon = paint(":", options, fg="cyan")
    return (f"{paint(diagnostic.filename or '', options, bold=True)}{colon}{cell}"
            f"{location.row}{colon}{location.column}")


def line(diagnostic: Diagnostic, options: Optional[ReportOptions] = None) -> str:
    options = options or DEFAULT
    marker = f" [{paint('*', options, fg='cyan')}]" \
        if fix_applies(diagnostic, options.unsafe_fixes) else ""
    colon = paint(":", options, fg="cyan")
    code = paint(diagnostic.code, options, fg="red", bold=True)
    return f"{where(diagnostic, options)}{colon} {code}{marker} {diagnostic.message}"


def render(diagnostics: Sequence[Diagnostic], options: Optional[ReportOptions] = None) -> str:
    return "".join(line(d, options) + "\n" for d in diagnostics)
