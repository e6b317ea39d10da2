"""One JSON array, one object per finding, with Ruff's keys."""

from __future__ import annotations

import json
from typing import Any, Sequence

from eqxlint.diagnostics import Diagnostic, Location


def _location(location: Location | None) -> dict[str, int] | None:
    return None if location is None else {"row": location.row, "column": location.column}


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
        "noqa_row": diagnostic.noqa_row,
        "url": diagnostic.url,
    }


def render(diagnostics: Sequence[Diagnostic]) -> str:
    return json.dumps([to_dict(d) for d in diagnostics], indent=2) + "\n"
