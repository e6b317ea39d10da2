"""--fix and --diff: every byte the fix does not touch is kept; writes are atomic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import libcst as cst
import pytest
from conftest import run_cli

from eqxlint.linter import Settings, fix_text, write_atomically
from eqxlint.rules import all_rules
from eqxlint.rules.base import Finding, Rule
from eqxlint.semantics import Semantics

BUGGY = (
    "# -*- coding: utf-8 -*-\n"
    "import equinox as eqx   # the library\n"
    "\n"
    "def step(model, updates):\n"
    "    # café: a comment that must survive\n"
    "    model = eqx.apply_updates(eqx.filter(model, eqx.is_array),   updates)  # trailing\n"
    "    return model\n"
)
FIXED = BUGGY.replace("eqx.filter(model, eqx.is_array)", "model")


def _fix(tmp_path: Path, data: bytes, *flags: str) -> tuple[int, bytes, str]:
    target = tmp_path / "train.py"
    target.write_bytes(data)
    result = run_cli("--fix", *flags, "train.py", cwd=tmp_path)
    return result.exit_code, target.read_bytes(), result.output


def test_fix_rewrites_in_place_and_reports_what_it_did(tmp_path: Path) -> None:
    code, after, output = _fix(tmp_path, BUGGY.encode())
    assert after == FIXED.encode()
    assert code == 0
    assert "Found 1 error (1 fixed, 0 remaining)." in output


def test_crlf_line_endings_are_kept(tmp_path: Path) -> None:
    code, after, _ = _fix(tmp_path, BUGGY.replace("\n", "\r\n").encode())
    assert after == FIXED.replace("\n", "\r\n").encode()


def test_mixed_line_endings_are_kept(tmp_path: Path) -> None:
    lines = BUGGY.splitlines(keepends=True)
    mixed = "".join(line.replace("\n", "\r\n") if i % 2 else line for i, line in enumerate(lines))
    code, after, _ = _fix(tmp_path, mixed.encode())
    assert after == mixed.replace("eqx.filter(model, eqx.is_array)", "model").encode()


def test_utf8_bom_is_kept(tmp_path: Path) -> None:
    code, after, _ = _fix(tmp_path, b"\xef\xbb\xbf" + BUGGY.encode())
    assert after == b"\xef\xbb\xbf" + FIXED.encode()


def test_declared_latin1_encoding_is_kept(tmp_path: Path) -> None:
    source = BUGGY.replace("utf-8", "latin-1")
    code, after, _ = _fix(tmp_path, source.encode("latin-1"))
    assert after == source.replace("eqx.filter(model, eqx.is_array)", "model").encode("latin-1")
    assert b"caf\xe9" in after


def test_no_trailing_newline_and_tabs_are_kept(tmp_path: Path) -> None:
    source = BUGGY.replace("    ", "\t").rstrip("\n")
    code, after, _ = _fix(tmp_path, source.encode())
    assert after == source.replace("eqx.filter(model, eqx.is_array)", "model").encode()


def test_file_mode_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "train.py"
    target.write_text(BUGGY)
    target.chmod(0o751)
    run_cli("--fix", "train.py", cwd=tmp_path)
    assert target.read_text() == FIXED
    assert target.stat().st_mode & 0o777 == 0o751


def test_diff_prints_a_patch_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "train.py"
    target.write_text(BUGGY)
    before = target.stat()
    result = run_cli("--diff", "train.py", cwd=tmp_path)
    assert result.exit_code == 1
    assert "--- a/train.py\n+++ b/train.py\n" in result.output
    assert "-    model = eqx.apply_updates(eqx.filter(model, eqx.is_array),   updates)  # trailing" \
        in result.output
    assert "+    model = eqx.apply_updates(model,   updates)  # trailing" in result.output
    assert target.read_text() == BUGGY
    assert target.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(os.listdir(tmp_path)) == ["train.py"]


def test_diff_on_clean_code_is_empty_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(FIXED)
    result = run_cli("--diff", "train.py", cwd=tmp_path)
    assert result.exit_code == 0
    assert "---" not in result.output


def test_fixing_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    _fix(tmp_path, BUGGY.encode())
    code, after, output = _fix(tmp_path, FIXED.encode())
    assert after == FIXED.encode() and "All checks passed!" in output


def test_fix_on_the_buggy_example_gives_the_fixed_example(tmp_path: Path) -> None:
    from conftest import REPO

    code, after, output = _fix(tmp_path, (REPO / "examples" / "train_buggy.py").read_bytes())
    assert after == (REPO / "examples" / "train_fixed.py").read_bytes()
    assert "Found 3 errors (3 fixed, 0 remaining)." in output


class _BreaksTheFile(Rule):
    """A rule whose fix would not parse: the engine must drop it."""

    code = "EQX998"
    name = "breaks-the-file"
    summary = what_it_does = why_bad = example = use_instead = fix_safety = "test"
    fix_applicability = "safe"

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        broken = cst.Name("placeholder")
        object.__setattr__(broken, "value", "a b c")  # libcst would refuse it as built
        for site in semantics.calls:
            yield Finding(site.node, "call", "hint", replacements=((site.node, broken),))


class _UnsafeRename(Rule):
    code = "EQX997"
    name = "unsafe-rename"
    summary = what_it_does = why_bad = example = use_instead = fix_safety = "test"
    fix_applicability = "unsafe"

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for site in semantics.calls:
            if isinstance(site.node.func, cst.Name) and site.node.func.value == "old":
                yield Finding(site.node, "call", "hint",
                              replacements=((site.node.func, cst.Name("new")),))


def test_a_fix_that_would_not_parse_is_dropped_with_a_warning() -> None:
    source = "f(x)\n"
    fixed, applied, remaining, warnings = fix_text(source, "t.py",
                                                   Settings(rules=[_BreaksTheFile], fix=True))
    assert fixed == source and applied == 0
    assert warnings == ["t.py:1:1: the EQX998 fix would not re-parse; left as it was"]
    assert [d.code for d in remaining] == ["EQX998"]


def test_unsafe_fixes_need_the_flag() -> None:
    source = "old(1)\n"
    safe_only = fix_text(source, "t.py", Settings(rules=[_UnsafeRename], fix=True))
    assert safe_only[0] == source and safe_only[1] == 0
    unsafe = fix_text(source, "t.py", Settings(rules=[_UnsafeRename], fix=True, unsafe_fixes=True))
    assert unsafe[0] == "new(1)\n" and unsafe[1] == 1


def test_atomic_write_leaves_the_file_whole_when_writing_fails(tmp_path: Path,
                                                               monkeypatch) -> None:
    target = tmp_path / "train.py"
    target.write_text(BUGGY)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        write_atomically(target, FIXED.encode())
    assert target.read_text() == BUGGY
    assert sorted(os.listdir(tmp_path)) == ["train.py"]


def test_a_failed_write_is_a_warning_and_the_file_is_untouched(tmp_path: Path,
                                                               monkeypatch) -> None:
    import eqxlint.linter as linter

    def fail(path, data):
        raise OSError("read-only file system")

    monkeypatch.setattr(linter, "write_atomically", fail)
    target = tmp_path / "train.py"
    target.write_text(BUGGY)
    result = run_cli("--fix", "train.py", cwd=tmp_path)
    assert "could not write the fixes: read-only file system" in result.output
    assert target.read_text() == BUGGY


def test_every_rule_fix_is_idempotent_on_the_examples() -> None:
    """Fix all bad examples of every rule: the result re-parses and a second pass is a no-op."""
    settings = Settings(rules=list(all_rules()), fix=True, unsafe_fixes=True)
    for rule in all_rules():
        for example in rule.bad_examples:
            if rule.code == "EQX000":
                continue
            once, _, _, warnings = fix_text(example.source, "x.py", settings)
            assert not warnings
            cst.parse_module(once)
            twice, applied, _, _ = fix_text(once, "x.py", settings)
            assert twice == once and applied == 0, (rule.code, example.note)
