"""The finding type shared by the linter and the runtime checker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

Applicability = Literal["safe", "unsafe"]

DOCS_URL = "https://github.com/eqxlint/eqxlint/blob/main/rules/{code}.md"


@dataclass(frozen=True, order=True)
class Location:
    """A position in a file: 1-based row, 1-based column (as Ruff reports them)."""

    row: int
    column: int


@dataclass(frozen=True)
class Edit:
    """Replace the text between two locations with `content`.

    `replaces`, when known, is the exact text expected between the locations: an edit
    is applied only where it finds that text (positions can be wrong; text cannot).
    """

    content: str
    location: Location
    end_location: Location
    replaces: Optional[str] = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Fix:
    """A rewrite that resolves a finding; `message` says it in one line."""

    applicability: Applicability
    message: str
    edits: tuple[Edit, ...] = ()


@dataclass
class Diagnostic:
    """One finding.

    Static findings carry a file location; runtime findings carry `path`, the
    pytree path written the way a user would index it (`model.layers[0].weight`).
    `hint` is the line to write instead; `fix` is set when eqxlint can rewrite
    the code itself.
    """

    code: str
    message: str
    hint: str = ""
    filename: Optional[str] = None
    location: Optional[Location] = None
    end_location: Optional[Location] = None
    fix: Optional[Fix] = None
    path: Optional[str] = None
    cell: Optional[int] = None
    noqa_row: Optional[int] = None
    source_line: Optional[str] = field(default=None, compare=False)

    @property
    def url(self) -> str:
        return DOCS_URL.format(code=self.code)

    def sort_key(self) -> tuple[str, int, int, int, str]:
        loc = self.location or Location(0, 0)
        return (self.filename or "", self.cell or 0, loc.row, loc.column, self.code)


class Diagnostics(list):  # type: ignore[type-arg]
    """What `check_model` returns: a list of Diagnostic that shows as a table.

    Plain text in a terminal (`str`), an HTML table in a notebook (`_repr_html_`).
    """

    def __str__(self) -> str:
        if not self:
            return "eqxlint: no problems found."
        lines = []
        for d in self:
            lines.append(f"{d.code} {d.message}")
            if d.hint:
                lines.append(f"    fix: {d.hint}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        # What a REPL shows for `check_model(model)`: the same table as `print` does.
        return self.__str__()

    def _repr_html_(self) -> str:
        if not self:
            return "<p>eqxlint: no problems found.</p>"
        cell = "<td style='text-align: left; vertical-align: top'>"
        rows = "".join(
            f"<tr>{cell}<a href='{_escape(d.url)}'>{_escape(d.code)}</a></td>"
            f"{cell}<code>{_escape(d.path or '')}</code></td>{cell}{_inline_code(d.message)}</td>"
            f"{cell}{_inline_code(d.hint)}</td></tr>" for d in self)
        head = "".join(f"<th style='text-align: left'>{name}</th>"
                       for name in ("code", "where", "problem", "fix"))
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _escape(text: str) -> str:
    from html import escape

    return escape(text)


def _inline_code(text: str) -> str:
    """Markdown-style `code` spans as HTML <code>, everything escaped."""
    import re

    parts = re.split(r"`([^`]*)`", text)
    return "".join(f"<code>{_escape(part)}</code>" if odd else _escape(part)
                   for odd, part in ((i % 2 == 1, part) for i, part in enumerate(parts)))


class TrainabilityError(AssertionError):
    """Raised by `assert_trainable`: every problem found, with its code, path and fix.

    `.diagnostics` holds them. An AssertionError, as chex's assertions are.
    """

    def __init__(self, diagnostics: list[Diagnostic], subject: str = "this model") -> None:
        self.diagnostics = Diagnostics(diagnostics)
        count = len(diagnostics)
        head = f"eqxlint found {count} problem{'s' if count != 1 else ''} with {subject}:"
        super().__init__(f"{head}\n\n{self.diagnostics}")

    def _render_traceback_(self) -> list[str]:
        """IPython and Jupyter: the traceback without eqxlint's own frames.

        IPython honours `__tracebackhide__` for every frame but the one that raised, so
        the raising frame is dropped here and the user's line is the last one shown.
        """
        import types

        from IPython import get_ipython

        kept = []
        frame = self.__traceback__
        while frame is not None:
            if not str(frame.tb_frame.f_globals.get("__name__", "")).startswith("eqxlint"):
                kept.append(frame)
            frame = frame.tb_next
        trimmed: Optional[types.TracebackType] = None
        for frame in reversed(kept):
            trimmed = types.TracebackType(trimmed, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
        shell = get_ipython()
        return shell.InteractiveTB.structured_traceback(type(self), self, trimmed)
