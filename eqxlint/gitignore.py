"""`.gitignore` matching, as git does it (gitignore(5)), for folder walks.

Inside a git work tree (a folder with `.git` at or above it, as Ruff requires), every
`.gitignore` from the top of the tree down to a path's folder applies, and
`.git/info/exclude` below them all. Within one file the last matching pattern wins; a
deeper file wins over a shallower one. Supported: comments and blank lines, `\\#` and
`\\!` escapes, trailing spaces (kept when escaped), `!` negation, a trailing `/` for
folders only, a `/` at the start or in the middle anchoring the pattern to its file's
folder, `*`, `?`, `[...]` (with `[!...]`), `**/`, `/**` and `/**/`. As in git, a file
inside an ignored folder cannot be re-included (the walk never enters the folder).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool


def _class(pattern: str, index: int) -> tuple[str, int]:
    """A `[...]` set starting at `index`; returns (regex, index after it)."""
    end = index + 1
    if end < len(pattern) and pattern[end] in "!^":
        end += 1
    if end < len(pattern) and pattern[end] == "]":
        end += 1
    while end < len(pattern) and pattern[end] != "]":
        end += 1
    if end >= len(pattern):
        return re.escape("["), index + 1  # no closing bracket: a literal `[`
    body = pattern[index + 1:end]
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    body = body.replace("\\", "\\\\")
    return (f"[^{body}/]" if negate else f"[{body}]"), end + 1


def translate(pattern: str) -> str:
    """The regex (without anchors) for a gitignore glob; `/` separates path parts."""
    out: list[str] = []
    index, length = 0, len(pattern)
    while index < length:
        char = pattern[index]
        if pattern.startswith("**", index):
            at_start = index == 0 or pattern[index - 1] == "/"
            after = index + 2
            if at_start and after < length and pattern[after] == "/":
                out.append("(?:.*/)?")  # `**/`: any number of folders, none included
                index = after + 1
                continue
            if at_start and after == length:
                out.append(".*")  # `/**` at the end: everything inside
                index = after
                continue
            out.append("[^/]*")  # elsewhere `**` is a plain `*`
            index = after
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            regex, index = _class(pattern, index)
            out.append(regex)
            continue
        elif char == "\\" and index + 1 < length:
            index += 1
            out.append(re.escape(pattern[index]))
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def parse_line(line: str) -> Optional[Pattern]:
    """One line of a .gitignore as a Pattern, or None for blanks and comments."""
    line = line.rstrip("\n").rstrip("\r")
    if not line or line.startswith("#"):
        return None
    # Trailing spaces are dropped unless escaped with a backslash.
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        stripped += " "
    line = stripped
    negated = line.startswith("!")
    if negated:
        line = line[1:]
    elif line.startswith("\\!") or line.startswith("\\#"):
        line = line[1:]
    dir_only = line.endswith("/") and not line.endswith("\\/")
    if dir_only:
        line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    if line.startswith("/"):
        line = line[1:]
    body = translate(line)
    regex = f"^{body}$" if anchored else f"^(?:.*/)?{body}$"
    return Pattern(re.compile(regex, re.DOTALL), negated, dir_only)


def parse(text: str) -> tuple[Pattern, ...]:
    return tuple(p for p in (parse_line(line) for line in text.splitlines()) if p is not None)


def _read(path: Path) -> tuple[Pattern, ...]:
    try:
        return parse(path.read_text(encoding="utf-8", errors="surrogateescape"))
    except OSError:
        return ()


def _verdict(patterns: tuple[Pattern, ...], relative: str, is_dir: bool) -> Optional[bool]:
    """True ignored, False re-included, None no pattern speaks of it (last match wins)."""
    for pattern in reversed(patterns):
        if pattern.dir_only and not is_dir:
            continue
        if pattern.regex.match(relative):
            return not pattern.negated
    return None


class GitIgnore:
    """Answers "is this path ignored?" for paths met while walking folders."""

    def __init__(self) -> None:
        self._files: dict[Path, tuple[Pattern, ...]] = {}

    @staticmethod
    @lru_cache(maxsize=4096)
    def work_tree(folder: Path) -> Optional[Path]:
        """The top of the git work tree holding `folder`, or None outside one."""
        for candidate in [folder, *folder.parents]:
            try:
                if (candidate / ".git").exists():
                    return candidate
            except OSError:
                return None
        return None

    def _patterns(self, path: Path) -> tuple[Pattern, ...]:
        if path not in self._files:
            self._files[path] = _read(path)
        return self._files[path]

    def ignored(self, path: Path, is_dir: bool) -> bool:
        absolute = Path(os.path.abspath(path))
        top = self.work_tree(absolute.parent)
        if top is None or absolute == top:
            return False
        folders = [absolute.parent, *absolute.parent.parents]
        folders = folders[:folders.index(top) + 1] if top in folders else []
        # Deepest .gitignore first: the first that speaks decides.
        for folder in folders:
            patterns = self._patterns(folder / ".gitignore")
            if patterns:
                relative = absolute.relative_to(folder).as_posix()
                verdict = _verdict(patterns, relative, is_dir)
                if verdict is not None:
                    return verdict
        exclude = self._patterns(top / ".git" / "info" / "exclude")
        if exclude:
            verdict = _verdict(exclude, absolute.relative_to(top).as_posix(), is_dir)
            if verdict is not None:
                return verdict
        return False
