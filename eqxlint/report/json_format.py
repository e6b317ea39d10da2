"""One JSON array, one object per finding, with Ruff's keys."""

from __future__ import annotations

import json
from typing import Any, Sequence

from eqxlint.diagnostics import Diagnostic, Location


def _location(location: Location | None) -> dict[str, int] | None:
    return None if location is None else {"row": location.row, "column": location.column}


def _names() -> dict[str, str]:
    from eqxlint.rules import rule_names

    return rule_names()


def to_dict(diagnostic: Diagnostic) -> dict[str, Any]:
    fix = None
    if diagnostic.fix is not None:
        fix = {
            "applicability": diagnostic.fix.applicability,
            "message": diagnostic.fix.message,
            "edits": [{"content": e.content, "location": _location(e.location),
                       "end_location": _location(e.end_location)} for e in diagnostic.fix.edits],
        }
    return {
        "cell": diagnostic.cell,
        "code": diagnostic.code,
        "end_location": _location(diagnostic.end_location),
        "filename": diagnostic.filename,
        "fix": fix,
        "help": diagnostic.hint or None,
        "location": _location(diagnostic.location),
        "message": diagnostic.message,
        "name": _names().get(diagnostic.code),
        "noqa_row": diagnostic.noqa_row,
        "severity": "error",
        "url": diagnostic.url,
    }


def render(diagnostics: Sequence[Diagnostic], options: object = None) -> str:
    return json.dumps([to_dict(d) for d in diagnostics], indent=2) + "\n"
