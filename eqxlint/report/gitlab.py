"""GitLab Code Quality report (a JSON array), in the shape Ruff writes.

Paths are relative to `CI_PROJECT_DIR` when GitLab sets it (as Ruff does), else as
reported. Each fingerprint hashes the path, code, message and source line, and a
counter for repeats, so it stays the same while unrelated lines move.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Sequence

from eqxlint.diagnostics import Diagnostic, Location


def _path(filename: str) -> str:
    project = os.environ.get("CI_PROJECT_DIR")
    if not project:
        return filename
    try:
        return os.path.relpath(os.path.abspath(filename), project).replace(os.sep, "/")
    except ValueError:
        return filename


def render(diagnostics: Sequence[Diagnostic], options: object = None) -> str:
    seen: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for d in diagnostics:
        start = d.location or Location(1, 1)
        end = d.end_location or start
        path = _path(d.filename or "")
        key = "\0".join([path, d.code, d.message, (d.source_line or "").strip(),
                         str(d.cell or "")])
        count = seen.get(key, 0)
        seen[key] = count + 1
        fingerprint = hashlib.sha256(f"{key}\0{count}".encode()).hexdigest()[:16]
        out.append({
            "check_name": d.code,
            "description": f"{d.code}: {d.message}",
            "fingerprint": fingerprint,
            "location": {"lines": {"begin": start.row, "end": end.row}, "path": path},
            "severity": "major",
        })
    return json.dumps(out, indent=2) + "\n"
