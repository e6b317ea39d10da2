"""`eqxlint server`: the CLI's findings and fixes in the editor, as you type (LSP over stdio).

A thin layer over the linter: each open Python file, or notebook (LSP 3.17 notebook
sync, code cells linted as one module), is linted with `linter.lint_source` and the
settings the CLI would use for its path (nearest pyproject.toml) plus the client's
settings. Code actions carry exactly the CLI's fix edits. Linting runs on a worker
thread: the event loop only moves messages, a newer text supersedes the pending check
of the same document, and nothing a rule does can stop the server. Nothing here
imports jax.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import re
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace.position_codec import PositionCodec

from eqxlint import __version__
from eqxlint.config import Config, ConfigError, find_config, load
from eqxlint.diagnostics import Diagnostic, Location
from eqxlint.linter import NOTEBOOK_SUFFIX, SYNTAX_ERROR, FileResult, Settings, display_path, \
    lint_source

SOURCE = "eqxlint"
FIX_ALL = "source.fixAll.eqxlint"
PYTHON_SUFFIXES = (".py", ".pyi")
CONFIG_NAMES = ("pyproject.toml", "eqxlint.toml", ".eqxlint.toml")
_SEVERITIES = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning,
               "information": lsp.DiagnosticSeverity.Information,
               "info": lsp.DiagnosticSeverity.Information, "hint": lsp.DiagnosticSeverity.Hint}
_NOQA_CODES = re.compile(r"#\s*noqa:\s?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*)",
                         re.IGNORECASE)

if TYPE_CHECKING:
    from eqxlint.semantics.project import ProjectIndex

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Settings: the file's config, as the CLI resolves it, plus the client's


@dataclass
class ClientSettings:
    """What the editor says (initializationOptions, workspace/didChangeConfiguration).

    `select`, `ignore` and `extendSelect` act as the CLI's flags of the same names
    (they win over pyproject.toml); `severity` maps a code or prefix to a level.
    """

    enable: bool = True
    select: Optional[list[str]] = None
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    unsafe_fixes: bool = False
    severity: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_client(cls, raw: Any) -> "ClientSettings":
        """Read Ruff-style settings: flat, or under "settings" / "eqxlint" keys."""
        while isinstance(raw, dict):
            inner = next((raw[k] for k in ("eqxlint", "settings", "globalSettings")
                          if isinstance(raw.get(k), dict)), None)
            if inner is None:
                break
            raw = inner
        if not isinstance(raw, dict):
            return cls()

        def codes(*keys: str) -> Optional[list[str]]:
            for key in keys:
                value = raw.get(key)
                if isinstance(value, str):
                    return [part.strip() for part in value.split(",") if part.strip()]
                if isinstance(value, list):
                    return [str(part).strip() for part in value if str(part).strip()]
            return None

        severity = raw.get("severity", {})
        if isinstance(severity, str):
            severity = {"": severity}
        return cls(
            enable=bool(raw.get("enable", True)),
            select=codes("select"),
            ignore=codes("ignore") or [],
            extend_select=codes("extendSelect", "extend-select", "extend_select") or [],
            unsafe_fixes=bool(raw.get("unsafeFixes", raw.get("unsafe-fixes",
                                                              raw.get("unsafe_fixes", False)))),
            severity={str(k).upper(): str(v).lower() for k, v in severity.items()}
            if isinstance(severity, dict) else {},
        )

    def severity_of(self, code: str) -> lsp.DiagnosticSeverity:
        """The longest matching code prefix wins; syntax errors are errors by default."""
        chosen = "error" if code == SYNTAX_ERROR else "warning"
        best = -1
        for prefix, level in self.severity.items():
            if code.startswith(prefix) and len(prefix) > best and level in _SEVERITIES:
                chosen, best = level, len(prefix)
        return _SEVERITIES[chosen]


def rule_codes(config: Config, client: ClientSettings) -> list[str]:
    """The rules in force, exactly as `eqxlint --select/--ignore/--extend-select` choose them."""
    import click

    from eqxlint.cli import _rules

    try:
        return _rules(config, list(client.select or []), list(client.ignore),
                      list(client.extend_select))
    except click.UsageError as error:
        raise ValueError(error.message) from None


# ---------------------------------------------------------------------------
# Positions


def _lines(text: str) -> list[str]:
    return text.splitlines() or [""]


def to_position(location: Location, lines: list[str], codec: PositionCodec) -> lsp.Position:
    """eqxlint's 1-based row and code-point column -> the client's 0-based units."""
    row = min(max(location.row, 1), len(lines)) if lines else 1
    line = lines[row - 1] if lines else ""
    column = min(max(location.column - 1, 0), len(line))
    return lsp.Position(line=row - 1, character=codec.client_num_units(line[:column]))


def to_range(start: Location, end: Optional[Location], lines: list[str],
             codec: PositionCodec) -> lsp.Range:
    return lsp.Range(start=to_position(start, lines, codec),
                     end=to_position(end or start, lines, codec))


def _overlaps(a: lsp.Range, b: lsp.Range) -> bool:
    def key(p: lsp.Position) -> tuple[int, int]:
        return (p.line, p.character)
    return key(a.start) <= key(b.end) and key(b.start) <= key(a.end)


def minimal_edit(before: str, after: str, codec: PositionCodec) -> Optional[lsp.TextEdit]:
    """One edit replacing only the span between the common prefix and suffix."""
    if before == after:
        return None
    start = 0
    limit = min(len(before), len(after))
    while start < limit and before[start] == after[start]:
        start += 1
    end = 0
    while end < limit - start and before[-1 - end] == after[-1 - end]:
        end += 1
    return lsp.TextEdit(range=lsp.Range(start=_offset_position(before, start, codec),
                                        end=_offset_position(before, len(before) - end, codec)),
                        new_text=after[start:len(after) - end])


def _offset_position(text: str, offset: int, codec: PositionCodec) -> lsp.Position:
    line = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    return lsp.Position(line=line, character=codec.client_num_units(text[line_start:offset]))


# ---------------------------------------------------------------------------
# Project awareness: the linter's project index, with the open buffers as overlays


def sync_overlays(overlays: dict[Path, str], layout_changed: bool) -> "ProjectIndex":
    """The process's project index, reading open buffers instead of their files.

    Called on the worker thread only (the index is not shared between threads).
    """
    from eqxlint.semantics.project import shared_index

    index = shared_index()
    if layout_changed:
        index.forget_layout()
    for path in [p for p in index.overlays if p not in overlays]:
        index.set_overlay(path, None)  # closed: the file on disk counts again
    for path, text in overlays.items():
        if index.overlays.get(path) != text:
            index.set_overlay(path, text)
    return index


def find_dependents(changed: Path, documents: list[tuple[str, Path, str]],
                    overlays: dict[Path, str], layout_changed: bool) -> list[str]:
    """The documents whose project imports reach the changed file (directly or not)."""
    index = sync_overlays(overlays, layout_changed)
    target = Path(os.path.abspath(changed))
    return [key for key, path, source in documents
            if path != target and target in index.dependencies(
                path, source.encode("utf-8", "surrogatepass"))]


# ---------------------------------------------------------------------------
# What one check of one document gave


@dataclass
class Snapshot:
    """The linted text(s) of a document and their findings, per published URI.

    For a notebook, `targets` are the cell URIs and `texts` each cell's text.
    """

    key: str
    version: Optional[int]
    source: str                      # what was linted: file text, or the notebook's JSON
    display: str
    settings: Settings
    texts: dict[str, str]
    findings: dict[str, list[Diagnostic]]
    cell_uris: list[Optional[str]] = field(default_factory=list)  # notebook: cell number - 1
    internal_error: Optional[str] = None
    path: Optional[Path] = None

    @property
    def parsed(self) -> bool:
        return self.internal_error is None and not any(
            d.code == SYNTAX_ERROR for found in self.findings.values() for d in found)


@dataclass
class Job:
    """Everything a check needs, captured on the event loop so the worker reads no state."""

    key: str
    version: Optional[int]
    source: str
    display: str
    settings: Settings
    texts: dict[str, str]
    cell_uris: list[Optional[str]] = field(default_factory=list)
    path: Optional[Path] = None
    overlays: dict[Path, str] = field(default_factory=dict)  # open .py buffers
    layout_changed: bool = False


@dataclass
class Tracked:
    """An open document (text file or notebook) and its checks."""

    key: str
    notebook: bool
    task: Optional["asyncio.Task[None]"] = None
    again: bool = False
    snapshot: Optional[Snapshot] = None
    good: dict[str, list[Diagnostic]] = field(default_factory=dict)  # last findings that parsed
    published: set[str] = field(default_factory=set)


def screened(settings: Settings, text: str) -> Settings:
    """The rules whose trigger words occur in the text, to run without the pre-filter.

    The CLI's pre-filter decides whether a file is parsed at all; some rules take a
    sharper first look there (EQX502 runs Python's `ast`), which pays off when it
    spares a libcst parse. A file open in the editor that mentions any rule's words is
    parsed anyway, so the server tests only the words (sound: a rule whose words are
    missing cannot fire) and lets the rules decide on the parsed module. The findings
    are the same; the CLI's corpus test checks that the pre-filter loses none.
    """
    from eqxlint.rules.base import Rule

    data = text.encode("utf-8", "surrogatepass")
    rules = [rule for rule in settings.rule_classes() if Rule.may_fire.__func__(rule, data)]
    return Settings(rules=rules, fix=settings.fix, unsafe_fixes=settings.unsafe_fixes,
                    per_file_ignores=settings.per_file_ignores, root=settings.root,
                    use_prefilter=False, cache_dir=None)


def run_job(job: Job) -> Snapshot:
    """Lint one document (on the worker thread). Never raises."""
    try:
        sync_overlays(job.overlays, job.layout_changed)
        settings = job.settings if job.cell_uris else screened(job.settings, job.source)
        result = lint_source(job.source, job.display, settings, job.path)
    except Exception as error:  # lint_source catches rule crashes; this is a last guard
        result = FileResult(job.display, internal_error=f"{job.display}: internal error: "
                            f"{type(error).__name__}: {error}\n{traceback.format_exc()}")
    findings: dict[str, list[Diagnostic]] = {uri: [] for uri in job.texts}
    if job.cell_uris:
        for diagnostic in result.diagnostics:
            cell = diagnostic.cell
            uri = job.cell_uris[cell - 1] if cell and 0 < cell <= len(job.cell_uris) else None
            if uri is None:  # not placed in a cell: show it on the first code cell
                uri = next(iter(job.texts), None)
            if uri is not None:
                findings.setdefault(uri, []).append(diagnostic)
    else:
        findings[job.key] = list(result.diagnostics)
    return Snapshot(job.key, job.version, job.source, job.display, job.settings, job.texts,
                    findings, job.cell_uris, result.internal_error, job.path)


def notebook_json(cells: list[tuple[str, str]], metadata: Any = None) -> str:
    """An nbformat-4 notebook of (kind, text) cells: what the CLI's notebook reader takes.

    `metadata` is the notebook's own (its kernel and language) when the client sent it.
    """
    if not isinstance(metadata, dict) or not metadata:
        metadata = {"language_info": {"name": "python"}}
    data = {"cells": [{"cell_type": kind, "metadata": {}, "source": text}
                      for kind, text in cells],
            "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def cells_of(notebook_text: str) -> list[str]:
    """The cell sources of a notebook JSON (as `notebook_json` wrote it, maybe fixed)."""
    cells = json.loads(notebook_text)["cells"]
    out = []
    for cell in cells:
        source = cell.get("source", "")
        out.append("".join(source) if isinstance(source, list) else str(source))
    return out


def noqa_edit(line: str, row: int, code: str, codec: PositionCodec) -> lsp.TextEdit:
    """`# noqa: CODE` at the end of the line, or CODE added to the noqa comment there."""
    match = _NOQA_CODES.search(line)
    if match is not None:
        at = match.end("codes")
        position = lsp.Position(line=row - 1, character=codec.client_num_units(line[:at]))
        return lsp.TextEdit(range=lsp.Range(start=position, end=position),
                            new_text=f", {code}")
    content = line.rstrip()
    start = lsp.Position(line=row - 1, character=codec.client_num_units(content))
    end = lsp.Position(line=row - 1, character=codec.client_num_units(line))
    return lsp.TextEdit(range=lsp.Range(start=start, end=end), new_text=f"  # noqa: {code}")


# ---------------------------------------------------------------------------
# The server


class EqxlintServer(LanguageServer):
    """pygls server holding the open documents' checks and the resolved settings."""

    def __init__(self) -> None:
        notebooks = lsp.NotebookDocumentSyncOptions(
            notebook_selector=[lsp.NotebookDocumentFilterWithCells(
                notebook="*", cells=[lsp.NotebookCellLanguage(language="python")])],
            save=True)
        super().__init__("eqxlint", __version__,
                         text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental,
                         notebook_document_sync=notebooks)
        self.client_settings = ClientSettings()
        self.tracked: dict[str, Tracked] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eqxlint-check")
        self._configs: dict[Path, Optional[Config]] = {}
        self._layout_changed = False  # files opened, saved or watched since the last check

    # -- settings --------------------------------------------------------------

    def log(self, message: str, kind: lsp.MessageType = lsp.MessageType.Info) -> None:
        self.window_log_message(lsp.LogMessageParams(type=kind, message=message))

    def update_settings(self, raw: Any) -> None:
        self.client_settings = ClientSettings.from_client(raw)
        self._configs.clear()

    def folders(self) -> list[Path]:
        """The workspace folders (or the root) as local paths."""
        found: list[Path] = []
        for folder in self.workspace.folders.values():
            path = to_fs_path(folder.uri)
            if path:
                found.append(Path(path))
        if not found and self.workspace.root_path:
            found.append(Path(self.workspace.root_path))
        return found

    def config_for(self, path: Path) -> Optional[Config]:
        """The nearest [tool.eqxlint] config at or above the file's folder, cached per folder."""
        folder = path.parent
        if folder not in self._configs:
            try:
                found = find_config(folder)
                self._configs[folder] = load(found) if found is not None else None
            except ConfigError as error:
                self.log(f"eqxlint: {error}; using the default settings",
                         lsp.MessageType.Error)
                self._configs[folder] = None
        return self._configs[folder]

    def settings_for(self, path: Optional[Path]) -> tuple[Settings, str]:
        """The Settings the CLI would use for this file, and the name it would report."""
        config = self.config_for(path) if path is not None else None
        if config is None:
            config = Config()
            root = next((f for f in self.folders() if path is not None and _inside(path, f)),
                        path.parent if path is not None else Path.cwd())
        else:
            root = config.root
        client = self.client_settings
        try:
            codes = rule_codes(config, client)
        except ValueError as error:
            self.log(f"eqxlint: client settings: {error}; using pyproject.toml's selection",
                     lsp.MessageType.Error)
            codes = rule_codes(config, ClientSettings(unsafe_fixes=client.unsafe_fixes))
        display = display_path(path, root) if path is not None else "untitled.py"
        return Settings(rules=codes, unsafe_fixes=client.unsafe_fixes,
                        per_file_ignores=config.per_file_ignores, root=root,
                        cache_dir=None), display

    # -- documents -------------------------------------------------------------

    def job_for(self, key: str) -> Optional[Job]:
        state = self.tracked.get(key)
        if state is None:
            return None
        if state.notebook:
            notebook = self.workspace.get_notebook_document(notebook_uri=key)
            if notebook is None:
                return None
            cells: list[tuple[str, str]] = []
            texts: dict[str, str] = {}
            cell_uris: list[Optional[str]] = []
            for cell in notebook.cells:
                if cell.kind == lsp.NotebookCellKind.Code:
                    text = self.workspace.get_text_document(cell.document).source
                    cells.append(("code", text))
                    texts[cell.document] = text
                    cell_uris.append(cell.document)
                else:
                    cells.append(("markdown", ""))
                    cell_uris.append(None)
            path = _path_of(key)
            settings, display = self.settings_for(path)
            if not display.endswith(NOTEBOOK_SUFFIX):
                display += NOTEBOOK_SUFFIX
            return Job(key, notebook.version, notebook_json(cells, notebook.metadata), display,
                       settings, texts, cell_uris, path, self.overlays(), self._take_layout())
        document = self.workspace.get_text_document(key)
        source = document.source
        path = _path_of(key)
        settings, display = self.settings_for(path)
        return Job(key, document.version, source, display, settings, {key: source}, [], path,
                   self.overlays(), self._take_layout())

    def overlays(self) -> dict[Path, str]:
        """The open Python buffers, by absolute path: the project index reads these."""
        found: dict[Path, str] = {}
        for key, state in self.tracked.items():
            path = _path_of(key)
            if path is not None and not state.notebook and path.suffix in PYTHON_SUFFIXES:
                found[Path(os.path.abspath(path))] = \
                    self.workspace.get_text_document(key).source
        return found

    def _take_layout(self) -> bool:
        changed, self._layout_changed = self._layout_changed, False
        return changed

    def open(self, key: str, notebook: bool) -> None:
        self._layout_changed = True  # perhaps a file that did not exist when last resolved
        self.tracked[key] = Tracked(key, notebook)
        self.request_check(key)

    def close(self, key: str) -> None:
        state = self.tracked.pop(key, None)
        if state is not None:
            if state.task is not None:
                state.task.cancel()
            for uri in state.published:
                self.publish(uri, None, [])
            path = _path_of(key)
            if path is not None and path.suffix in PYTHON_SUFFIXES:
                # its importers now read the file on disk, not the closed buffer
                asyncio.get_running_loop().create_task(self._recheck_dependents(key, path))

    def request_check(self, key: str) -> None:
        """Check soon; a check already running for this document is superseded."""
        state = self.tracked.get(key)
        if state is None:
            return
        if state.task is not None and not state.task.done():
            state.again = True
            return
        state.task = asyncio.get_running_loop().create_task(self._check(state))

    async def _check(self, state: Tracked) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                state.again = False
                if not self.client_settings.enable:
                    state.snapshot = None
                    for uri in state.published:
                        self.publish(uri, None, [])
                    return
                job = self.job_for(state.key)
                if job is None:
                    return
                snapshot = await loop.run_in_executor(self.executor, run_job, job)
                if state.again:
                    continue  # a newer text is waiting: this result is already stale
                if self.tracked.get(state.key) is not state:
                    return  # closed meanwhile
                self.show(state, snapshot)
                return
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug in this server: log it, keep serving
            self.log(f"eqxlint: internal error while checking {state.key}: "
                     f"{type(error).__name__}: {error}\n{traceback.format_exc()}",
                     lsp.MessageType.Error)

    def show(self, state: Tracked, snapshot: Snapshot) -> None:
        """Publish a check's findings; a text that does not parse keeps the last good ones."""
        if snapshot.internal_error:
            self.log(f"eqxlint: {snapshot.internal_error} (the findings shown are from the "
                     "last successful check; please report this)", lsp.MessageType.Error)
        state.snapshot = snapshot
        if snapshot.parsed:
            state.good = {uri: list(found) for uri, found in snapshot.findings.items()}
        shown: dict[str, list[Diagnostic]] = {}
        for uri in snapshot.texts:
            if snapshot.parsed:
                shown[uri] = snapshot.findings.get(uri, [])
            else:
                errors = [d for d in snapshot.findings.get(uri, []) if d.code == SYNTAX_ERROR]
                shown[uri] = [d for d in state.good.get(uri, []) if d.code != SYNTAX_ERROR] \
                    + errors
        codec = self.workspace.position_codec
        for uri, found in shown.items():
            lines = _lines(snapshot.texts[uri])
            version = snapshot.version if not state.notebook else \
                self.workspace.get_text_document(uri).version
            self.publish(uri, version, [self.to_lsp(d, lines, codec) for d in found])
        for uri in state.published - set(shown):  # cells deleted or turned into markdown
            self.publish(uri, None, [])
        state.published = set(shown)

    def publish(self, uri: str, version: Optional[int], diagnostics: list[lsp.Diagnostic]
                ) -> None:
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version))

    def to_lsp(self, diagnostic: Diagnostic, lines: list[str], codec: PositionCodec
               ) -> lsp.Diagnostic:
        start = diagnostic.location or Location(1, 1)
        message = diagnostic.message + (f"\nhelp: {diagnostic.hint}" if diagnostic.hint else "")
        return lsp.Diagnostic(
            range=to_range(start, diagnostic.end_location, lines, codec),
            message=message, severity=self.client_settings.severity_of(diagnostic.code),
            code=diagnostic.code, code_description=lsp.CodeDescription(href=diagnostic.url),
            source=SOURCE)

    def changed(self, key: str) -> None:
        """A document's text changed: check it, and the open files that import it."""
        self.request_check(key)
        path = _path_of(key)
        if path is not None and path.suffix in PYTHON_SUFFIXES:
            asyncio.get_running_loop().create_task(self._recheck_dependents(key, path))

    async def _recheck_dependents(self, key: str, path: Path) -> None:
        """Re-check the open files whose imports reach `path`, with its unsaved text."""
        documents: list[tuple[str, Path, str]] = []
        for other, state in self.tracked.items():
            importer = _path_of(other)
            if other == key or importer is None:
                continue
            if state.notebook:
                notebook = self.workspace.get_notebook_document(notebook_uri=other)
                source = "\n".join(self.workspace.get_text_document(c.document).source
                                   for c in (notebook.cells if notebook else [])
                                   if c.kind == lsp.NotebookCellKind.Code)
            else:
                source = self.workspace.get_text_document(other).source
            documents.append((other, Path(os.path.abspath(importer)), source))
        if not documents:
            return
        try:
            found = await asyncio.get_running_loop().run_in_executor(
                self.executor, find_dependents, path, documents, self.overlays(),
                self._take_layout())
        except Exception as error:
            self.log(f"eqxlint: could not tell which files import {path}: "
                     f"{type(error).__name__}: {error}", lsp.MessageType.Error)
            return
        for dependent in found:
            self.request_check(dependent)

    # -- code actions ----------------------------------------------------------

    async def code_actions(self, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        uri = params.text_document.uri
        key = uri
        if uri not in self.tracked:
            notebook = self.workspace.get_notebook_document(cell_uri=uri)
            key = notebook.uri if notebook is not None else uri
        state = self.tracked.get(key)
        if state is None or not self.client_settings.enable:
            return []
        if state.task is not None and not state.task.done():
            try:
                await asyncio.shield(state.task)  # answer for the text as it is now
            except asyncio.CancelledError:  # closed meanwhile
                return []
        snapshot = state.snapshot
        if snapshot is None or uri not in snapshot.texts:
            return []
        only = params.context.only

        def wanted(kind: str) -> bool:
            return not only or any(kind == o or kind.startswith(f"{o}.") for o in only)

        codec = self.workspace.position_codec
        lines = _lines(snapshot.texts[uri])
        actions: list[lsp.CodeAction] = []
        fixable = False
        for diagnostic in snapshot.findings.get(uri, []):
            if diagnostic.code == SYNTAX_ERROR or diagnostic.location is None:
                continue
            shown = self.to_lsp(diagnostic, lines, codec)
            fix = diagnostic.fix
            if fix is not None and fix.edits and (fix.applicability == "safe"
                                                  or snapshot.settings.unsafe_fixes):
                fixable = True
            if not _overlaps(shown.range, params.range) or not wanted(lsp.CodeActionKind.QuickFix):
                continue
            if fix is not None and fix.edits:
                safe = fix.applicability == "safe"
                edits = [lsp.TextEdit(range=to_range(e.location, e.end_location, lines, codec),
                                      new_text=e.content) for e in fix.edits]
                actions.append(lsp.CodeAction(
                    title=f"eqxlint ({diagnostic.code}): {fix.message}"
                          + ("" if safe else " (unsafe fix: review it)"),
                    kind=lsp.CodeActionKind.QuickFix, diagnostics=[shown], is_preferred=safe,
                    edit=lsp.WorkspaceEdit(changes={uri: edits})))
            row = diagnostic.noqa_row or diagnostic.location.row
            if 0 < row <= len(lines):
                actions.append(lsp.CodeAction(
                    title=f"eqxlint ({diagnostic.code}): Disable {diagnostic.code} for this line",
                    kind=lsp.CodeActionKind.QuickFix, diagnostics=[shown],
                    edit=lsp.WorkspaceEdit(changes={uri: [
                        noqa_edit(lines[row - 1], row, diagnostic.code, codec)]})))
        if fixable and wanted(FIX_ALL):
            edit = await asyncio.get_running_loop().run_in_executor(
                self.executor, _fix_all_edit, snapshot, codec)
            if edit is not None:
                actions.append(lsp.CodeAction(title="eqxlint: Fix all auto-fixable problems",
                                              kind=FIX_ALL, edit=edit))
        return actions


def _fix_all_edit(snapshot: Snapshot, codec: PositionCodec) -> Optional[lsp.WorkspaceEdit]:
    """What `eqxlint --fix` (with --unsafe-fixes when set) would write, as editor edits."""
    settings = Settings(rules=snapshot.settings.rules, fix=True,
                        unsafe_fixes=snapshot.settings.unsafe_fixes,
                        per_file_ignores=snapshot.settings.per_file_ignores,
                        root=snapshot.settings.root, cache_dir=None)
    result = lint_source(snapshot.source, snapshot.display, settings, snapshot.path)
    if result.internal_error or not result.changed or result.fixed_text is None:
        return None
    changes: dict[str, list[lsp.TextEdit]] = {}
    if snapshot.cell_uris:
        for uri, after in zip(snapshot.cell_uris, cells_of(result.fixed_text)):
            if uri is None:
                continue
            edit = minimal_edit(snapshot.texts[uri], after, codec)
            if edit is not None:
                changes[uri] = [edit]
    else:
        edit = minimal_edit(snapshot.source, result.fixed_text, codec)
        if edit is not None:
            changes[snapshot.key] = [edit]
    return lsp.WorkspaceEdit(changes=changes) if changes else None


def _path_of(uri: str) -> Optional[Path]:
    path = to_fs_path(uri) if uri.startswith("file:") else None
    return Path(path) if path else None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _is_python(document: lsp.TextDocumentItem) -> bool:
    return document.language_id == "python" or document.uri.endswith(PYTHON_SUFFIXES)


def _is_config(uri: str) -> bool:
    return uri.rsplit("/", 1)[-1] in CONFIG_NAMES


def create_server() -> EqxlintServer:
    """The server with its handlers registered."""
    server = EqxlintServer()

    @server.feature(lsp.INITIALIZE)
    def initialize(ls: EqxlintServer, params: lsp.InitializeParams) -> None:
        ls.update_settings(params.initialization_options)

    @server.feature(lsp.INITIALIZED)
    def initialized(ls: EqxlintServer, params: lsp.InitializedParams) -> None:
        ls.executor.submit(_warm_up)

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: EqxlintServer, params: lsp.DidOpenTextDocumentParams) -> None:
        document = params.text_document
        if _is_python(document) and not document.uri.endswith(NOTEBOOK_SUFFIX):
            ls.open(document.uri, notebook=False)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: EqxlintServer, params: lsp.DidChangeTextDocumentParams) -> None:
        if params.text_document.uri in ls.tracked:
            ls.changed(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE, lsp.SaveOptions(include_text=False))
    def did_save(ls: EqxlintServer, params: lsp.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        if _is_config(uri):
            ls._configs.clear()
            for key in list(ls.tracked):
                ls.request_check(key)
        else:
            ls._layout_changed = True  # a new file may now exist on disk
            if uri in ls.tracked:
                ls.changed(uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: EqxlintServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.close(params.text_document.uri)

    @server.feature(lsp.NOTEBOOK_DOCUMENT_DID_OPEN)
    def notebook_open(ls: EqxlintServer, params: lsp.DidOpenNotebookDocumentParams) -> None:
        ls.open(params.notebook_document.uri, notebook=True)

    @server.feature(lsp.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def notebook_change(ls: EqxlintServer, params: lsp.DidChangeNotebookDocumentParams) -> None:
        ls.changed(params.notebook_document.uri)

    @server.feature(lsp.NOTEBOOK_DOCUMENT_DID_SAVE)
    def notebook_save(ls: EqxlintServer, params: lsp.DidSaveNotebookDocumentParams) -> None:
        ls.changed(params.notebook_document.uri)

    @server.feature(lsp.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def notebook_close(ls: EqxlintServer, params: lsp.DidCloseNotebookDocumentParams) -> None:
        ls.close(params.notebook_document.uri)

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def configuration(ls: EqxlintServer, params: lsp.DidChangeConfigurationParams) -> None:
        ls.update_settings(params.settings)
        for key in list(ls.tracked):
            ls.request_check(key)

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def watched(ls: EqxlintServer, params: lsp.DidChangeWatchedFilesParams) -> None:
        ls._layout_changed = True
        if any(_is_config(change.uri) for change in params.changes):
            ls._configs.clear()
            for key in list(ls.tracked):
                ls.request_check(key)

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(
        code_action_kinds=[lsp.CodeActionKind.QuickFix, FIX_ALL], resolve_provider=False))
    async def code_action(ls: EqxlintServer, params: lsp.CodeActionParams
                          ) -> list[lsp.CodeAction]:
        return await ls.code_actions(params)

    return server


def _warm_up() -> None:
    """Import libcst and the rules before the first file arrives."""
    try:
        import eqxlint.parse  # noqa: F401
        from eqxlint.rules import all_rules

        all_rules()
    except Exception:  # the first real check reports it
        pass


def serve() -> None:
    """Run the server over stdin/stdout until the client says exit."""
    logging.basicConfig(level=logging.WARNING, format="eqxlint server: %(message)s")
    create_server().start_io()
