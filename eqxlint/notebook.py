"""Jupyter notebooks and `# %%` cell scripts: cells linted as one module, findings per cell.

The code cells are joined into one Python text so that names defined in one cell
are known in the next. Where each cell starts in that text is kept beside it, as
a table of cells and lines (`Layout`), never as text inside it: a comment in a
cell can look like anything. Fixes are applied to those lines, cell by cell, and
a new table is kept for each text the fixes produce.

IPython syntax (`%magic`, `!shell`, `x = !cmd`, `obj?`, `%%cell magics`) is
replaced, line for line, by `pass` (or a blank line) in the text the linter
sees; the line as written is kept in the table and is what gets written back.
A line is IPython syntax only where a statement starts: not inside brackets,
not after a backslash, not inside a string (the tokenizer's view of the cell).

Lines end only at `\\n`, `\\r\\n` and `\\r`, as Python's tokenizer says (not at
U+2028, form feeds and the other breaks of `str.splitlines`), and each line
keeps its own ending. Cells are numbered from 1, counting markdown cells too,
as Ruff does.
"""

from __future__ import annotations

import ast
import bisect
import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from eqxlint.diagnostics import Diagnostic, Edit, Fix, Location

SYNTAX_ERROR = "EQX000"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A `# %%` line at column 0 makes a .py file a cell script (VS Code, Jupytext percent).
_PERCENT_MARKER = re.compile(r"^#\s*%%")
_HELP_LINE = re.compile(r"^(?:\?{1,2}\s*[\w.*\[\]()%]+|[\w.*\[\]()%]+\s*\?{1,2})\s*$")
_MAGIC_ASSIGNMENT = re.compile(r"^[\w.,\s\[\]()*]+?\s*=\s*[%!]")
# Cell magics whose body is Python (Ruff's list): the cell is linted without the first line.
PYTHON_CELL_MAGICS = frozenset({"capture", "debug", "ipytest", "prun", "pypy", "python",
                                "python3", "time", "timeit"})
# Automagics (line magics written without `%`): a cell starting with one is not Python
# (Ruff skips such cells too; Jupyter allows only magics after one).
AUTOMAGICS = frozenset(
    "alias alias_magic autoawait autocall automagic bookmark cd code_wrap colors conda "
    "config debug dhist dirs doctest_mode edit env gui history killbgscripts load load_ext "
    "loadpy logoff logon logstart logstate logstop lsmagic macro magic mamba matplotlib "
    "micromamba notebook page pastebin pdb pdef pdoc pfile pinfo pinfo2 pip popd pprint "
    "precision prun psearch psource pushd pwd pycat pylab quickref recall rehashx reload_ext "
    "rerun reset reset_selective run save sc set_env sx system tb time timeit unalias "
    "unload_ext who who_ls whos xdel xmode".split())
_ASSIGNMENT_OPERATORS = frozenset("= += -= *= /= //= %= **= &= |= ^= @= >>= <<= :=".split())
_COMPILE_FLAGS = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT  # IPython allows `await`


class NotebookError(ValueError):
    """A notebook that cannot be read as one, or whose fixes cannot be written."""


@dataclass(frozen=True)
class Line:
    """One line of a cell: as written, its own ending, and what the linter sees."""

    text: str
    ending: str  # "\n", "\r\n", "\r", or "" for a last line without one
    code: str
    python: bool = True  # False: IPython syntax (or a skipped cell); fixes never touch it


@dataclass(frozen=True)
class Cell:
    number: int  # 1-based, counting every cell of the notebook (a script: its section)
    lines: tuple[Line, ...]

    def source(self) -> str:
        return "".join(line.text + line.ending for line in self.lines)

    def code(self) -> str:
        return "".join(line.code + "\n" for line in self.lines)


Layout = tuple[Cell, ...]


def split_lines(text: str) -> list[tuple[str, str]]:
    """(line, ending) pairs, breaking only where Python's tokenizer does."""
    lines: list[tuple[str, str]] = []
    start = 0
    for match in _LINE_BREAK.finditer(text):
        lines.append((text[start:match.start()], match.group()))
        start = match.end()
    if start < len(text):
        lines.append((text[start:], ""))
    return lines


def joined(layout: Layout) -> str:
    return "".join(cell.code() for cell in layout)


@dataclass
class Notebook:
    """A notebook's JSON (or a cell script's text) and its code cells as one Python text."""

    data: Optional[dict[str, Any]]  # None for a `# %%` script
    raw: str
    text: str = ""
    _layouts: dict[str, Layout] = field(default_factory=dict, repr=False)
    _starts: dict[int, tuple[Layout, list[int]]] = field(default_factory=dict, repr=False)
    _layout_kept: Optional[bool] = field(default=None, repr=False)  # dumps(loads(raw)) == raw

    @property
    def is_script(self) -> bool:
        return self.data is None

    # -- reading -------------------------------------------------------------

    @classmethod
    def parse(cls, source: str) -> "Notebook":
        try:
            data = json.loads(source)
        except json.JSONDecodeError as error:
            raise NotebookError(f"not valid JSON (line {error.lineno}): {error.msg}") from None
        except RecursionError:
            raise NotebookError("nested too deeply (JSON nested beyond Python's recursion "
                                "limit)") from None
        cells = data.get("cells") if isinstance(data, dict) else None
        if not isinstance(cells, list):
            raise NotebookError("not a notebook: no list of cells (nbformat 4 is supported)")
        layout: list[Cell] = []
        for number, cell in enumerate(cells if _is_python_notebook(data) else [], start=1):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code" \
                    or not _is_python(cell):
                continue
            lines = split_lines(_source_text(cell.get("source", "")))
            neutral = _neutralise(lines)
            if neutral is not None:
                layout.append(Cell(number, tuple(neutral)))
        return cls._with_layout(data, source, tuple(layout))

    @classmethod
    def script(cls, source: str) -> Optional["Notebook"]:
        """A `# %%` cell script with IPython syntax in its cells, or None (plain Python).

        A file is a cell script when a line starts with `# %%` at column 0. Its rows
        stay the file's rows: skipped lines become blank lines, not nothing.
        """
        lines = split_lines(source)
        if not any(_PERCENT_MARKER.match(text) for text, _ in lines):
            return None
        sections: list[list[tuple[str, str]]] = [[]]
        for line in lines:
            if _PERCENT_MARKER.match(line[0]) and sections[-1]:
                sections.append([])
            sections[-1].append(line)
        layout: list[Cell] = []
        for number, section in enumerate(sections, start=1):
            head, body = (section[:1], section[1:]) if _PERCENT_MARKER.match(section[0][0]) \
                else ([], section)
            neutral = _neutralise(body)
            if neutral is None:  # a cell magic that is not Python: keep the rows, blank
                neutral = [Line(text, ending, "", python=False) for text, ending in body]
            cell_lines = [Line(text, ending, text) for text, ending in head] + neutral
            layout.append(Cell(number, tuple(cell_lines)))
        if all(line.python for cell in layout for line in cell.lines):
            return None
        return cls._with_layout(None, source, tuple(layout))

    @classmethod
    def _with_layout(cls, data: Optional[dict[str, Any]], raw: str, layout: Layout
                     ) -> "Notebook":
        notebook = cls(data, raw)
        notebook.text = joined(layout)
        notebook._layouts[notebook.text] = layout
        return notebook

    # -- positions -------------------------------------------------------------

    def cell_starts(self) -> tuple[tuple[int, int], ...]:
        """(row of `text` where each code cell begins, its cell number), for the rules
        that treat a notebook cell as its own block (EQX502). Empty for a cell script,
        which runs top to bottom as one file."""
        if self.is_script:
            return ()
        starts, row = [], 1
        for cell in self._layout(self.text):
            starts.append((row, cell.number))
            row += len(cell.lines)
        return tuple(starts)

    def _layout(self, text: str) -> Layout:
        layout = self._layouts.get(text)
        if layout is None:
            raise NotebookError("internal: a text these cells did not produce")
        return layout

    def _locate(self, layout: Layout, row: int) -> Optional[tuple[int, int]]:
        """(index of the cell in the layout, row within it) for a row of the joined text."""
        cached = self._starts.get(id(layout))
        if cached is not None and cached[0] is layout:
            starts = cached[1]
        else:
            starts, total = [], 1
            for cell in layout:
                starts.append(total)
                total += len(cell.lines)
            starts.append(total)
            self._starts[id(layout)] = (layout, starts)
        if row < 1 or row >= starts[-1]:
            return None
        index = bisect.bisect_right(starts, row) - 1  # the last of equal starts: not empty
        return index, row - starts[index] + 1

    # -- syntax ----------------------------------------------------------------

    def syntax_errors(self, display: str) -> list[Diagnostic]:
        """CPython's verdict on each cell on its own, as Jupyter runs it."""
        if self.is_script:
            return []
        found = []
        for cell in self._layout(self.text):
            code = cell.code()
            try:
                compile(code, display, "exec", _COMPILE_FLAGS, dont_inherit=True)
                continue
            except SyntaxError as error:
                message = f"SyntaxError: {error.msg}"
                row, column = error.lineno or 1, error.offset or 1
            except (RecursionError, MemoryError):
                message, row, column = "too deeply nested to parse", 1, 1
            except ValueError as error:
                message, row, column = f"could not parse: {error}", 1, 1
            row = max(1, min(row, len(cell.lines)))
            line = cell.lines[row - 1].text if cell.lines else ""
            column = max(1, min(column, len(line) + 1))
            found.append(Diagnostic(
                code=SYNTAX_ERROR, message=message,
                hint="Fix the syntax; this notebook was not checked", filename=display,
                location=Location(row, column), end_location=Location(row, column),
                cell=cell.number, noqa_row=row, source_line=line))
        return found

    # -- fixes -------------------------------------------------------------------

    def apply(self, text: str, edits: Sequence[Edit]) -> Optional[str]:
        """The joined text with `edits` made in their cells; None if they cannot be.

        Edits that cross a cell boundary or touch IPython syntax are refused.
        """
        layout = self._layouts.get(text)
        if layout is None:
            return None
        by_cell: dict[int, list[tuple[int, int, int, int, str]]] = {}
        for edit in edits:
            start = self._locate(layout, edit.location.row)
            end = self._locate(layout, edit.end_location.row)
            if start is None or end is None or start[0] != end[0]:
                return None
            lines = layout[start[0]].lines
            first, last = lines[start[1] - 1], lines[end[1] - 1]
            if not all(line.python for line in lines[start[1] - 1:end[1]]) \
                    or edit.location.column - 1 > len(first.code) \
                    or edit.end_location.column - 1 > len(last.code):
                return None
            by_cell.setdefault(start[0], []).append(
                (start[1], edit.location.column, end[1], edit.end_location.column, edit.content))
        new_layout = list(layout)
        for index, cell_edits in by_cell.items():
            lines = list(layout[index].lines)
            usual = next((line.ending for line in lines if line.ending), "\n")
            for first_row, first_col, last_row, last_col, content in sorted(cell_edits,
                                                                            reverse=True):
                first, last = lines[first_row - 1], lines[last_row - 1]
                parts = _LINE_BREAK.split(first.code[:first_col - 1] + content
                                          + last.code[last_col - 1:])
                inner = first.ending or usual
                lines[first_row - 1:last_row] = \
                    [Line(part, inner, part) for part in parts[:-1]] \
                    + [Line(parts[-1], last.ending, parts[-1])]
            new_layout[index] = Cell(layout[index].number, tuple(lines))
        new_text = joined(tuple(new_layout))
        self._layouts.setdefault(new_text, tuple(new_layout))
        return new_text

    def where(self, text: str, display: str, diagnostic: Diagnostic) -> str:
        """`path:cell N:row:col` of a finding in a joined text (for warnings)."""
        from dataclasses import replace

        from eqxlint.report.concise import where

        placed = self.place(replace(diagnostic, filename=display), text)
        return where(placed)

    def why_not_writable(self) -> Optional[str]:
        """Why fixed cells could not be written without changing anything else (or None)."""
        if self.data is None:
            return None
        if self._layout_kept is None:
            try:
                self._layout_kept = self._dump(self.data) == self.raw
            except (RecursionError, ValueError):
                self._layout_kept = False
        if not self._layout_kept:
            return ("its JSON layout cannot be reproduced exactly (indentation, key order "
                    "or escaping), so writing it would change more than the fixed cells")
        return None

    def with_text(self, fixed: str) -> str:
        """The file with the code cells taken from a fixed joined text.

        Only cells whose code changed are touched; everything else (outputs,
        metadata, key order, indentation, magics, line endings) is written as read.
        """
        layout = self._layout(fixed)
        if self.data is None:
            return "".join(cell.source() for cell in layout)
        problem = self.why_not_writable()
        if problem is not None:
            raise NotebookError(problem)
        original = {cell.number: cell for cell in self._layout(self.text)}
        data = dict(self.data)
        cells = list(data["cells"])
        for cell in layout:
            if cell == original.get(cell.number):
                continue
            changed = dict(cells[cell.number - 1])
            changed["source"] = _like_source(changed.get("source", ""), cell.source())
            cells[cell.number - 1] = changed
        data["cells"] = cells
        return self._dump(data)

    def _dump(self, data: Any) -> str:
        indent = _indent_of(self.raw)
        ensure_ascii = self.raw.isascii()
        trailing = self.raw[len(self.raw.rstrip("\n")):]
        return json.dumps(data, indent=indent, ensure_ascii=ensure_ascii) + trailing

    # -- findings --------------------------------------------------------------

    def place(self, diagnostic: Diagnostic, text: Optional[str] = None) -> Diagnostic:
        """Rows and columns within the cell, and the cell's number (for the text linted)."""
        if diagnostic.location is None:
            return diagnostic
        layout = self._layouts.get(text if text is not None else self.text)
        if layout is None:
            return diagnostic
        start = self._locate(layout, diagnostic.location.row)
        if start is None:
            return diagnostic
        index, row = start
        line = layout[index].lines[row - 1]
        if self.is_script:  # rows are the file's rows already
            diagnostic.source_line = line.text
            return diagnostic
        end = self._locate(layout, diagnostic.end_location.row) \
            if diagnostic.end_location is not None else None
        end_location = Location(end[1], diagnostic.end_location.column) \
            if end is not None and end[0] == index and diagnostic.end_location else None
        fix = diagnostic.fix
        if fix is not None:
            edits = []
            for edit in fix.edits:
                begin, finish = self._locate(layout, edit.location.row), \
                    self._locate(layout, edit.end_location.row)
                if begin is None or finish is None or begin[0] != index or finish[0] != index:
                    edits = []
                    break
                edits.append(Edit(edit.content, Location(begin[1], edit.location.column),
                                  Location(finish[1], edit.end_location.column)))
            fix = Fix(fix.applicability, fix.message, tuple(edits))
        diagnostic.cell = layout[index].number
        diagnostic.location = Location(row, diagnostic.location.column)
        diagnostic.end_location = end_location or diagnostic.location
        diagnostic.noqa_row = row
        diagnostic.fix = fix
        diagnostic.source_line = line.text
        return diagnostic


# ---------------------------------------------------------------------------
# IPython syntax


def _is_python_notebook(data: dict[str, Any]) -> bool:
    """As Ruff: `language_info.name`, else `kernelspec.language`, else Python."""
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        return True
    info, spec = metadata.get("language_info"), metadata.get("kernelspec")
    if isinstance(info, dict) and "name" in info:
        return info["name"] == "python"
    if isinstance(spec, dict) and "language" in spec:
        return spec["language"] == "python"
    return True


def _is_python(cell: dict[str, Any]) -> bool:
    """VS Code marks a cell's language in its metadata; anything but Python is skipped."""
    metadata = cell.get("metadata")
    vscode = metadata.get("vscode") if isinstance(metadata, dict) else None
    language = vscode.get("languageId") if isinstance(vscode, dict) else None
    return language in (None, "python")


def _neutralise(lines: Sequence[tuple[str, str]]) -> Optional[list[Line]]:
    """The cell's lines with IPython syntax replaced; None when the cell is not Python."""
    first = next((text for text, _ in lines if text.strip()), "")
    words = first.split()
    python_cell_magic = False
    if words and words[0].startswith("%%"):
        if words[0][2:] not in PYTHON_CELL_MAGICS:
            return None
        python_cell_magic = True
    elif words and words[0] in AUTOMAGICS and not (
            len(words) > 1 and words[1] in _ASSIGNMENT_OPERATORS) and not _compiles(first):
        return None
    scanner = _Scanner()
    out: list[Line] = []
    in_magic = False  # a magic line ending in a backslash goes on to the next line
    for text, ending in lines:
        if in_magic:
            out.append(Line(text, ending, "", python=False))
            in_magic = text.rstrip().endswith("\\")
            continue
        if python_cell_magic and text.strip():
            python_cell_magic = False
            out.append(Line(text, ending, "", python=False))  # the `%%time` line
            continue
        if scanner.at_statement_start() and _is_ipython(text):
            indent = text[:len(text) - len(text.lstrip())]
            out.append(Line(text, ending, indent + "pass", python=False))
            in_magic = text.rstrip().endswith("\\")
            continue
        scanner.feed(text)
        out.append(Line(text, ending, text))
    return out


def _compiles(line: str) -> bool:
    try:
        compile(line.strip(), "<line>", "exec", _COMPILE_FLAGS, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _is_ipython(line: str) -> bool:
    """Whether a line that starts a statement is IPython syntax (never valid Python there)."""
    stripped = line.strip()
    if not stripped:
        return False
    return stripped[0] in "%!" or bool(_HELP_LINE.match(stripped)) \
        or bool(_MAGIC_ASSIGNMENT.match(stripped))


class _Scanner:
    """Python's tokenizer state across lines: brackets, strings, backslash continuations."""

    def __init__(self) -> None:
        self.depth = 0
        self.quote: Optional[str] = None  # the quote of a string still open
        self.continued = False

    def at_statement_start(self) -> bool:
        return self.depth == 0 and self.quote is None and not self.continued

    def feed(self, line: str) -> None:
        self.continued = False
        index, length = 0, len(line)
        if self.quote is not None:
            index = self._close(line, 0)
            if index < 0:
                return
        while index < length:
            char = line[index]
            if char == "#":
                return
            if char in "([{":
                self.depth += 1
            elif char in ")]}":
                self.depth = max(0, self.depth - 1)
            elif char in "\"'":
                self.quote = char * 3 if line.startswith(char * 3, index) else char
                index = self._close(line, index + len(self.quote))
                if index < 0:
                    return
                continue
            elif char == "\\" and index == length - 1:
                self.continued = True
            index += 1

    def _close(self, line: str, index: int) -> int:
        """Past the open string's closing quote on this line, or -1 if it stays open."""
        assert self.quote is not None
        length = len(line)
        while index < length:
            if line[index] == "\\":
                if index == length - 1:
                    return -1  # a backslash-newline inside the string: it goes on
                index += 2
                continue
            if line.startswith(self.quote, index):
                end = index + len(self.quote)
                self.quote = None
                return end
            index += 1
        if len(self.quote) == 1:
            self.quote = None  # an unterminated one-line string: CPython will say so
        return -1


# ---------------------------------------------------------------------------
# JSON and diffs


def _source_text(source: Any) -> str:
    if isinstance(source, list):
        return "".join(str(part) for part in source)
    return str(source)


def _like_source(original: Any, text: str) -> Any:
    """New cell source in the original's form: a list of lines or one string."""
    if isinstance(original, list):
        return [line + ending for line, ending in split_lines(text)]
    return text


def _indent_of(raw: str) -> Optional[int]:
    match = re.search(r"\n( +)\S", raw)
    return len(match.group(1)) if match else None


def code_cells(raw: str) -> dict[int, str]:
    """Cell number -> source of each code cell of a notebook's JSON ({} if unreadable)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        return {}
    return {number: _source_text(cell.get("source", ""))
            for number, cell in enumerate(cells, start=1)
            if isinstance(cell, dict) and cell.get("cell_type") == "code"}


def cell_diff(before: str, after: str, display: str) -> str:
    """A unified diff of each changed code cell (as Ruff shows a notebook), not of the JSON."""
    old, new = code_cells(before), code_cells(after)
    out = []
    for number in sorted(old):
        if number not in new or old[number] == new[number]:
            continue
        header = f"{display}:cell {number}"
        out.extend(difflib.unified_diff(_diff_lines(old[number]), _diff_lines(new[number]),
                                        fromfile=f"a/{header}", tofile=f"b/{header}"))
    return "".join(out)


def _diff_lines(text: str) -> list[str]:
    # A cell's last line often has no newline; a diff shows it as a line all the same.
    return [line + (ending or "\n") for line, ending in split_lines(text)]
