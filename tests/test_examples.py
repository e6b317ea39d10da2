"""The README's demo: the fixed script trains; each mistake in the buggy one fails as
RULES.md says, and eqxlint finds exactly those three."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from eqxlint.linter import Settings, fix_text
from eqxlint.rules import select_rules

BUGGY = REPO / "examples" / "train_buggy.py"
FIXED = REPO / "examples" / "train_fixed.py"


def _run_script(source: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "train.py"
    script.write_text(source)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)


def _fixed_except(code: str) -> str:
    """The buggy script with every mistake fixed but `code`'s."""
    rules = [rule for rule in select_rules(["EQX"]) if rule.code != code]
    fixed, *_ = fix_text(BUGGY.read_text(), "train.py", Settings(rules=rules, fix=True))
    return fixed


def test_eqxlint_finds_exactly_the_three_mistakes() -> None:
    result = run_cli(str(BUGGY), "--output-format", "json")
    found = [(f["location"]["row"], f["code"]) for f in json.loads(result.output)]
    assert found == [(43, "EQX101"), (53, "EQX102"), (60, "EQX301")]
    assert run_cli(str(FIXED)).exit_code == 0


def test_the_fixed_script_trains(tmp_path: Path) -> None:
    completed = _run_script(FIXED.read_text(), tmp_path)
    assert completed.returncode == 0, completed.stderr
    trained, baseline = (float(line.split()[-1]) for line in completed.stdout.splitlines())
    assert trained < baseline / 5


@pytest.mark.parametrize("code, error", [
    # The class named is the activation's: custom_jvp for jax.nn.relu, PjitFunction for tanh.
    ("EQX102", "TypeError: zeros_like requires ndarray or scalar arguments, got <class "),
    ("EQX101", "TypeError: 'NoneType' object is not callable"),
    ("EQX301", "TypeError: Expected a callable value, got State("),
])
def test_each_mistake_fails_as_rules_md_says(tmp_path: Path, code: str, error: str) -> None:
    completed = _run_script(_fixed_except(code), tmp_path)
    assert completed.returncode != 0
    assert error in completed.stderr, completed.stderr[-2000:]
