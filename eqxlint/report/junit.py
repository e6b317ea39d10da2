"""JUnit XML, in the shape Ruff writes: one testsuite per file, one failing testcase per finding."""

from __future__ import annotations

from itertools import groupby
from typing import Sequence
from xml.sax.saxutils import quoteattr, escape

from eqxlint.diagnostics import Diagnostic, Location

TOOL = "eqxlint"


def render(diagnostics: Sequence[Diagnostic], options: object = None) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    total = len(diagnostics)
    lines.append(f'<testsuites name="{TOOL}" tests="{total}" failures="{total}" errors="0">')
    if not diagnostics:
        lines.append(f'    <testsuite name="{TOOL}" tests="1" disabled="0" errors="0" '
                     f'failures="0" package="org.{TOOL}">')
        lines.append(f'        <testcase name="org.{TOOL}" classname="{TOOL}"/>')
        lines.append("    </testsuite>")
    ordered = sorted(diagnostics, key=lambda d: d.filename or "")
    for filename, group in groupby(ordered, key=lambda d: d.filename or ""):
        items = list(group)
        classname = filename.rsplit(".", 1)[0] if "." in filename.rsplit("/", 1)[-1] \
            else filename
        lines.append(f'    <testsuite name={quoteattr(filename)} tests="{len(items)}" '
                     f'disabled="0" errors="0" failures="{len(items)}" package="org.{TOOL}">')
        for d in items:
            location = d.location or Location(1, 1)
            cell = f"cell {d.cell}, " if d.cell is not None else ""
            lines.append(f'        <testcase name="org.{TOOL}.{d.code}" '
                         f'classname={quoteattr(classname)} line="{location.row}" '
                         f'column="{location.column}">')
            text = f"{cell}line {location.row}, col {location.column}, {d.message}"
            lines.append(f"            <failure message={quoteattr(d.message)}>"
                         f"{escape(text)}</failure>")
            lines.append("        </testcase>")
        lines.append("    </testsuite>")
    lines.append("</testsuites>")
    return "\n".join(lines) + "\n"
