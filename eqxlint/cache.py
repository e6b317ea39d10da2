"""A cache of findings, keyed by file content, eqxlint version and effective settings.

Like Ruff's: an unchanged re-run reads one small file per source file instead of
parsing it. Each entry is written to a temporary file and renamed into place, so
concurrent runs never see half an entry; a damaged entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

from eqxlint import __version__
from eqxlint.diagnostics import Diagnostic, Edit, Fix, Location

CACHE_DIR_NAME = ".eqxlint_cache"


def fingerprint(rule_codes: list[str], per_file_ignores: dict[str, list[str]],
                use_prefilter: bool) -> str:
    """What, besides a file's bytes and name, decides its findings."""
    settings = json.dumps([__version__, rule_codes, sorted(per_file_ignores.items()),
                           use_prefilter])
    return hashlib.sha256(settings.encode()).hexdigest()


class Cache:
    def __init__(self, folder: Path, settings_fingerprint: str) -> None:
        self.folder = folder / __version__
        self._folder = os.fspath(self.folder)
        self.settings = settings_fingerprint.encode()

    def _entry_name(self, display: str, data: bytes) -> str:
        key = hashlib.sha256(self.settings + b"\0" + display.encode() + b"\0" + data).hexdigest()
        return os.path.join(self._folder, key[:2], key + ".json")

    def get(self, display: str, data: bytes) -> Optional[list[Diagnostic]]:
        try:
            with open(self._entry_name(display, data), encoding="utf-8") as stream:
                raw = stream.read()
            if raw == "[]":
                return []  # most files: no findings, nothing to decode
            return [_load(item) for item in json.loads(raw)]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, display: str, data: bytes, diagnostics: list[Diagnostic]) -> None:
        entry = Path(self._entry_name(display, data))
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            _ignore_in_git(self.folder.parent)
            handle, temporary = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump([_dump(d) for d in diagnostics], stream)
            os.replace(temporary, entry)
        except OSError:
            pass  # a cache that cannot be written is only slower


def _ignore_in_git(folder: Path) -> None:
    marker = folder / ".gitignore"
    if not marker.exists():
        marker.write_text("# Automatically created by eqxlint.\n*\n", encoding="utf-8")


def _location(location: Optional[Location]) -> Optional[list[int]]:
    return None if location is None else [location.row, location.column]


def _dump(d: Diagnostic) -> dict:
    fix = None
    if d.fix is not None:
        fix = {"applicability": d.fix.applicability, "message": d.fix.message,
               "edits": [[e.content, _location(e.location), _location(e.end_location)]
                         for e in d.fix.edits]}
    return {"code": d.code, "message": d.message, "hint": d.hint, "filename": d.filename,
            "location": _location(d.location), "end_location": _location(d.end_location),
            "fix": fix, "cell": d.cell, "noqa_row": d.noqa_row, "source_line": d.source_line}


def _point(value: Optional[list[int]]) -> Optional[Location]:
    return None if value is None else Location(*value)


def _load(item: dict) -> Diagnostic:
    fix = None
    if item["fix"] is not None:
        fix = Fix(item["fix"]["applicability"], item["fix"]["message"],
                  tuple(Edit(content, Location(*start), Location(*end))
                        for content, start, end in item["fix"]["edits"]))
    return Diagnostic(code=item["code"], message=item["message"], hint=item["hint"],
                      filename=item["filename"], location=_point(item["location"]),
                      end_location=_point(item["end_location"]), fix=fix, cell=item["cell"],
                      noqa_row=item["noqa_row"], source_line=item["source_line"])
