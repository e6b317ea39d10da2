"""A cache of findings, keyed by file content, eqxlint version and effective settings.

Like Ruff's: an unchanged re-run reads one small file per source file instead of
parsing it. Each entry is written to a temporary file and renamed into place, so
concurrent runs never see half an entry. A damaged entry is a miss, always: each
entry starts with the SHA-256 of the rest, every field is checked for its type
before a Diagnostic is built, and only a regular file is opened (never blocking).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

from eqxlint import __version__
from eqxlint.diagnostics import Diagnostic, Edit, Fix, Location
from eqxlint.files import read_source, replace_through_temporary

CACHE_DIR_NAME = ".eqxlint_cache"
LAYOUT_NAME = "project-layout"  # not *.json: no findings entry


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
        """The findings stored for this file's bytes, or None (a miss)."""
        body = _read_checked(self._entry_name(display, data))
        if body is None:
            return None
        if body == b"[]":
            return []  # most files: no findings, nothing to decode
        try:
            items = json.loads(body)
            if not isinstance(items, list):
                return None
            return [_load(item) for item in items]
        except (ValueError, KeyError, TypeError, IndexError, RecursionError, _Damaged):
            return None

    def put(self, display: str, data: bytes, diagnostics: list[Diagnostic]) -> None:
        self._write_checked(self._entry_name(display, data),
                            json.dumps([_dump(d) for d in diagnostics]).encode())

    def _write_checked(self, name: str, body: bytes) -> None:
        """Write `body` under its SHA-256 (what _read_checked verifies), atomically."""
        try:
            os.makedirs(os.path.dirname(name), exist_ok=True)
            _ignore_in_git(self.folder.parent)
            replace_through_temporary(name, hashlib.sha256(body).hexdigest().encode()
                                      + b"\n" + body, "tmp", ".tmp")
        except OSError:
            pass  # a cache that cannot be written is only slower

    # What the project index saw of the file system in the last run: its dependency
    # digests serve the next run's lookups when nothing it saw has changed.
    def read_layout(self) -> Optional[object]:
        body = _read_checked(os.path.join(self._folder, LAYOUT_NAME))
        if body is None:
            return None
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            return None

    def write_layout(self, record: dict) -> None:
        try:
            body = json.dumps(record, separators=(",", ":")).encode("utf-8", "surrogatepass")
        except ValueError:
            return  # only slower next time
        self._write_checked(os.path.join(self._folder, LAYOUT_NAME), body)


def _read_checked(name: str) -> Optional[bytes]:
    """The body of a file written by _write_checked, or None (missing, unreadable, not a
    regular file, or not the body its checksum line names)."""
    try:
        raw = read_source(name)
    except OSError:
        return None
    checksum, _, body = raw.partition(b"\n")
    if checksum != hashlib.sha256(body).hexdigest().encode():
        return None
    return body


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


class _Damaged(Exception):
    """An entry whose fields do not have the types eqxlint wrote."""


def _text(value: object, optional: bool = False) -> Optional[str]:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Damaged()
    return value


def _number(value: object) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Damaged()
    return value


def _point(value: object, optional: bool = True) -> Optional[Location]:
    if value is None and optional:
        return None
    if not isinstance(value, list) or len(value) != 2 or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
        raise _Damaged()
    return Location(value[0], value[1])


def _load(item: object) -> Diagnostic:
    if not isinstance(item, dict):
        raise _Damaged()
    fix = None
    if item["fix"] is not None:
        raw_fix = item["fix"]
        if not isinstance(raw_fix, dict) or raw_fix["applicability"] not in ("safe", "unsafe") \
                or not isinstance(raw_fix["edits"], list):
            raise _Damaged()
        edits = []
        for edit in raw_fix["edits"]:
            if not isinstance(edit, list) or len(edit) != 3:
                raise _Damaged()
            edits.append(Edit(_text(edit[0]), _point(edit[1], False),  # type: ignore[arg-type]
                              _point(edit[2], False)))  # type: ignore[arg-type]
        fix = Fix(raw_fix["applicability"], _text(raw_fix["message"]), tuple(edits))  # type: ignore[arg-type]
    return Diagnostic(code=_text(item["code"]), message=_text(item["message"]),  # type: ignore[arg-type]
                      hint=_text(item["hint"]), filename=_text(item["filename"], True),  # type: ignore[arg-type]
                      location=_point(item["location"]),
                      end_location=_point(item["end_location"]), fix=fix,
                      cell=_number(item["cell"]), noqa_row=_number(item["noqa_row"]),
                      source_line=_text(item["source_line"], True))
