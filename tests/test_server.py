"""`eqxlint server`, driven over stdio by a real LSP client (pytest-lsp's, on pygls).

Each test starts the server as a subprocess, as an editor does, and talks to it with
the protocol's own messages. Waits are for messages (with a generous ceiling), never
for time.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

pytest.importorskip("pygls")
pytest.importorskip("pytest_lsp")

from lsprotocol import types as lsp  # noqa: E402
from pygls.protocol import default_converter  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, LanguageClient, \
    register_lsp_features  # noqa: E402

from conftest import REPO, run_cli  # noqa: E402

WAIT = 60.0  # ceiling for one awaited message; a healthy server answers in well under 1 s
BUGGY = (REPO / "examples" / "train_buggy.py").read_text()
FIXED = (REPO / "examples" / "train_fixed.py").read_text()
EQX101_LINE = "    model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)\n"
UNSAFE = """\
import equinox as eqx

frozen = [model.layers[0].weight]
spec = eqx.filter(model, lambda x: eqx.is_array(x) and x not in frozen)
"""
UNSAFE_FIXED = UNSAFE.replace("x not in frozen", "not any(x is item for item in frozen)")


class Client(LanguageClient):
    """pytest-lsp's client, also keeping every publishDiagnostics in order."""

    def __init__(self) -> None:
        super().__init__(converter_factory=default_converter)
        self.published: list[lsp.PublishDiagnosticsParams] = []


def _publish(client: Client, params: lsp.PublishDiagnosticsParams) -> None:
    client.published.append(params)
    client.diagnostics[params.uri] = params.diagnostics


async def start(*command: str, initialization_options: Any = None,
                folders: Optional[list[Path]] = None, notebooks: bool = False) -> Client:
    client = Client()
    features = dict(DEFAULT_CLIENT_FEATURES)
    features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = _publish
    register_lsp_features(client, features)
    await client.start_io(*(command or (sys.executable, "-m", "eqxlint", "server")))
    capabilities = lsp.ClientCapabilities(
        notebook_document=lsp.NotebookDocumentClientCapabilities(
            synchronization=lsp.NotebookDocumentSyncClientCapabilities())
        if notebooks else None)
    result = await asyncio.wait_for(client.initialize_session(lsp.InitializeParams(
        capabilities=capabilities, initialization_options=initialization_options,
        workspace_folders=[lsp.WorkspaceFolder(uri=from_fs_path(str(f)), name=f.name)
                           for f in folders or []],
        root_uri=from_fs_path(str(folders[0])) if folders else None)), WAIT)
    client.result = result  # type: ignore[attr-defined]
    return client


async def stop(client: Client) -> int:
    await asyncio.wait_for(client.shutdown_session(), WAIT)
    code = client._server.returncode if client._server else None  # type: ignore[attr-defined]
    await client.stop()
    return code


async def next_publish(client: Client, uri: str, after: int) -> lsp.PublishDiagnosticsParams:
    """The first publishDiagnostics for `uri` at or after index `after` of client.published."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        for params in client.published[after:]:
            if params.uri == uri:
                return params
        if loop.time() > deadline:
            raise AssertionError(f"no diagnostics for {uri} within {WAIT} s; "
                                 f"got {[p.uri for p in client.published]}")
        await asyncio.sleep(0.01)


async def settle(client: Client, uri: str, version: int) -> list[lsp.Diagnostic]:
    """The diagnostics published for this version of the document."""
    index = 0
    while True:
        params = await next_publish(client, uri, index)
        index = client.published.index(params) + 1
        if params.version == version:
            return list(params.diagnostics)


def open_file(client: Client, path: Path, text: str, version: int = 1) -> str:
    uri = from_fs_path(str(path))
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(
        uri=uri, language_id="python", version=version, text=text)))
    return uri


def replace_text(client: Client, uri: str, text: str, version: int) -> None:
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)]))


def apply_edits(text: str, edits: list[lsp.TextEdit]) -> str:
    """Apply LSP text edits (ASCII text: characters are UTF-16 units)."""
    lines = text.splitlines(keepends=True)

    def offset(position: lsp.Position) -> int:
        return sum(len(line) for line in lines[:position.line]) + position.character

    for edit in sorted(edits, key=lambda e: offset(e.range.start), reverse=True):
        text = text[:offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end):]
    return text


async def actions_at(client: Client, uri: str, diagnostic: lsp.Diagnostic,
                     only: Optional[list[str]] = None) -> list[lsp.CodeAction]:
    result = await asyncio.wait_for(client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), range=diagnostic.range,
        context=lsp.CodeActionContext(diagnostics=[diagnostic], only=only))), WAIT)
    return [a for a in result or [] if isinstance(a, lsp.CodeAction)]


def codes(diagnostics: list[lsp.Diagnostic]) -> list[str]:
    return sorted(str(d.code) for d in diagnostics)


def cli_findings(path: Path) -> list[tuple[str, int]]:
    result = run_cli("--output-format", "json", "--no-cache", str(path), cwd=path.parent)
    return sorted((f["code"], f["location"]["row"]) for f in json.loads(result.output))


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


# ---------------------------------------------------------------------------


def test_the_readme_command_starts_the_server_and_answers_initialize(tmp_path: Path) -> None:
    """Every editor snippet in the README runs `eqxlint server`: that exact command."""
    command = shutil.which("eqxlint", path=str(Path(sys.executable).parent))
    assert command is not None

    async def session() -> None:
        client = await start(command, "server", folders=[tmp_path], notebooks=True)
        capabilities = client.result.capabilities  # type: ignore[attr-defined]
        assert client.result.server_info.name == "eqxlint"  # type: ignore[attr-defined]
        assert capabilities.text_document_sync is not None
        assert capabilities.notebook_document_sync is not None
        kinds = capabilities.code_action_provider.code_action_kinds
        assert lsp.CodeActionKind.QuickFix in kinds and "source.fixAll.eqxlint" in kinds
        assert await stop(client) == 0  # shutdown, then exit: a clean exit status

    run(session())


def test_buggy_file_quick_fix_and_fix_all_match_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(BUGGY)
    expected = cli_findings(path)
    assert expected, "the demo must have findings for this test to mean anything"

    async def session() -> None:
        client = await start(folders=[tmp_path])
        uri = open_file(client, path, BUGGY)
        diagnostics = await settle(client, uri, 1)
        assert sorted((str(d.code), d.range.start.line + 1) for d in diagnostics) == expected
        eqx101 = next(d for d in diagnostics if d.code == "EQX101")
        assert eqx101.code_description.href.endswith("rules/EQX101.md")
        assert eqx101.severity == lsp.DiagnosticSeverity.Warning
        assert eqx101.source == "eqxlint"
        assert "\nhelp: " in eqx101.message  # the message, then the line to write instead

        actions = await actions_at(client, uri, eqx101)
        fix = next(a for a in actions if a.is_preferred)
        assert fix.kind == lsp.CodeActionKind.QuickFix and fix.title.startswith("eqxlint (EQX101)")
        text = apply_edits(BUGGY, fix.edit.changes[uri])
        assert "model = eqx.apply_updates(model, updates)" in text
        replace_text(client, uri, text, 2)
        after = await settle(client, uri, 2)
        assert "EQX101" not in codes(after) and len(after) == len(diagnostics) - 1

        # source.fixAll: exactly what `eqxlint --fix` writes
        fix_all = await actions_at(client, uri, after[0], only=["source.fixAll"])
        assert [a.kind for a in fix_all] == ["source.fixAll.eqxlint"]
        text = apply_edits(text, fix_all[0].edit.changes[uri])
        replace_text(client, uri, text, 3)
        assert await settle(client, uri, 3) == []
        await stop(client)
        cli_copy = tmp_path / "cli" / "train.py"
        cli_copy.parent.mkdir()
        cli_copy.write_text(BUGGY)
        run_cli("--fix", "--no-cache", str(cli_copy), cwd=cli_copy.parent)
        assert text == cli_copy.read_text() == FIXED

    run(session())


def test_unsafe_fix_is_marked_and_not_preferred(tmp_path: Path) -> None:
    path = tmp_path / "spec.py"
    path.write_text(UNSAFE)

    async def session(unsafe_fixes: bool) -> None:
        client = await start(folders=[tmp_path],
                             initialization_options={"unsafeFixes": unsafe_fixes})
        uri = open_file(client, path, UNSAFE)
        diagnostics = await settle(client, uri, 1)
        eqx105 = next(d for d in diagnostics if d.code == "EQX105")
        actions = await actions_at(client, uri, eqx105)
        fixes = [a for a in actions if a.kind == lsp.CodeActionKind.QuickFix
                 and "Disable" not in a.title]
        assert len(fixes) == 1
        assert "unsafe" in fixes[0].title and not fixes[0].is_preferred
        assert apply_edits(UNSAFE, fixes[0].edit.changes[uri]) == UNSAFE_FIXED
        fix_all = await actions_at(client, uri, eqx105, only=["source.fixAll"])
        if unsafe_fixes:  # as `--fix --unsafe-fixes`
            assert apply_edits(UNSAFE, fix_all[0].edit.changes[uri]) == UNSAFE_FIXED
        else:  # as `--fix`: unsafe fixes left alone
            assert fix_all == []
        await stop(client)

    run(session(False))
    run(session(True))


def test_disable_for_this_line_adds_noqa_and_merges_with_one_there(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    text = BUGGY.replace(EQX101_LINE, EQX101_LINE.rstrip("\n") + "  # noqa: EQX999\n")
    path.write_text(text)

    async def session() -> None:
        client = await start(folders=[tmp_path])
        uri = open_file(client, path, text)
        diagnostics = await settle(client, uri, 1)
        eqx101 = next(d for d in diagnostics if d.code == "EQX101")
        actions = await actions_at(client, uri, eqx101)
        disable = next(a for a in actions if a.title.endswith("Disable EQX101 for this line"))
        new_text = apply_edits(text, disable.edit.changes[uri])
        assert "updates)  # noqa: EQX999, EQX101\n" in new_text
        replace_text(client, uri, new_text, 2)
        assert "EQX101" not in codes(await settle(client, uri, 2))

        eqx301 = next(d for d in await settle(client, uri, 2) if d.code == "EQX301")
        actions = await actions_at(client, uri, eqx301)
        disable = next(a for a in actions if a.title.endswith("Disable EQX301 for this line"))
        newer = apply_edits(new_text, disable.edit.changes[uri])
        line = newer.splitlines()[eqx301.range.start.line]
        assert line.endswith(")(baseline_key)  # noqa: EQX301")
        await stop(client)

    run(session())


def test_notebook_cells_get_their_own_diagnostics_and_fixes(tmp_path: Path) -> None:
    setup = ("import equinox as eqx\nimport jax\nimport optax\n\n"
             "model = eqx.nn.MLP(2, 2, 8, 1, key=jax.random.PRNGKey(0))\n"
             "optim = optax.adam(1e-3)\n")
    buggy = "%time x = 1\nopt_state = optim.init(model)\n"
    notebook_uri = from_fs_path(str(tmp_path / "train.ipynb"))
    cell_uris = [f"{notebook_uri}#cell{i}" for i in range(3)]

    async def session() -> None:
        client = await start(folders=[tmp_path], notebooks=True)
        client.notebook_document_did_open(lsp.DidOpenNotebookDocumentParams(
            notebook_document=lsp.NotebookDocument(
                uri=notebook_uri, notebook_type="jupyter-notebook", version=1,
                cells=[lsp.NotebookCell(kind=lsp.NotebookCellKind.Markup, document=cell_uris[0]),
                       lsp.NotebookCell(kind=lsp.NotebookCellKind.Code, document=cell_uris[1]),
                       lsp.NotebookCell(kind=lsp.NotebookCellKind.Code, document=cell_uris[2])]),
            cell_text_documents=[
                lsp.TextDocumentItem(uri=cell_uris[0], language_id="markdown", version=1,
                                     text="# Training\n"),
                lsp.TextDocumentItem(uri=cell_uris[1], language_id="python", version=1,
                                     text=setup),
                lsp.TextDocumentItem(uri=cell_uris[2], language_id="python", version=1,
                                     text=buggy)]))
        third = await settle(client, cell_uris[2], 1)
        second = await settle(client, cell_uris[1], 1)
        assert second == []
        assert codes(third) == ["EQX102"]
        assert third[0].range.start.line == 1  # row 2 of the cell, not of the joined module
        assert third[0].range.start.character == len("opt_state = ")
        assert cell_uris[0] not in client.diagnostics  # markdown is not Python

        fix_all = await actions_at(client, cell_uris[2], third[0], only=["source.fixAll"])
        assert list(fix_all[0].edit.changes) == [cell_uris[2]]  # only the cell that changes
        actions = await actions_at(client, cell_uris[2], third[0])
        fix = next(a for a in actions if a.is_preferred)
        assert apply_edits(buggy, fix_all[0].edit.changes[cell_uris[2]]) == \
            apply_edits(buggy, fix.edit.changes[cell_uris[2]])
        assert list(fix.edit.changes) == [cell_uris[2]]
        fixed = apply_edits(buggy, fix.edit.changes[cell_uris[2]])
        assert fixed == "%time x = 1\nopt_state = optim.init(eqx.filter(model, " \
                        "eqx.is_inexact_array))\n"
        client.notebook_document_did_change(lsp.DidChangeNotebookDocumentParams(
            notebook_document=lsp.VersionedNotebookDocumentIdentifier(uri=notebook_uri,
                                                                      version=2),
            change=lsp.NotebookDocumentChangeEvent(cells=lsp.NotebookDocumentCellChanges(
                text_content=[lsp.NotebookDocumentCellContentChanges(
                    document=lsp.VersionedTextDocumentIdentifier(uri=cell_uris[2], version=2),
                    changes=[lsp.TextDocumentContentChangeWholeDocument(text=fixed)])]))))
        assert await settle(client, cell_uris[2], 2) == []

        # Break cell 3 again, then delete it: its diagnostics go with it.
        client.notebook_document_did_change(lsp.DidChangeNotebookDocumentParams(
            notebook_document=lsp.VersionedNotebookDocumentIdentifier(uri=notebook_uri,
                                                                      version=3),
            change=lsp.NotebookDocumentChangeEvent(cells=lsp.NotebookDocumentCellChanges(
                text_content=[lsp.NotebookDocumentCellContentChanges(
                    document=lsp.VersionedTextDocumentIdentifier(uri=cell_uris[2], version=3),
                    changes=[lsp.TextDocumentContentChangeWholeDocument(text=buggy)])]))))
        assert codes(await settle(client, cell_uris[2], 3)) == ["EQX102"]
        mark = len(client.published)
        client.notebook_document_did_change(lsp.DidChangeNotebookDocumentParams(
            notebook_document=lsp.VersionedNotebookDocumentIdentifier(uri=notebook_uri,
                                                                      version=4),
            change=lsp.NotebookDocumentChangeEvent(cells=lsp.NotebookDocumentCellChanges(
                structure=lsp.NotebookDocumentCellChangeStructure(
                    array=lsp.NotebookCellArrayChange(start=2, delete_count=1),
                    did_close=[lsp.TextDocumentIdentifier(uri=cell_uris[2])])))))
        cleared = await next_publish(client, cell_uris[2], mark)
        assert list(cleared.diagnostics) == []
        await stop(client)

    run(session())


def test_a_change_in_model_py_rechecks_the_open_train_py_that_imports_it(tmp_path: Path) -> None:
    """train.py's finding depends on what model.py's class holds, unsaved buffer included."""
    (tmp_path / "pyproject.toml").write_text("")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    arrays_only = ("import equinox as eqx\n\n\nclass Net(eqx.Module):\n"
                   "    linear: eqx.nn.Linear\n\n    def __init__(self, key):\n"
                   "        self.linear = eqx.nn.Linear(2, 2, key=key)\n")
    with_activation = arrays_only.replace("linear: eqx.nn.Linear", "mlp: eqx.nn.MLP").replace(
        "self.linear = eqx.nn.Linear(2, 2, key=key)", "self.mlp = eqx.nn.MLP(2, 2, 8, 1, key=key)")
    (package / "model.py").write_text(arrays_only)  # on disk: arrays only, nothing to find
    train_text = ("import jax\nimport optax\nfrom .model import Net\n\n"
                  "model = Net(jax.random.PRNGKey(0))\noptim = optax.adam(1e-3)\n"
                  "opt_state = optim.init(model)\n")
    (package / "train.py").write_text(train_text)
    other_text = "import optax\n\noptim = optax.adam(1e-3)\n"
    assert cli_findings(package / "train.py") == []

    async def session() -> None:
        client = await start(folders=[tmp_path])
        model = open_file(client, package / "model.py", arrays_only)
        train = open_file(client, package / "train.py", train_text)
        other = open_file(client, package / "other.py", other_text)
        assert await settle(client, train, 1) == []
        for uri in (model, other):
            await settle(client, uri, 1)

        mark = len(client.published)
        replace_text(client, model, with_activation, 2)  # typed, not saved
        await settle(client, model, 2)
        recheck = await next_publish(client, train, mark)
        assert recheck.version == 1  # train.py itself did not change
        assert codes(list(recheck.diagnostics)) == ["EQX102"]
        assert other not in [p.uri for p in client.published[mark:]]  # only importers

        mark = len(client.published)
        client.text_document_did_close(lsp.DidCloseTextDocumentParams(
            text_document=lsp.TextDocumentIdentifier(uri=model)))  # unsaved text dropped
        back = await next_publish(client, train, mark)
        assert list(back.diagnostics) == []  # model.py on disk again: arrays only
        await stop(client)

    run(session())
    # The CLI agrees once the MLP is saved.
    (package / "model.py").write_text(with_activation)
    assert [code for code, _ in cli_findings(package / "train.py")] == ["EQX102"]


def test_a_syntax_error_mid_typing_keeps_the_last_good_diagnostics(tmp_path: Path) -> None:
    path = tmp_path / "train.py"

    async def session() -> None:
        client = await start(folders=[tmp_path])
        uri = open_file(client, path, BUGGY)
        good = await settle(client, uri, 1)
        assert good
        typing = BUGGY + "\nloss = train_step(model, state,\n"
        replace_text(client, uri, typing, 2)
        during = await settle(client, uri, 2)
        assert codes(during) == sorted(codes(good) + ["EQX000"])
        error = next(d for d in during if d.code == "EQX000")
        assert error.severity == lsp.DiagnosticSeverity.Error
        replace_text(client, uri, BUGGY.replace(EQX101_LINE, ""), 3)
        after = await settle(client, uri, 3)
        assert "EQX000" not in codes(after) and "EQX101" not in codes(after)
        await stop(client)

    run(session())


def test_a_burst_of_changes_ends_with_the_last_texts_diagnostics(tmp_path: Path) -> None:
    path = tmp_path / "train.py"

    async def session() -> None:
        client = await start(folders=[tmp_path])
        uri = open_file(client, path, BUGGY)
        await settle(client, uri, 1)
        for version in range(2, 22):  # sent without waiting, as fast typing does
            text = BUGGY if version % 2 else BUGGY.replace(EQX101_LINE, "")
            replace_text(client, uri, text, version)
        last = await settle(client, uri, 21)
        assert "EQX101" in codes(last)  # version 21 is odd: the buggy text
        versions = [p.version for p in client.published if p.uri == uri]
        assert versions == sorted(versions)  # never an older text's findings after a newer
        await stop(client)

    run(session())


def test_config_per_folder_and_client_settings(tmp_path: Path) -> None:
    quiet, loud = tmp_path / "quiet", tmp_path / "loud"
    for folder in (quiet, loud):
        folder.mkdir()
        (folder / "train.py").write_text(BUGGY)
    (quiet / "pyproject.toml").write_text('[tool.eqxlint]\nignore = ["EQX101"]\n')
    assert "EQX101" not in [c for c, _ in cli_findings(quiet / "train.py")]

    async def session() -> None:
        client = await start(folders=[quiet, loud],
                             initialization_options={"settings": {
                                 "ignore": ["EQX102"], "severity": {"EQX3": "error"}}})
        quiet_uri = open_file(client, quiet / "train.py", BUGGY)
        loud_uri = open_file(client, loud / "train.py", BUGGY)
        quiet_codes = codes(await settle(client, quiet_uri, 1))
        loud_found = await settle(client, loud_uri, 1)
        assert "EQX101" not in quiet_codes and "EQX102" not in quiet_codes and quiet_codes
        assert "EQX101" in codes(loud_found) and "EQX102" not in codes(loud_found)
        assert all((d.severity == lsp.DiagnosticSeverity.Error) == str(d.code).startswith("EQX3")
                   for d in loud_found)

        mark = len(client.published)
        client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(
            settings={"eqxlint": {"select": ["EQX101"]}}))
        update = await next_publish(client, loud_uri, mark)
        assert codes(list(update.diagnostics)) == ["EQX101"]  # --select wins over the file

        mark = len(client.published)
        client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(
            settings={"eqxlint": {"enable": False}}))
        assert list((await next_publish(client, loud_uri, mark)).diagnostics) == []
        await stop(client)

    run(session())


CRASHING_SERVER = """
import eqxlint.rules.eqx101_apply_updates_to_filtered_model as rule_module
from eqxlint.server import serve

def check(self, semantics):
    raise RuntimeError("a bug inside EQX101")

rule_module.ApplyUpdatesToFilteredModel.check = check
serve()
"""


def test_a_crash_inside_a_rule_is_logged_and_the_server_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "train.py"

    async def session() -> None:
        client = await start(sys.executable, "-c", CRASHING_SERVER, folders=[tmp_path])
        uri = open_file(client, path, BUGGY)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not any("a bug inside EQX101" in m.message for m in client.log_messages):
            assert loop.time() < deadline, "no window/logMessage about the crash"
            await asyncio.sleep(0.01)
        message = next(m for m in client.log_messages if "a bug inside EQX101" in m.message)
        assert message.type == lsp.MessageType.Error
        # Still alive: another document is checked, requests are answered.
        other = open_file(client, tmp_path / "other.py", "import os\n")
        assert await settle(client, other, 1) == []
        assert await actions_at(client, uri, lsp.Diagnostic(
            range=lsp.Range(start=lsp.Position(0, 0), end=lsp.Position(0, 1)), message="")) == []
        assert await stop(client) == 0

    run(session())


def test_the_server_module_and_a_check_do_not_import_jax() -> None:
    code = ("import sys\n"
            "from eqxlint.server import create_server, run_job, Job\n"
            "from eqxlint.linter import Settings\n"
            "from eqxlint.rules import all_codes\n"
            f"text = {BUGGY!r}\n"
            "snap = run_job(Job('file:///t.py', 1, text, 't.py', Settings(rules=all_codes()),"
            " {'file:///t.py': text}))\n"
            "assert snap.findings['file:///t.py'], snap\n"
            "create_server()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'equinox')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _readme_block(language: str, containing: str) -> str:
    text = (REPO / "README.md").read_text()
    for block in text.split(f"```{language}\n")[1:]:
        body = block.split("```", 1)[0]
        if containing in body:
            return body
    raise AssertionError(f"no {language} block with {containing!r} in README.md")


def test_readme_editor_snippets_run_the_tested_command_and_send_settings_it_reads() -> None:
    from eqxlint.config import tomllib

    from eqxlint.server import ClientSettings

    vscode = json.loads(_readme_block("json", "glspc.server.command"))
    assert [vscode["glspc.server.command"], *vscode["glspc.server.commandArguments"]] == \
        ["eqxlint", "server"]
    helix = tomllib.loads(_readme_block("toml", "[language-server.eqxlint]"))
    server = helix["language-server"]["eqxlint"]
    assert [server["command"], *server["args"]] == ["eqxlint", "server"]
    assert 'cmd = { "eqxlint", "server" }' in _readme_block("lua", "vim.lsp.config")
    assert '("eqxlint" "server")' in _readme_block("elisp", "eglot-server-programs")
    # What each editor sends: flat (VS Code, Helix), under "settings" (Neovim),
    # under the section name (eglot's workspace configuration).
    for sent in (vscode["glspc.server.initializationOptions"], server["config"],
                 {"settings": {"unsafeFixes": False}}, {"eqxlint": {"unsafeFixes": False}}):
        assert ClientSettings.from_client(sent) == ClientSettings(unsafe_fixes=False)
    for sent in ({"unsafeFixes": True, "select": "EQX1,EQX3"},
                 {"settings": {"unsafeFixes": True, "select": ["EQX1", "EQX3"]}},
                 {"eqxlint": {"unsafe-fixes": True, "select": ["EQX1", "EQX3"]}}):
        assert ClientSettings.from_client(sent) == ClientSettings(
            unsafe_fixes=True, select=["EQX1", "EQX3"])
    settings = ClientSettings.from_client({"severity": {"EQX3": "error", "EQX301": "hint"}})
    assert settings.severity_of("EQX301") == lsp.DiagnosticSeverity.Hint
    assert settings.severity_of("EQX302") == lsp.DiagnosticSeverity.Error
    assert settings.severity_of("EQX101") == lsp.DiagnosticSeverity.Warning
    assert settings.severity_of("EQX000") == lsp.DiagnosticSeverity.Error


def test_saving_pyproject_toml_rechecks_with_the_new_config(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.eqxlint]\n")

    async def session() -> None:
        client = await start(folders=[tmp_path])
        uri = open_file(client, path, BUGGY)
        assert "EQX101" in codes(await settle(client, uri, 1))
        pyproject.write_text('[tool.eqxlint]\nignore = ["EQX101"]\n')
        mark = len(client.published)
        client.text_document_did_save(lsp.DidSaveTextDocumentParams(
            text_document=lsp.TextDocumentIdentifier(uri=from_fs_path(str(pyproject)))))
        update = await next_publish(client, uri, mark)
        assert "EQX101" not in codes(list(update.diagnostics)) and update.diagnostics
        await stop(client)

    run(session())


def test_positions_are_in_the_clients_utf16_units() -> None:
    from pygls.workspace.position_codec import PositionCodec

    from eqxlint.diagnostics import Location
    from eqxlint.server import minimal_edit, to_position

    lines = ["x = '\U0001F600'; y = optim.init(model)"]
    column = lines[0].index("optim") + 1  # eqxlint: 1-based code points
    position = to_position(Location(1, column), lines, PositionCodec())
    assert position == lsp.Position(line=0, character=column - 1 + 1)  # the emoji is 2 units
    edit = minimal_edit("a\n\U0001F600b\n", "a\n\U0001F600c\n", PositionCodec())
    assert edit == lsp.TextEdit(range=lsp.Range(start=lsp.Position(1, 2), end=lsp.Position(1, 3)),
                                new_text="c")


def test_lint_source_gives_the_clis_findings_for_the_text_once_saved(tmp_path: Path) -> None:
    from eqxlint.linter import Settings, lint_path, lint_source
    from eqxlint.rules import all_codes

    settings = Settings(rules=all_codes(), root=tmp_path)
    for text, encoding in ((BUGGY, "utf-8"),
                           ("# -*- coding: latin-1 -*-\n# café\n" + BUGGY, "latin-1")):
        path = tmp_path / "train.py"
        path.write_bytes(text.encode(encoding))
        saved = lint_path(path, "train.py", settings, write=False)
        buffer = lint_source(text, "train.py", settings)
        assert saved.diagnostics and buffer.diagnostics == saved.diagnostics
        assert buffer.original == text
