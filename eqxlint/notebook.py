"""Jupyter notebooks: code cells linted as one module, findings reported per cell.

The code cells are joined into one Python text, each after a boundary comment, so
that names defined in one cell are known in the next. IPython syntax (`%magic`,
`!shell`, `x = !cmd`, `obj?`, `%%cell magics`) is replaced line for line by
placeholders that keep every other line and column where it was, and restored
when fixed cells are written back. Cells are numbered from 1, counting markdown
cells too, as Ruff does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from eqxlint.diagnostics import Diagnostic, Edit, Fix, Location

BOUNDARY = "# eqxlint-cell-boundary {number}"
_BOUNDARY = re.compile(r"^# eqxlint-cell-boundary (\d+)$")
_MAGIC_LINE = re.compile(r"^(\s*)(?:[%!]|[\w.,\s\[\]]+=\s*[%!])")
_HELP_LINE = re.compile(r"^\s*[\w.]+\?{1,2}\s*$")
_PLACEHOLDER = re.compile(r"^(\s*)(?:pass  )?# eqxlint-magic-(\d+)$")


class NotebookError(ValueError):
    """A notebook that cannot be read as one."""


@dataclass
class Notebook:
    """A notebook's JSON and its code cells as one Python text."""

    data: dict[str, Any]
    raw: str
    text: str = ""
    # For each row of `text` (0-based): (cell number, row in the cell), or None on a boundary.
    rows: list[Optional[tuple[int, int]]] = field(default_factory=list)
    cell_lines: dict[int, list[str]] = field(default_factory=dict)  # as written, per cell
    magics: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, source: str) -> "Notebook":
        try:
            data = json.loads(source)
        except json.JSONDecodeError as error:
            raise NotebookError(f"not valid JSON (line {error.lineno}): {error.msg}") from None
        cells = data.get("cells") if isinstance(data, dict) else None
        if not isinstance(cells, list):
            raise NotebookError("not a notebook: no list of cells (nbformat 4 is supported)")
        notebook = cls(data, source)
        parts: list[str] = []
        for number, cell in enumerate(cells, start=1):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            lines = _source_text(cell.get("source", "")).splitlines()
            notebook.cell_lines[number] = lines
            parts.append(BOUNDARY.format(number=number))
            notebook.rows.append(None)
            cell_magic = bool(lines) and lines[0].lstrip().startswith("%%")
            for row, line in enumerate(lines, start=1):
                parts.append(notebook._neutral(line, whole_cell=cell_magic))
                notebook.rows.append((number, row))
        notebook.text = "\n".join(parts) + ("\n" if parts else "")
        return notebook

    def _neutral(self, line: str, whole_cell: bool) -> str:
        """The line itself, or a placeholder of the same indentation for IPython syntax."""
        if whole_cell:
            self.magics.append(line)
            return f"# eqxlint-magic-{len(self.magics) - 1}"
        match = _MAGIC_LINE.match(line)
        if match or _HELP_LINE.match(line):
            indent = re.match(r"\s*", line).group(0)  # type: ignore[union-attr]
            self.magics.append(line)
            return f"{indent}pass  # eqxlint-magic-{len(self.magics) - 1}"
        return line

    def cell_starts(self) -> tuple[tuple[int, int], ...]:
        """(row of `text` where each code cell begins, its cell number), for the rules
        that treat a cell as its own block (EQX502)."""
        return tuple((row, int(match.group(1)))
                     for row, line in enumerate(self.text.splitlines(), start=1)
                     if (match := _BOUNDARY.match(line)))

    # -- findings ------------------------------------------------------------

    def place(self, diagnostic: Diagnostic) -> Diagnostic:
        """Rows and columns within the cell, and the cell's number."""
        if diagnostic.location is None:
            return diagnostic
        start = self._where(diagnostic.location)
        if start is None:
            return diagnostic
        cell, row = start
        end = self._where(diagnostic.end_location) if diagnostic.end_location else None
        end_location = Location(end[1], diagnostic.end_location.column) \
            if end is not None and end[0] == cell and diagnostic.end_location else None
        fix = diagnostic.fix
        if fix is not None:
            edits = []
            for edit in fix.edits:
                begin, finish = self._where(edit.location), self._where(edit.end_location)
                if begin is None or finish is None or begin[0] != cell or finish[0] != cell:
                    edits = []
                    break
                edits.append(Edit(edit.content, Location(begin[1], edit.location.column),
                                  Location(finish[1], edit.end_location.column)))
            fix = Fix(fix.applicability, fix.message, tuple(edits))
        diagnostic.cell = cell
        diagnostic.location = Location(row, diagnostic.location.column)
        diagnostic.end_location = end_location or diagnostic.location
        diagnostic.noqa_row = row
        diagnostic.fix = fix
        lines = self.cell_lines.get(cell, [])
        if 0 < row <= len(lines):
            diagnostic.source_line = lines[row - 1]
        return diagnostic

    def _where(self, location: Location) -> Optional[tuple[int, int]]:
        index = location.row - 1
        if 0 <= index < len(self.rows):
            return self.rows[index]
        return None

    # -- writing back --------------------------------------------------------

    def with_text(self, fixed: str) -> str:
        """The notebook's JSON with the code cells taken from a (fixed) joined text.

        Only cells whose code changed are touched; everything else (outputs,
        metadata, key order, indentation) is written as it was read.
        Raises NotebookError when the layout of the JSON cannot be reproduced.
        """
        indent = _indent_of(self.raw)
        ensure_ascii = not any(ord(ch) > 127 for ch in self.raw)
        trailing = self.raw[len(self.raw.rstrip("\n")):]

        def dump(data: Any) -> str:
            return json.dumps(data, indent=indent, ensure_ascii=ensure_ascii) + trailing

        if dump(self.data) != self.raw:
            raise NotebookError("its JSON layout cannot be reproduced exactly, so fixes are "
                                "not written (nothing else would change)")
        new_cells = self._split(fixed)
        cells = self.data["cells"]
        for number, lines in new_cells.items():
            if lines == self.cell_lines.get(number):
                continue
            cell = cells[number - 1]
            cell["source"] = _like_source(cell.get("source", ""), lines)
        return dump(self.data)

    def _split(self, fixed: str) -> dict[int, list[str]]:
        cells: dict[int, list[str]] = {}
        current: Optional[int] = None
        for line in fixed.splitlines():
            boundary = _BOUNDARY.match(line)
            if boundary:
                current = int(boundary.group(1))
                cells[current] = []
                continue
            if current is None:
                continue
            placeholder = _PLACEHOLDER.match(line)
            if placeholder:
                line = self.magics[int(placeholder.group(2))]
            cells[current].append(line)
        return cells


def _source_text(source: Any) -> str:
    if isinstance(source, list):
        return "".join(str(part) for part in source)
    return str(source)


def _like_source(original: Any, lines: list[str]) -> Any:
    """New cell source in the original's form: a list of lines or one string."""
    text = "\n".join(lines)
    if _source_text(original).endswith("\n"):
        text += "\n"
    if isinstance(original, list):
        return text.splitlines(keepends=True)
    return text


def _indent_of(raw: str) -> Optional[int]:
    match = re.search(r"\n( +)\S", raw)
    return len(match.group(1)) if match else None
