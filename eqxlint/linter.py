"""Files -> parse -> semantics -> rules -> suppressions -> fixes.

This module works on bytes and text: discovery, decoding, the cache, noqa, edits,
writes. The parsing half is eqxlint.parse, imported only when a file must be
parsed, so that a run whose files are all cached never imports libcst. Nothing here
imports jax.
"""

from __future__ import annotations

import codecs
import difflib
import fnmatch
import io
import os
import re
import sys
import tokenize
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, Protocol, Sequence, \
    Union

from eqxlint.diagnostics import Diagnostic, Edit, Location
from eqxlint.files import NotARegularFile, read_source, write_source
from eqxlint.syntax import parse_verdict
from eqxlint.workers import DEFAULT_FILE_TIMEOUT, lint_in_workers

if TYPE_CHECKING:
    import ast

    from eqxlint.cache import Cache
    from eqxlint.notebook import Notebook
    from eqxlint.rules.base import Rule

SYNTAX_ERROR = "EQX000"
MAX_FIX_PASSES = 10

# Folders never entered when discovering files (a path given explicitly is still checked).
DEFAULT_EXCLUDES = (
    ".bzr", ".direnv", ".eggs", ".git", ".git-rewrite", ".hg", ".ipynb_checkpoints",
    ".mypy_cache", ".nox", ".pants.d", ".pytest_cache", ".pytype", ".ruff_cache", ".svn",
    ".tox", ".venv", ".eqxlint_cache", "__pypackages__", "__pycache__", "_build", "buck-out",
    "build", "dist", "node_modules", "site-packages", "venv",
)
NOTEBOOK_SUFFIX = ".ipynb"
CHECKED_SUFFIXES = (".py", ".pyi", NOTEBOOK_SUFFIX)

_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass
class Settings:
    """What the engine needs to lint one file (picklable, for worker processes).

    `rules` holds rule codes ("EQX101") or rule classes; codes are resolved to
    classes (importing the rule modules, and libcst) only when a file is parsed.
    """

    rules: Sequence[Union[str, type["Rule"]]]
    fix: bool = False
    unsafe_fixes: bool = False
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    root: Path = field(default_factory=Path.cwd)
    use_prefilter: bool = True
    cache_dir: Optional[Path] = None  # None: no cache
    file_timeout: Optional[float] = DEFAULT_FILE_TIMEOUT  # seconds per file; None: no limit
    _cache: Optional["Cache"] = field(default=None, repr=False, compare=False)

    @property
    def codes(self) -> list[str]:
        return [rule if isinstance(rule, str) else rule.code for rule in self.rules]

    def rule_classes(self) -> list[type["Rule"]]:
        from eqxlint.rules import rules_by_code

        known = rules_by_code()
        return [known[rule] if isinstance(rule, str) else rule for rule in self.rules]

    def cache(self) -> Optional["Cache"]:
        if self.cache_dir is None or self.fix:
            return None  # fixing needs the parse; only plain checks are cached
        if self._cache is None:
            from eqxlint.cache import Cache, fingerprint

            self._cache = Cache(self.cache_dir, fingerprint(self.codes, self.per_file_ignores,
                                                            self.use_prefilter))
        return self._cache


@dataclass
class FileResult:
    """What linting one file gave: the findings left, and the new text if fixed."""

    display: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    fixed: int = 0
    original: Optional[str] = None
    fixed_text: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    internal_error: Optional[str] = None
    fixed_codes: dict[str, int] = field(default_factory=dict)  # code -> fixes applied

    @property
    def changed(self) -> bool:
        return self.fixed_text is not None and self.fixed_text != self.original


# ---------------------------------------------------------------------------
# Discovery


def discover(paths: Sequence[str], exclude: Sequence[str] = (),
             extend_exclude: Sequence[str] = (), root: Optional[Path] = None,
             skip: Optional[Callable[[str, bool, bool], bool]] = None
             ) -> tuple[list[Path], list[Diagnostic]]:
    """Expand paths into Python files; unreadable or missing paths become EQX000.

    `skip(path, is_dir, given)` may leave out more (per-folder excludes, .gitignore);
    `given` is True for a path named on the command line.
    """
    root = root or Path.cwd()
    patterns = list(exclude) + list(extend_exclude)
    files: list[Path] = []
    problems: list[Diagnostic] = []
    seen: set[str] = set()

    def excluded(path: str, is_dir: bool = False, given: bool = False) -> bool:
        return (bool(patterns) and _matches_any(Path(path), patterns, root)) or (
            skip is not None and skip(path, is_dir, given))

    def add(path: str) -> None:
        key = os.path.normcase(os.path.abspath(path))  # cheap: no symlink resolution
        if key not in seen:
            seen.add(key)
            files.append(Path(path))

    for raw in paths:
        path = Path(raw)
        if _safely(path.is_dir):
            def onerror(error: OSError, _path: Path = path) -> None:
                problems.append(_unreadable(display_path(Path(error.filename or _path), root),
                                            error))
            for folder, dirnames, filenames in os.walk(raw, onerror=onerror):
                dirnames[:] = sorted(
                    d for d in dirnames
                    if d not in DEFAULT_EXCLUDES and not d.endswith(".egg-info")
                    and not os.path.isfile(os.path.join(folder, d, "pyvenv.cfg"))  # a venv
                    and not excluded(os.path.join(folder, d), True)
                )
                for name in sorted(filenames):
                    if name.endswith(CHECKED_SUFFIXES):
                        candidate = os.path.join(folder, name)
                        if not excluded(candidate):
                            add(candidate)
        elif _safely(path.exists) or _safely(path.is_symlink):
            if not excluded(raw, False, True):
                add(raw)
        elif _unsearchable(raw) is not None:  # e.g. inside a folder we may not enter
            problems.append(_unreadable(display_path(path, root), _unsearchable(raw)))  # type: ignore[arg-type]
        else:
            problems.append(Diagnostic(
                code=SYNTAX_ERROR, message="No such file or directory",
                hint="Check the path", filename=display_path(path, root),
                location=Location(1, 1), end_location=Location(1, 1)))
    return files, problems


def _safely(test: Callable[[], bool]) -> bool:
    """A filesystem test that says False, not PermissionError, where it cannot look."""
    try:
        return test()
    except OSError:
        return False


def _unsearchable(path: str) -> Optional[OSError]:
    """The error that stops us from looking at `path`, unless it is plain absence."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        return error
    return None


def _matches_any(path: Path, patterns: Sequence[str], root: Path) -> bool:
    if not patterns:
        return False
    relative = display_path(path, root)
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if fnmatch.fnmatch(path.name, pattern) or fnmatch.fnmatch(relative, pattern) \
                or fnmatch.fnmatch(relative, pattern + "/*") \
                or any(fnmatch.fnmatch(part, pattern) for part in Path(relative).parts):
            return True
    return False


def display_path(path: Path, root: Path) -> str:
    """The path as findings show it: relative to `root`, with forward slashes."""
    text = os.fspath(path)
    try:
        text = os.path.relpath(text, root)
    except ValueError:  # another drive (Windows)
        pass
    return text.replace(os.sep, "/")


def _unreadable(display: str, error: OSError) -> Diagnostic:
    reason = error.strerror or str(error)
    return Diagnostic(code=SYNTAX_ERROR, message=f"Could not read: {reason}",
                      hint="Check that the path exists and is readable", filename=display,
                      location=Location(1, 1), end_location=Location(1, 1))


# ---------------------------------------------------------------------------
# Reading


@dataclass
class Decoded:
    text: str
    encoding: str


class DecodeError(ValueError):
    """Source bytes that do not decode; `row` is where (1 when unknown)."""

    def __init__(self, message: str, row: int = 1) -> None:
        super().__init__(message)
        self.row = row


def decode(data: bytes) -> Decoded:
    """Decode source bytes as Python does: BOM, then a coding cookie, else UTF-8.

    Raises DecodeError with a message fit for EQX000.
    """
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        # Python's own words for the first two lines; name the line and the cause.
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            row = data[: bad.start].count(b"\n") + 1
            raise DecodeError("bytes that are not valid UTF-8, and no other encoding is "
                              "declared (is it a binary file?)", row) from None
        raise DecodeError(str(error.msg)) from None
    try:
        codecs.lookup(encoding)
        text = data.decode(encoding)
    except LookupError:
        raise DecodeError(f"unknown encoding {encoding!r} declared") from None
    except UnicodeDecodeError as error:
        row = data[: error.start].count(b"\n") + 1
        raise DecodeError(f"bytes that are not valid {encoding}: {error.reason}", row) from None
    except (UnicodeError, ValueError, TypeError) as error:  # codecs like punycode, undefined
        raise DecodeError(f"the declared encoding {encoding!r} cannot decode this file: "
                          f"{error}") from None
    if "\x00" in text:
        raise DecodeError("the file contains null bytes (is it a binary file?)",
                          text[: text.index("\x00")].count("\n") + 1)
    return Decoded(text, encoding)


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding)


# ---------------------------------------------------------------------------
# Linting one source text


class LineIndex:
    """Where each line of a text starts, to turn (line, column) into offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in _NEWLINE.finditer(text)]

    def offset(self, line: int, column: int) -> int:
        return self.starts[line - 1] + column

    def line_text(self, line: int) -> str:
        start = self.starts[line - 1]
        end = self.starts[line] if line < len(self.starts) else len(self.text)
        return _NEWLINE.sub("", self.text[start:end])


def noqa_map(text: str) -> dict[int, Optional[set[str]]]:
    """Row -> codes its `# noqa` suppresses (None: every code); see eqxlint.suppression."""
    from eqxlint.suppression import parse

    return {row: None if d.codes is None else {c.text for c in d.codes}
            for row, d in parse(text, "").lines.items()}


def suppress(diagnostics: list[Diagnostic], text: str, display: str,
             per_file_ignores: dict[str, list[str]], enabled: Sequence[str] = (),
             warnings: Optional[list[str]] = None) -> list[Diagnostic]:
    """Drop findings silenced by `# noqa`, `# eqxlint: noqa` or per-file-ignores.

    The work is eqxlint.suppression's; malformed directives are added to `warnings`.
    """
    from eqxlint.rules import all_codes
    from eqxlint.suppression import apply

    outcome = apply(diagnostics, text, display, per_file_ignores, enabled, all_codes())
    if warnings is not None:
        warnings.extend(w for w in outcome.warnings if w not in warnings)
    return outcome.kept


# ---------------------------------------------------------------------------
# Fixes


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """Apply non-overlapping edits (callers make sure they do not overlap)."""
    lines = LineIndex(text)
    spans = sorted(((lines.offset(e.location.row, e.location.column - 1),
                     lines.offset(e.end_location.row, e.end_location.column - 1), e.content)
                    for e in edits), reverse=True)
    for start, end, content in spans:
        text = text[:start] + content + text[end:]
    return text


def misfit(text: str, lines: LineIndex, edit: Edit) -> Optional[str]:
    """Why `edit` does not fit `text` (None when it replaces exactly what it expects)."""
    try:
        start = lines.offset(edit.location.row, edit.location.column - 1)
        end = lines.offset(edit.end_location.row, edit.end_location.column - 1)
    except IndexError:
        return "its position is outside the file"
    if not 0 <= start <= end <= len(text):
        return "its position is outside the file"
    if edit.replaces is not None and text[start:end] != edit.replaces:
        return f"expected {edit.replaces[:40]!r} at its position, found {text[start:end][:40]!r}"
    return None


def _applicable(diagnostic: Diagnostic, unsafe: bool) -> bool:
    return diagnostic.fix is not None and bool(diagnostic.fix.edits) and (
        diagnostic.fix.applicability == "safe" or unsafe)


class TextSource(Protocol):
    """How fix_text edits a text and names a place in it (a notebook has its own way)."""

    def apply(self, text: str, edits: Sequence[Edit]) -> Optional[str]: ...

    def where(self, text: str, display: str, diagnostic: Diagnostic) -> str: ...


class PlainText:
    """A file's text as it is: edits by offset, places as `path:row:col`."""

    def apply(self, text: str, edits: Sequence[Edit]) -> Optional[str]:
        """The edited text, or None when the edits cannot be made there."""
        return apply_edits(text, edits)

    def where(self, text: str, display: str, diagnostic: Diagnostic) -> str:
        location = diagnostic.location or Location(1, 1)
        return f"{display}:{location.row}:{location.column}"


def fix_text(text: str, display: str, settings: Settings, raw: Optional[bytes] = None,
             path: Optional[Path] = None, source: TextSource = PlainText(),
             counts: Optional[dict[str, int]] = None,
             cells: tuple[tuple[int, int], ...] = (), tree: "Optional[ast.Module]" = None
             ) -> tuple[str, int, list[Diagnostic], list[str]]:
    """Apply fixes until none is left; return (text, fixes applied, findings left, warnings).

    `counts`, when given, gets the number of fixes applied per code. `cells` (a
    notebook's cell starts) and `tree` (the text's `ast`) hold for the text as given,
    not once it is fixed.
    """
    counts = counts if counts is not None else {}
    from eqxlint.parse import lint_text, parses

    rules = settings.rule_classes()
    applied = 0
    warnings: list[str] = []
    rejected: set[tuple[str, int, int]] = set()
    current = text
    for _ in range(MAX_FIX_PASSES):
        noqa_warnings: list[str] = []
        diagnostics = suppress(lint_text(current, display, rules,
                                         raw if current is text else None,
                                         settings.use_prefilter, path,
                                         cells=cells if current is text else (),
                                         tree=tree if current is text else None),
                               current, display, settings.per_file_ignores, settings.codes,
                               noqa_warnings)
        fixable = [d for d in diagnostics if _applicable(d, settings.unsafe_fixes)
                   and _key(d) not in rejected]
        if not fixable:
            return current, applied, diagnostics, noqa_warnings + warnings
        lines = LineIndex(current)
        fitting = []
        for diagnostic in fixable:
            assert diagnostic.fix is not None
            why = next((reason for reason in (misfit(current, lines, e)
                                              for e in diagnostic.fix.edits) if reason), None)
            if why is None:
                fitting.append(diagnostic)
                continue
            rejected.add(_key(diagnostic))
            warnings.append(f"{display}:{diagnostic.location.row}:{diagnostic.location.column}: "  # type: ignore[union-attr]
                            f"the {diagnostic.code} fix does not match the text it would "
                            f"replace ({why}); left as it was")
        fixable = fitting
        if not fixable:
            return current, applied, diagnostics, noqa_warnings + warnings
        chosen: list[Diagnostic] = []
        taken: list[tuple[Location, Location]] = []
        for diagnostic in fixable:
            assert diagnostic.fix is not None
            spans = [(e.location, e.end_location) for e in diagnostic.fix.edits]
            if any(_overlaps(a, b) for a in spans for b in taken):
                continue
            chosen.append(diagnostic)
            taken.extend(spans)
        candidate = source.apply(current, [e for d in chosen for e in d.fix.edits])  # type: ignore[union-attr]
        if candidate is not None and parses(candidate):
            current = candidate
            applied += len(chosen)
            for diagnostic in chosen:
                counts[diagnostic.code] = counts.get(diagnostic.code, 0) + 1
            continue
        # One of them breaks the file: keep the ones that do not, one at a time.
        for diagnostic in chosen:
            single = source.apply(current, diagnostic.fix.edits)  # type: ignore[union-attr]
            if single is not None and parses(single):
                current = single
                applied += 1
                counts[diagnostic.code] = counts.get(diagnostic.code, 0) + 1
                break
            rejected.add(_key(diagnostic))
            why = "would not re-parse" if single is not None else \
                "reaches across cells or into IPython syntax"
            warnings.append(f"{source.where(current, display, diagnostic)}: "
                            f"the {diagnostic.code} fix {why}; left as it was")
    noqa_warnings = []
    diagnostics = suppress(lint_text(current, display, rules, None,
                                     settings.use_prefilter, path),
                           current, display, settings.per_file_ignores, settings.codes,
                           noqa_warnings)
    return current, applied, diagnostics, noqa_warnings + warnings


def _key(diagnostic: Diagnostic) -> tuple[str, int, int]:
    loc = diagnostic.location or Location(0, 0)
    return (diagnostic.code, loc.row, loc.column)


def _overlaps(a: tuple[Location, Location], b: tuple[Location, Location]) -> bool:
    return not (a[1] <= b[0] or b[1] <= a[0])


def unified_diff(before: str, after: str, display: str) -> str:
    """What a fix changes; for a notebook, in its code cells (as Ruff shows it), not its JSON."""
    if display.endswith(NOTEBOOK_SUFFIX):
        from eqxlint.notebook import cell_diff

        return cell_diff(before, after, display)
    return "".join(difflib.unified_diff(
        _lines_with_ends(before), _lines_with_ends(after),
        fromfile=f"a/{display}", tofile=f"b/{display}"))


def _lines_with_ends(text: str) -> list[str]:
    """Lines as Python ends them (not at \x0c or U+2028, as str.splitlines does)."""
    starts = LineIndex(text).starts
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)]) if a < b]


# ---------------------------------------------------------------------------
# One file, end to end


def lint_bytes(data: bytes, display: str, settings: Settings, path: Optional[Path] = None
               ) -> FileResult:
    """Lint (and fix, if asked) one file's bytes. Never raises for bad input.

    `path` is where the file lives (default: `display` below the settings' root): the
    project's own imports are resolved from there.
    """
    from eqxlint.parse import NotAnalysed

    result = FileResult(display)
    path = path if path is not None else settings.root / display
    try:
        decoded = decode(data)
    except DecodeError as error:
        result.diagnostics.append(Diagnostic(
            code=SYNTAX_ERROR, message=f"Could not decode: {error}",
            hint="Save the file as UTF-8 or declare its encoding (PEP 263)",
            filename=display, location=Location(error.row, 1),
            end_location=Location(error.row, 1)))
        return result
    text = decoded.text
    result.original = text
    notebook = None
    if display.endswith(NOTEBOOK_SUFFIX):
        from eqxlint.notebook import Notebook, NotebookError

        try:
            notebook = Notebook.parse(text)
        except NotebookError as error:
            result.diagnostics.append(Diagnostic(
                code=SYNTAX_ERROR, message=f"Could not read the notebook: {error}",
                hint="Check that this is a Jupyter notebook (nbformat 4)", filename=display,
                location=Location(1, 1), end_location=Location(1, 1)))
            return result
    elif "%%" in text:  # perhaps a `# %%` cell script with IPython syntax
        from eqxlint.notebook import Notebook

        notebook = Notebook.script(text)
    # The pre-filter reads the code as UTF-8 bytes, not those of another encoding.
    raw = data if decoded.encoding in ("utf-8", "utf-8-sig") else None
    try:
        verdict = None if notebook is not None else parse_verdict(text, display)
        if verdict is not None and verdict.refusal is not None:
            result.diagnostics = [verdict.refusal]
        elif notebook is not None:
            _lint_notebook(result, notebook, settings, path)
        elif settings.fix:
            new_text, applied, remaining, warnings = fix_text(
                text, display, settings, raw, path, counts=result.fixed_codes,
                tree=verdict.tree if verdict is not None else None)
            result.fixed = applied
            result.diagnostics = remaining
            result.warnings = warnings
            result.fixed_text = new_text
        else:
            from eqxlint.parse import lint_text

            diagnostics = lint_text(text, display, settings.rule_classes(), raw,
                                    settings.use_prefilter, path,
                                    tree=verdict.tree if verdict is not None else None)
            result.diagnostics = suppress(diagnostics, text, display, settings.per_file_ignores,
                                          settings.codes, result.warnings)
    except NotAnalysed as error:  # valid Python that libcst cannot parse: say so, not EQX000
        result.warnings.append(f"{display}: {error}")
        result.diagnostics, result.fixed, result.fixed_text = [], 0, None
        return result
    except Exception as error:  # a bug in eqxlint: say so, keep going, write nothing
        result.internal_error = f"{display}: internal error: {type(error).__name__}: {error}"
        result.fixed_text = None
        result.fixed = 0
    return result


def _lint_notebook(result: FileResult, notebook: "Notebook", settings: Settings,
                   path: Optional[Path] = None) -> None:
    """Lint (and fix) a notebook's or cell script's code; findings placed in their cells.

    The pre-filter reads the code, not the JSON; fixes go into the cells' lines.
    """
    from eqxlint.notebook import NotebookError
    from eqxlint.parse import lint_text

    display = result.display
    errors = notebook.syntax_errors(display)
    if errors:
        result.diagnostics = errors
        return
    fixing = settings.fix
    problem = notebook.why_not_writable() if fixing else None
    if problem is not None:
        result.warnings.append(f"{display}: the fixes were not written: {problem}")
        fixing = False
    if fixing:
        new_text, applied, remaining, warnings = fix_text(notebook.text, display, settings,
                                                          None, path, source=notebook,
                                                          counts=result.fixed_codes,
                                                          cells=notebook.cell_starts())
        result.warnings.extend(warnings)
        try:
            fixed_file = notebook.with_text(new_text) if new_text != notebook.text \
                else result.original
        except NotebookError as error:
            result.warnings.append(f"{display}: the fixes were not written: {error}")
        else:
            result.diagnostics = [notebook.place(d, new_text) for d in remaining]
            result.fixed = applied
            result.fixed_text = fixed_file
            return
    diagnostics = lint_text(notebook.text, display, settings.rule_classes(), None,
                            settings.use_prefilter, path, cells=notebook.cell_starts())
    result.diagnostics = [notebook.place(d) for d in suppress(
        diagnostics, notebook.text, display, settings.per_file_ignores, settings.codes,
        result.warnings)]


def lint_path(path: Path, display: str, settings: Settings, write: bool) -> FileResult:
    """Read, lint, fix and (if `write`) save one file; store its findings in the cache."""
    try:
        data = read_source(path)
    except NotARegularFile as error:
        return FileResult(display, warnings=[f"{display}: {error}"])
    except OSError as error:
        result = FileResult(display)
        result.diagnostics.append(_unreadable(display, error))
        return result
    cache = settings.cache()  # lint_paths has already looked there: this file missed
    result = lint_bytes(data, display, settings, path)
    if cache is not None and result.internal_error is None:
        cache.put(display, cache_key_data(path, data), result.diagnostics)
    if write and result.internal_error is None and result.changed \
            and result.fixed_text is not None:
        try:
            encoding = decode(data).encoding
            write_source(path, encode(result.fixed_text, encoding))
        except (OSError, UnicodeEncodeError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            result.warnings.append(f"{display}: could not write the fixes: {reason}")
            # Nothing was fixed: the findings are those of the file as it is.
            unfixed = lint_bytes(data, display, replace(settings, fix=False, _cache=None), path)
            result.diagnostics, result.fixed, result.fixed_text = unfixed.diagnostics, 0, None
    return result


def write_atomically(path: Path, data: bytes) -> None:
    """Replace a file's contents safely (kept for callers of the old name)."""
    write_source(path, data)


def cache_key_data(path: Path, data: bytes) -> bytes:
    """A file's bytes and the contents of the project modules it imports: its cache key."""
    from eqxlint.semantics.project import shared_index

    return data + b"\0eqxlint-dependencies\0" + shared_index().digest_of_dependencies(path, data)


def lint_paths(files: Sequence[Path], settings: Settings, write: bool, jobs: int
               ) -> Iterator[FileResult]:
    """Lint many files: cache hits here, the rest in watched worker processes."""
    displays = [display_path(path, settings.root) for path in files]
    cache = settings.cache()
    if cache is not None:
        from eqxlint.semantics.project import shared_index

        index = shared_index()
        layout = cache.read_layout()
        if layout is not None:
            index.adopt_layout(layout)
        misses = []
        for path, display in zip(files, displays):
            try:
                cached = cache.get(display, cache_key_data(path, read_source(path)))
            except NotARegularFile as error:
                yield FileResult(display, warnings=[f"{display}: {error}"])
                continue
            except OSError:
                cached = None
            if cached is None:
                misses.append((path, display))
            else:
                yield FileResult(display, diagnostics=cached)
        if index.layout_grew:
            cache.write_layout(index.layout_record())
        files, displays = [m[0] for m in misses], [m[1] for m in misses]
    if not files:
        return
    import multiprocessing
    import threading

    # fork is cheapest, but unsafe in a process with threads (JAX starts some when
    # eqxlint is driven from Python beside it): then start clean interpreters.
    threaded = threading.active_count() > 1 or "jax" in sys.modules
    method = "spawn" if threaded or "fork" not in multiprocessing.get_all_start_methods() \
        else "fork"
    yield from lint_in_workers(files, displays, settings, write, jobs, method)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def lint_source(text: str, display: str, settings: Settings, path: Optional[Path] = None
                ) -> FileResult:
    """Lint (and fix, if asked) a text as if it were the file `display`: an editor's buffer.

    The text is linted as the bytes the file would hold once saved (UTF-8, or the
    encoding its coding cookie declares), so every finding is the one the CLI gives.
    `path` is where the file lives, as for lint_bytes.
    """
    data = text.encode("utf-8", "surrogatepass")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        if codecs.lookup(encoding).name != "utf-8":
            data = text.encode(encoding)
    except (SyntaxError, LookupError, UnicodeEncodeError):
        pass  # lint_bytes says what is wrong with these bytes, as for the saved file
    return lint_bytes(data, display, settings, path)
