"""`# noqa` comments, file-level exemptions and per-file-ignores.

Directives are read from comments only (strings are skipped as the tokenizer skips
them), so that a
`"# noqa"` inside a string silences nothing. The grammar follows Ruff's noqa
lexer (crates/ruff_linter/src/noqa.rs), so that a comment means the same to both
tools:

- `# noqa` (also `# NOQA`, `#noqa`, `# noqa  some words`): every code on the line.
- `# noqa: EQX101, EQX102` (also `#noqa:EQX101`, `# noqa:  EQX101`, `# noqa : EQX101`,
  codes separated by commas and/or spaces, followed by words of a comment): those codes.
  Codes are upper-case letters followed by digits, as Ruff requires.
- Malformed directives suppress nothing and are reported as warnings:
  `# noqa-EQX101`, `# noqanothing` (no `:` after `noqa`), `# noqa : X` and `# noqa:`
  (a colon but no code), `# noqa: EQX101abc` (a code with a suffix).
- `# eqxlint: noqa` on a line of its own exempts the whole file;
  `# eqxlint: noqa: EQX502` exempts the file from those codes (Ruff's `# ruff: noqa`).

EQX000 (a file that could not be read or parsed) is never suppressed.
"""

from __future__ import annotations

import bisect
import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from eqxlint.diagnostics import Diagnostic, Edit, Fix, Location

SYNTAX_ERROR = "EQX000"
UNUSED_NOQA = "EQX001"
UNSUPPRESSIBLE = frozenset({SYNTAX_ERROR})
OWN_PREFIX = "EQX"
FILE_TOOL = "eqxlint"
_EXAMPLE = "(e.g. `# noqa: EQX101, EQX102`)"


@dataclass(frozen=True)
class Code:
    """One code in a directive, with its columns (0-based, end exclusive) on its row."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Directive:
    """One parsed `# noqa`: `codes` is None for a blanket directive.

    `start` is the column of its `#`; `end` the column after its last code (or after
    `noqa` for a blanket one), both on `row`.
    """

    row: int
    start: int
    end: int
    codes: Optional[tuple[Code, ...]]


@dataclass
class Noqa:
    """Every directive of one file, and what was wrong with the malformed ones."""

    lines: dict[int, Directive] = field(default_factory=dict)
    file_all: bool = False
    file_codes: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def exempts_file(self, code: str) -> bool:
        return self.file_all or code in self.file_codes


class _Malformed(ValueError):
    """A directive that is not one; the message says what was expected."""


# Strings and comments, in the order Python's tokenizer meets them: a string swallows
# any `#` inside it, so only real comments come out as `comment`. One C-speed regex
# scan; Python's own `tokenize` costs as much as parsing the file (6 s on the corpus's
# 126 files that mention noqa, against 19 s for the whole cold run).
_LEXEME = re.compile(
    r'"""[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*"""'
    r"|'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'''"
    r'|"[^"\\\r\n]*(?:\\.[^"\\\r\n]*)*"'
    r"|'[^'\\\r\n]*(?:\\.[^'\\\r\n]*)*'"
    r"|(?P<comment>#[^\r\n]*)",
    re.DOTALL)
_NEWLINE = re.compile(r"\r\n|\r|\n")


def comments(text: str) -> Iterator[tuple[int, int, str]]:
    """(row, column, text) of every comment, never a `#` inside a string.

    Strings are recognised as the tokenizer does (prefixes do not matter, triple quotes
    span lines, backslashes escape). A file so broken that a string never closes is
    EQX000, which nothing suppresses.
    """
    starts: Optional[list[int]] = None
    for match in _LEXEME.finditer(text):
        if match.lastgroup != "comment":
            continue
        if starts is None:
            starts = [0] + [m.end() for m in _NEWLINE.finditer(text)]
        offset = match.start()
        row = bisect.bisect_right(starts, offset)
        yield row, offset - starts[row - 1], match.group("comment")


def _lex_codes(comment: str, index: int) -> tuple[list[Code], list[str]]:
    """Codes from `index` on: letters then digits, split by commas or spaces.

    The first word that is not a code ends the list (the rest is a comment), as in Ruff.
    """
    codes: list[Code] = []
    notes: list[str] = []
    joined = False
    length = len(comment)
    while index < length:
        while index < length and comment[index].isspace():
            index += 1
        if index >= length:
            break
        char = comment[index]
        if char == ",":
            notes.append("expected a rule code between commas")
            index += 1
            continue
        if not ("A" <= char <= "Z"):
            break  # a comment after the codes
        start = index
        while index < length and "A" <= comment[index] <= "Z":
            index += 1
        if index >= length or not comment[index].isdigit():
            if joined:
                raise _Malformed("expected a code of upper-case letters followed by digits only "
                                 "(e.g. `EQX101`)")
            break  # a word, not a code: the comment goes on
        while index < length and comment[index].isdigit():
            index += 1
        codes.append(Code(comment[start:index], start, index))
        if index >= length:
            break
        following = comment[index]
        if following == ",":
            index += 1
            joined = False
        elif following.isspace() or following == "#":
            joined = False
        elif "A" <= following <= "Z":
            notes.append("expected a comma or a space between codes")
            joined = True
        else:
            raise _Malformed("expected a code of upper-case letters followed by digits only "
                             "(e.g. `EQX101`)")
    return codes, notes


def _directive_after(comment: str, index: int, row: int, column: int, hash_column: int
                     ) -> tuple[Directive, list[str]]:
    """The directive whose `noqa` ends at `index` in `comment` (which starts at `column`)."""
    length = len(comment)
    if index >= length or comment[index] == "#":
        return Directive(row, hash_column, column + index, None), []
    char = comment[index]
    if char != ":":
        if not char.isspace():
            raise _Malformed(f"expected `:` followed by a list of codes {_EXAMPLE}, "
                             "or nothing after `noqa`")
        blanket_end = index
        while index < length and comment[index].isspace():
            index += 1
        if index >= length or comment[index] != ":":
            return Directive(row, hash_column, column + blanket_end, None), []
    codes, notes = _lex_codes(comment, index + 1)
    if not codes:
        raise _Malformed(f"expected a comma-separated list of codes after `:` {_EXAMPLE}")
    shifted = tuple(Code(c.text, column + c.start, column + c.end) for c in codes)
    return Directive(row, hash_column, shifted[-1].end, shifted), notes


_INLINE = re.compile(r"#\s*(?=[nN][oO][qQ][aA])")
_FILE = re.compile(rf"#\s*{FILE_TOOL}\s*:\s*(?=[nN][oO][qQ][aA])")


def _find(pattern: re.Pattern[str], comment: str) -> Iterator[int]:
    """Offsets of each `#` in the comment that starts a match (a comment may hold several)."""
    for position, char in enumerate(comment):
        if char == "#" and pattern.match(comment, position):
            yield position


def parse(text: str, display: str, known_codes: Iterable[str] = ()) -> Noqa:
    """Every directive in `text`; malformed ones become warnings naming file and line."""
    found = Noqa()
    if "noqa" not in text.lower():
        return found
    known = set(known_codes)
    lines = text.splitlines()
    for row, column, comment in comments(text):
        if "noqa" not in comment.lower():
            continue
        where = f"{display}:{row}"
        file_level = False
        for position in _find(_FILE, comment):
            file_level = True
            match = _FILE.match(comment, position)
            assert match is not None
            before = lines[row - 1][:column] if row - 1 < len(lines) else ""
            if before.strip():
                found.warnings.append(
                    f"{where}: `# {FILE_TOOL}: noqa` must be on a line of its own to exempt the "
                    "file; for this line alone, write `# noqa: CODE` (ignored)")
                break
            try:
                directive, notes = _directive_after(comment, match.end() + 4, row, column,
                                                    column + position)
            except _Malformed as error:
                found.warnings.append(f"{where}: invalid `# {FILE_TOOL}: noqa` directive: "
                                      f"{error} (ignored)")
                break
            found.warnings.extend(f"{where}: {note}" for note in notes)
            if directive.codes is None:
                found.file_all = True
            else:
                for code in directive.codes:
                    if code.text.startswith(OWN_PREFIX) and known and code.text not in known:
                        found.warnings.append(f"{where}: unknown rule code `{code.text}` in "
                                              f"`# {FILE_TOOL}: noqa` (see `eqxlint --list-rules`)")
                    found.file_codes.add(code.text)
            break
        if file_level:
            continue
        for position in _find(_INLINE, comment):
            match = _INLINE.match(comment, position)
            assert match is not None
            try:
                directive, notes = _directive_after(comment, match.end() + 4, row,
                                                    column, column + position)
            except _Malformed as error:
                found.warnings.append(f"{where}: invalid `# noqa` directive: {error} "
                                      "(it suppresses nothing)")
                break
            found.warnings.extend(f"{where}: {note} in `# noqa`" for note in notes)
            for code in directive.codes or ():
                if code.text.startswith(OWN_PREFIX) and known and code.text not in known:
                    found.warnings.append(f"{where}: unknown rule code `{code.text}` in "
                                          "`# noqa` (see `eqxlint --list-rules`)")
            found.lines[row] = directive
            break
    return found


def ignored_by_pattern(display: str, per_file_ignores: dict[str, list[str]]) -> set[str]:
    """Codes (or prefixes) that per-file-ignores turn off for this file."""
    ignored: set[str] = set()
    name = Path(display).name
    absolute = os.path.abspath(display)
    for pattern, codes in per_file_ignores.items():
        negated = pattern.startswith("!")
        glob = pattern[1:] if negated else pattern
        hit = fnmatch.fnmatch(display, glob) or fnmatch.fnmatch(name, glob) \
            or fnmatch.fnmatch(absolute, glob)
        if hit != negated:  # `!pattern` applies to every file it does not match, as in Ruff
            ignored.update(code.upper() for code in codes)
    return ignored


@dataclass
class Outcome:
    kept: list[Diagnostic]
    warnings: list[str]


def apply(diagnostics: Sequence[Diagnostic], text: str, display: str,
          per_file_ignores: dict[str, list[str]], enabled: Sequence[str] = (),
          known_codes: Sequence[str] = ()) -> Outcome:
    """Drop the findings that noqa, file exemptions and per-file-ignores silence.

    With EQX001 in `enabled`, report every `# noqa` code of eqxlint's own that
    silenced nothing (unused, not enabled, or unknown), with a fix removing it.
    """
    reporting_unused = UNUSED_NOQA in enabled
    if not diagnostics and not reporting_unused:
        # Nothing to silence: a malformed directive is reported when it matters (on a
        # file with findings), which spares reading the comments of most files.
        return Outcome([], [])
    ignored = ignored_by_pattern(display, per_file_ignores)
    noqa = parse(text, display, known_codes)
    kept: list[Diagnostic] = []
    used: dict[int, set[str]] = {}
    for diagnostic in diagnostics:
        code = diagnostic.code
        if code not in UNSUPPRESSIBLE:
            if any(code.startswith(prefix) for prefix in ignored) or noqa.exempts_file(code):
                continue
            directive = noqa.lines.get(diagnostic.noqa_row) \
                if diagnostic.noqa_row is not None else None
            if directive is not None:
                if directive.codes is None:
                    continue
                if code in {c.text for c in directive.codes}:
                    used.setdefault(directive.row, set()).add(code)
                    continue
        kept.append(diagnostic)
    if reporting_unused and noqa.lines and not noqa.exempts_file(UNUSED_NOQA) \
            and not any(UNUSED_NOQA.startswith(prefix) for prefix in ignored):
        kept.extend(_unused(noqa, used, text, display, set(enabled), set(known_codes)))
        kept.sort(key=Diagnostic.sort_key)
    return Outcome(kept, noqa.warnings)


def _unused(noqa: Noqa, used: dict[int, set[str]], text: str, display: str,
            enabled: set[str], known: set[str]) -> Iterator[Diagnostic]:
    """EQX001 for each directive holding eqxlint codes that silenced nothing."""
    lines = text.splitlines()
    for row, directive in sorted(noqa.lines.items()):
        if directive.codes is None:
            continue  # a blanket noqa may be there for another tool
        unused, disabled, unknown = [], [], []
        for code in directive.codes:
            if not code.text.startswith(OWN_PREFIX) or code.text in used.get(row, set()):
                continue
            if code.text in UNSUPPRESSIBLE or code.text == UNUSED_NOQA:
                unused.append(code.text)
            elif known and code.text not in known:
                unknown.append(code.text)
            elif code.text not in enabled:
                disabled.append(code.text)
            else:
                unused.append(code.text)
        if not (unused or disabled or unknown):
            continue
        parts = [f"{label}: {', '.join(f'`{c}`' for c in codes)}"
                 for label, codes in (("unused", unused), ("non-enabled", disabled),
                                      ("unknown", unknown)) if codes]
        stale = set(unused + disabled + unknown)
        line = lines[row - 1] if row - 1 < len(lines) else ""
        edit = _removal(directive, stale, line)
        yield Diagnostic(
            code=UNUSED_NOQA, message=f"Unused `noqa` directive ({'; '.join(parts)})",
            hint="Remove the unused code from the `noqa` comment",
            filename=display, location=Location(row, directive.start + 1),
            end_location=Location(row, directive.end + 1),
            fix=Fix("safe", "Remove unused `noqa` code" if len(stale) < len(directive.codes)
                    else "Remove the `noqa` directive", (edit,)),
            noqa_row=row, source_line=line)


def _removal(directive: Directive, stale: set[str], line: str) -> Edit:
    """The edit that drops `stale` codes, or the whole directive when none is left."""
    assert directive.codes is not None
    keep = [c.text for c in directive.codes if c.text not in stale]
    row = directive.row
    if keep:
        first, last = directive.codes[0], directive.codes[-1]
        return Edit(", ".join(keep), Location(row, first.start + 1), Location(row, last.end + 1))
    start, end = directive.start, directive.end
    rest = line[end:]
    if rest.strip():  # another comment follows: drop the directive and the space after it
        end += len(rest) - len(rest.lstrip())
    else:  # the directive ends the line: drop it and the space before it
        end = len(line.rstrip()) if len(line.rstrip()) > end else end
        while start > 0 and line[start - 1] in " \t":
            start -= 1
    return Edit("", Location(row, start + 1), Location(row, end + 1))


def add_noqa(text: str, diagnostics: Sequence[Diagnostic], display: str
             ) -> tuple[str, int]:
    """`text` with `# noqa: CODE` on every line that has a finding; (text, lines changed).

    As Ruff's `--add-noqa`: codes join an existing `# noqa: ...` on the line; a blanket
    `# noqa` is left alone; other comments on the line are kept.
    """
    wanted: dict[int, set[str]] = {}
    for diagnostic in diagnostics:
        if diagnostic.code in UNSUPPRESSIBLE or diagnostic.noqa_row is None:
            continue
        wanted.setdefault(diagnostic.noqa_row, set()).add(diagnostic.code)
    if not wanted:
        return text, 0
    noqa = parse(text, display)
    lines = text.splitlines(keepends=True)
    changed = 0
    for row, codes in sorted(wanted.items()):
        if row - 1 >= len(lines):
            continue
        raw = lines[row - 1]
        body = raw.rstrip("\r\n")
        ending = raw[len(body):]
        directive = noqa.lines.get(row)
        if directive is not None:
            if directive.codes is None:
                continue
            present = [c.text for c in directive.codes]
            merged = sorted(set(present) | codes)
            if merged == sorted(present):
                continue
            first, last = directive.codes[0], directive.codes[-1]
            body = body[:first.start] + ", ".join(merged) + body[last.end:]
        else:
            body = body.rstrip() + "  # noqa: " + ", ".join(sorted(codes))
        lines[row - 1] = body + ending
        changed += 1
    new_text = "".join(lines)
    # A line whose end lies inside a string cannot take a comment: keep those as they were.
    after = parse(new_text, display)
    original = text.splitlines(keepends=True)
    for row, codes in wanted.items():
        directive = after.lines.get(row)
        if row - 1 < len(lines) and lines[row - 1] != original[row - 1] and (
                directive is None or directive.codes is None
                or not codes <= {c.text for c in directive.codes}):
            lines[row - 1] = original[row - 1]
            changed -= 1
    return "".join(lines), changed
