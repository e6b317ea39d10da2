"""Shared helpers: run the real CLI, in process or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from eqxlint.cli import main

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, input: str | bytes | None = None) -> Result:
    """The click command in this process (fast)."""
    runner = CliRunner()
    old = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)
    finally:
        os.chdir(old)


def run_subprocess(*args: str, cwd: Path | None = None, input: bytes | None = None,
                   **kwargs) -> subprocess.CompletedProcess:
    """`python -m eqxlint ...` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "eqxlint", *args], cwd=cwd, input=input,
                          capture_output=True, timeout=300, **kwargs)


@pytest.fixture
def cli():
    return run_cli
