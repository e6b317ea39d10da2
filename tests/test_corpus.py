"""On real code (opt-in): no crash, and the pre-filter changes no finding.

Runs only when EQXLINT_CORPUS names a folder built by shared/corpus/build-corpus.sh:
    EQXLINT_CORPUS=/tmp/corpus python -m pytest tests/test_corpus.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_subprocess

CORPUS = os.environ.get("EQXLINT_CORPUS")

pytestmark = pytest.mark.skipif(not CORPUS, reason="set EQXLINT_CORPUS to a built corpus")


def _findings(*flags: str) -> tuple[int, list[dict], str]:
    completed = run_subprocess(str(Path(CORPUS or ".").resolve()), "--no-cache",
                               "--output-format", "json", *flags)
    return completed.returncode, json.loads(completed.stdout), completed.stderr.decode()


def test_the_corpus_runs_clean_of_crashes_and_the_prefilter_loses_nothing() -> None:
    code, prefiltered, errors = _findings()
    assert code in (0, 1), errors
    assert "internal error" not in errors and "Traceback" not in errors
    assert [f for f in prefiltered if f["code"] == "EQX000"] == []
    _, everything, _ = _findings("--no-prefilter")
    assert prefiltered == everything
