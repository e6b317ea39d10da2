"""Files -> parse -> semantics -> rules -> suppressions -> fixes.

Everything here works on bytes and text; nothing imports jax.
"""

from __future__ import annotations

import bisect
import codecs
import difflib
import fnmatch
import io
import os
import re
import sys
import tempfile
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import libcst as cst
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider

from eqxlint.diagnostics import Diagnostic, Edit, Fix, Location
from eqxlint.rules import all_rules
from eqxlint.rules.base import Finding, Rule
from eqxlint.semantics import Semantics

SYNTAX_ERROR = "EQX000"
MAX_FIX_PASSES = 10

# Folders never entered when discovering files (a path given explicitly is still checked).
DEFAULT_EXCLUDES = (
    ".bzr", ".direnv", ".eggs", ".git", ".git-rewrite", ".hg", ".ipynb_checkpoints",
    ".mypy_cache", ".nox", ".pants.d", ".pytest_cache", ".pytype", ".ruff_cache", ".svn",
    ".tox", ".venv", ".eqxlint_cache", "__pypackages__", "__pycache__", "_build", "buck-out",
    "build", "dist", "node_modules", "site-packages", "venv",
)
PYTHON_SUFFIXES = (".py", ".pyi")

_NEWLINE = re.compile(r"\r\n|\r|\n")
_NOQA = re.compile(
    r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.IGNORECASE
)


@dataclass
class Settings:
    """What the engine needs to lint one file (picklable, for worker processes)."""

    rules: list[type[Rule]]
    fix: bool = False
    unsafe_fixes: bool = False
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    root: Path = field(default_factory=Path.cwd)
    use_prefilter: bool = True


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

    @property
    def changed(self) -> bool:
        return self.fixed_text is not None and self.fixed_text != self.original


# ---------------------------------------------------------------------------
# Discovery


def discover(paths: Sequence[str], exclude: Sequence[str] = (),
             extend_exclude: Sequence[str] = (), root: Optional[Path] = None
             ) -> tuple[list[Path], list[Diagnostic]]:
    """Expand paths into Python files; unreadable or missing paths become EQX000."""
    root = root or Path.cwd()
    patterns = list(exclude) + list(extend_exclude)
    files: list[Path] = []
    problems: list[Diagnostic] = []
    seen: set[Path] = set()

    def excluded(path: Path) -> bool:
        return _matches_any(path, patterns, root)

    def add(path: Path) -> None:
        key = path.resolve() if _safely(path.exists) else path
        if key not in seen:
            seen.add(key)
            files.append(path)

    for raw in paths:
        path = Path(raw)
        if _safely(path.is_dir):
            def onerror(error: OSError, _path: Path = path) -> None:
                problems.append(_unreadable(display_path(Path(error.filename or _path), root),
                                            error))
            for folder, dirnames, filenames in os.walk(path, onerror=onerror):
                dirnames[:] = sorted(
                    d for d in dirnames
                    if d not in DEFAULT_EXCLUDES and not d.endswith(".egg-info")
                    and not _safely((Path(folder) / d / "pyvenv.cfg").exists)
                    and not excluded(Path(folder) / d)
                )
                for name in sorted(filenames):
                    candidate = Path(folder) / name
                    if name.endswith(PYTHON_SUFFIXES) and not excluded(candidate):
                        add(candidate)
        elif _safely(path.exists) or _safely(path.is_symlink):
            if not excluded(path):
                add(path)
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
    try:
        return Path(os.path.relpath(path, root)).as_posix() if path.is_absolute() \
            or not str(path).startswith("..") else path.as_posix()
    except ValueError:
        return path.as_posix()


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
    if "\x00" in text:
        raise DecodeError("the file contains null bytes (is it a binary file?)",
                          text[: text.index("\x00")].count("\n") + 1)
    return Decoded(text, encoding)


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding)


# ---------------------------------------------------------------------------
# Linting one source text


class _Positions:
    """Line offsets of a text, to turn libcst positions into text offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in _NEWLINE.finditer(text)]

    def offset(self, line: int, column: int) -> int:
        return self.starts[line - 1] + column

    def line_text(self, line: int) -> str:
        start = self.starts[line - 1]
        end = self.starts[line] if line < len(self.starts) else len(self.text)
        return _NEWLINE.sub("", self.text[start:end])


def lint_text(text: str, display: str, rules: Sequence[type[Rule]],
              raw: Optional[bytes] = None, use_prefilter: bool = True) -> list[Diagnostic]:
    """All findings for one source text (before noqa and per-file ignores)."""
    data = raw if raw is not None else text.encode("utf-8", "surrogatepass")
    active = [rule for rule in rules if rule.static and (not use_prefilter or rule.may_fire(data))]
    if not active:
        return []
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as error:
        return [_syntax_error(display, error.raw_line, error.raw_column, error.message, text)]
    except (RecursionError, MemoryError):
        return [Diagnostic(code=SYNTAX_ERROR, message="too deeply nested to parse",
                           hint="Simplify the expression", filename=display,
                           location=Location(1, 1), end_location=Location(1, 1))]
    except Exception as error:  # libcst raises a few other types on odd input
        return [Diagnostic(code=SYNTAX_ERROR, message=f"could not parse: {error}",
                           hint="Check that this is a Python file", filename=display,
                           location=Location(1, 1), end_location=Location(1, 1))]
    semantics = Semantics.of(module)
    findings: list[tuple[type[Rule], Finding]] = []
    for rule in active:
        for finding in rule().check(semantics):
            findings.append((rule, finding))
    if not findings:
        return []
    positions = _positions_of(module, text, semantics, findings)
    lines = _Positions(text)
    diagnostics = []
    for rule, finding in findings:
        where: CodeRange = positions[finding.node]
        fix = None
        if finding.replacements and rule.fix_applicability is not None:
            edits = []
            for old, new in finding.replacements:
                span: CodeRange = positions[old]
                edits.append(Edit(
                    content=module.code_for_node(_without_outer_parens(old, new)),
                    location=Location(span.start.line, span.start.column + 1),
                    end_location=Location(span.end.line, span.end.column + 1)))
            fix = Fix(rule.fix_applicability, finding.fix_message or finding.hint, tuple(edits))
        diagnostics.append(Diagnostic(
            code=rule.code, message=finding.message, hint=finding.hint, filename=display,
            location=Location(where.start.line, where.start.column + 1),
            end_location=Location(where.end.line, where.end.column + 1),
            fix=fix, noqa_row=where.start.line,
            source_line=lines.line_text(where.start.line)))
    diagnostics.sort(key=Diagnostic.sort_key)
    return diagnostics


class _Placed(dict):
    """CodeRanges of the nodes that findings need, keyed by node identity."""

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        return dict.__getitem__(self, id(node))


def _positions_of(module: cst.Module, text: str, semantics: Semantics,
                  findings: Sequence[tuple[type[Rule], Finding]]) -> _Placed:
    """Place each finding's nodes, laying out only the statements that hold them.

    libcst's PositionProvider lays out the whole module, which costs more than the
    parse on a big file. A module-level statement's code occurs verbatim in the text
    (libcst is lossless); when it occurs exactly once, its own layout, shifted to
    where it starts, gives the same positions. Otherwise: the whole module.
    """
    placed = _Placed()
    by_statement: dict[int, tuple[cst.CSTNode, list[cst.CSTNode]]] = {}
    for _, finding in findings:
        anchor = finding.anchor if finding.anchor is not None else finding.node
        site = semantics.site(anchor) if isinstance(anchor, cst.Call) else None
        if site is None or site.statement is None:
            return _positions_of_module(module)
        nodes = [finding.node] + [old for old, _ in finding.replacements]
        by_statement.setdefault(id(site.statement), (site.statement, []))[1].extend(nodes)
    lines = _Positions(text)
    for statement, nodes in by_statement.values():
        code = module.code_for_node(statement)
        start = text.find(code)
        if start < 0 or text.find(code, start + 1) >= 0:
            return _positions_of_module(module)
        first_line = bisect.bisect_right(lines.starts, start)
        if lines.starts[first_line - 1] != start:
            return _positions_of_module(module)
        alone = module.with_changes(body=[statement], header=[], footer=[])
        local = MetadataWrapper(alone, unsafe_skip_copy=True).resolve(PositionProvider)
        shift = first_line - 1
        for node in nodes:
            if node not in local:
                return _positions_of_module(module)
            where = local[node]
            placed[id(node)] = CodeRange(CodePosition(where.start.line + shift, where.start.column),
                                         CodePosition(where.end.line + shift, where.end.column))
    return placed


def _positions_of_module(module: cst.Module) -> _Placed:
    placed = _Placed()
    for node, where in MetadataWrapper(module, unsafe_skip_copy=True).resolve(
            PositionProvider).items():
        placed[id(node)] = where
    return placed


def _without_outer_parens(old: cst.CSTNode, new: cst.CSTNode) -> cst.CSTNode:
    """libcst's positions exclude a node's own parentheses: so must its replacement."""
    old_lpar, new_lpar = getattr(old, "lpar", ()), getattr(new, "lpar", ())
    if not old_lpar or not new_lpar:
        return new
    count = min(len(old_lpar), len(new_lpar))
    new_rpar = list(getattr(new, "rpar", ()))
    return new.with_changes(lpar=list(new_lpar)[count:], rpar=new_rpar[:len(new_rpar) - count])


def _syntax_error(display: str, line: int, column: int, message: str, text: str) -> Diagnostic:
    lines = _Positions(text)
    line = max(1, min(line, len(lines.starts)))
    first = message.strip().splitlines()[0] if message.strip() else "invalid syntax"
    return Diagnostic(code=SYNTAX_ERROR, message=f"SyntaxError: {first}",
                      hint="Fix the syntax; this file was not checked", filename=display,
                      location=Location(line, column + 1), end_location=Location(line, column + 1),
                      noqa_row=line, source_line=lines.line_text(line))


def noqa_map(text: str) -> dict[int, Optional[set[str]]]:
    """Row -> codes suppressed there (None: every code)."""
    suppressed: dict[int, Optional[set[str]]] = {}
    if "noqa" not in text.lower():
        return suppressed
    for row, line in enumerate(_NEWLINE.split(text), start=1):
        if "#" not in line:
            continue
        match = _NOQA.search(line)
        if match is None:
            continue
        codes = match.group("codes")
        if codes is None:
            suppressed[row] = None
        else:
            suppressed[row] = {c.upper() for c in re.split(r"[,\s]+", codes) if c}
    return suppressed


def suppress(diagnostics: list[Diagnostic], text: str, display: str,
             per_file_ignores: dict[str, list[str]]) -> list[Diagnostic]:
    """Drop findings silenced by `# noqa` on their line or by per-file-ignores."""
    ignored: set[str] = set()
    for pattern, codes in per_file_ignores.items():
        if fnmatch.fnmatch(display, pattern) or fnmatch.fnmatch(Path(display).name, pattern):
            ignored.update(code.upper() for code in codes)
    noqa = noqa_map(text)
    kept = []
    for diagnostic in diagnostics:
        if diagnostic.code != SYNTAX_ERROR:
            if any(diagnostic.code.startswith(code) for code in ignored):
                continue
            if diagnostic.noqa_row in noqa:
                codes = noqa[diagnostic.noqa_row]
                if codes is None or diagnostic.code in codes:
                    continue
        kept.append(diagnostic)
    return kept


# ---------------------------------------------------------------------------
# Fixes


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """Apply non-overlapping edits (callers make sure they do not overlap)."""
    lines = _Positions(text)
    spans = sorted(((lines.offset(e.location.row, e.location.column - 1),
                     lines.offset(e.end_location.row, e.end_location.column - 1), e.content)
                    for e in edits), reverse=True)
    for start, end, content in spans:
        text = text[:start] + content + text[end:]
    return text


def _applicable(diagnostic: Diagnostic, unsafe: bool) -> bool:
    return diagnostic.fix is not None and bool(diagnostic.fix.edits) and (
        diagnostic.fix.applicability == "safe" or unsafe)


def _parses(text: str) -> bool:
    try:
        cst.parse_module(text)
    except Exception:
        return False
    return True


def fix_text(text: str, display: str, settings: Settings, raw: Optional[bytes] = None
             ) -> tuple[str, int, list[Diagnostic], list[str]]:
    """Apply fixes until none is left; return (text, fixes applied, findings left, warnings)."""
    applied = 0
    warnings: list[str] = []
    rejected: set[tuple[str, int, int]] = set()
    current = text
    for _ in range(MAX_FIX_PASSES):
        diagnostics = suppress(lint_text(current, display, settings.rules,
                                         raw if current is text else None,
                                         settings.use_prefilter),
                               current, display, settings.per_file_ignores)
        fixable = [d for d in diagnostics if _applicable(d, settings.unsafe_fixes)
                   and _key(d) not in rejected]
        if not fixable:
            return current, applied, diagnostics, warnings
        chosen: list[Diagnostic] = []
        taken: list[tuple[Location, Location]] = []
        for diagnostic in fixable:
            assert diagnostic.fix is not None
            spans = [(e.location, e.end_location) for e in diagnostic.fix.edits]
            if any(_overlaps(a, b) for a in spans for b in taken):
                continue
            chosen.append(diagnostic)
            taken.extend(spans)
        candidate = apply_edits(current, [e for d in chosen for e in d.fix.edits])  # type: ignore[union-attr]
        if _parses(candidate):
            current = candidate
            applied += len(chosen)
            continue
        # One of them breaks the file: keep the ones that do not, one at a time.
        progress = False
        for diagnostic in chosen:
            single = apply_edits(current, diagnostic.fix.edits)  # type: ignore[union-attr]
            if _parses(single):
                current = single
                applied += 1
                progress = True
                break
            rejected.add(_key(diagnostic))
            warnings.append(f"{display}:{diagnostic.location.row}:{diagnostic.location.column}: "  # type: ignore[union-attr]
                            f"the {diagnostic.code} fix would not re-parse; left as it was")
        if not progress and not fixable:
            break
    diagnostics = suppress(lint_text(current, display, settings.rules, None,
                                     settings.use_prefilter),
                           current, display, settings.per_file_ignores)
    return current, applied, diagnostics, warnings


def _key(diagnostic: Diagnostic) -> tuple[str, int, int]:
    loc = diagnostic.location or Location(0, 0)
    return (diagnostic.code, loc.row, loc.column)


def _overlaps(a: tuple[Location, Location], b: tuple[Location, Location]) -> bool:
    return not (a[1] <= b[0] or b[1] <= a[0])


def write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder and rename it into place."""
    folder = path.parent
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".eqxlint-tmp",
                                         dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.chmod(temporary, os.stat(path).st_mode & 0o7777)
        except OSError:
            pass
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def unified_diff(before: str, after: str, display: str) -> str:
    return "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"a/{display}", tofile=f"b/{display}"))


# ---------------------------------------------------------------------------
# One file, end to end


def lint_bytes(data: bytes, display: str, settings: Settings) -> FileResult:
    """Lint (and fix, if asked) one file's bytes. Never raises for bad input."""
    result = FileResult(display)
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
    try:
        if settings.fix:
            new_text, applied, remaining, warnings = fix_text(text, display, settings, data)
            result.fixed = applied
            result.diagnostics = remaining
            result.warnings = warnings
            result.fixed_text = new_text
        else:
            diagnostics = lint_text(text, display, settings.rules, data, settings.use_prefilter)
            result.diagnostics = suppress(diagnostics, text, display, settings.per_file_ignores)
    except Exception as error:  # a bug in eqxlint: say so, keep going
        result.internal_error = f"{display}: internal error: {type(error).__name__}: {error}"
    return result


def lint_path(path: Path, display: str, settings: Settings, write: bool) -> FileResult:
    """Read, lint, fix and (if `write`) save one file."""
    try:
        data = path.read_bytes()
    except OSError as error:
        result = FileResult(display)
        result.diagnostics.append(_unreadable(display, error))
        return result
    result = lint_bytes(data, display, settings)
    if write and result.changed and result.fixed_text is not None:
        try:
            encoding = decode(data).encoding
            write_atomically(path, encode(result.fixed_text, encoding))
        except (OSError, UnicodeEncodeError, ValueError) as error:
            result.warnings.append(f"{display}: could not write the fixes: {error}")
            result.fixed = 0
    return result


def lint_paths(files: Sequence[Path], settings: Settings, write: bool, jobs: int
               ) -> Iterator[FileResult]:
    """Lint many files; in parallel processes when there are enough of them."""
    displays = [display_path(path, settings.root) for path in files]
    if jobs <= 1 or len(files) < 4:
        for path, display in zip(files, displays):
            yield lint_path(path, display, settings, write)
        return
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(1, min(32, len(files) // (jobs * 8)))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(lint_path, files, displays, [settings] * len(files),
                            [write] * len(files), chunksize=chunk)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def rules_for(codes: Sequence[str]) -> list[type[Rule]]:
    wanted = set(codes)
    return [rule for rule in all_rules() if rule.code in wanted]


def stdin_bytes() -> bytes:
    return sys.stdin.buffer.read()
