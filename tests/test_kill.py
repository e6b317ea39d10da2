"""SIGKILL in the middle of `--fix`: every file whole, no temporary file, no worker left.

Killed for real, many times, at different moments of a run over a large tree.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

BUGGY = ("import equinox as eqx\n" + "".join(f"# padding line {i}\n" for i in range(300)) +
         "model = eqx.apply_updates(eqx.filter(model, eqx.is_array), u)\n")
FIXED = BUGGY.replace("eqx.filter(model, eqx.is_array)", "model")
FILES = 400


def _tree(root: Path) -> list[Path]:
    paths = []
    for index in range(FILES):
        folder = root / f"pkg{index % 10}"
        folder.mkdir(exist_ok=True)
        path = folder / f"m{index}.py"
        path.write_text(BUGGY)
        paths.append(path)
    return paths


def _group_is_gone(group: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_sigkill_during_fix_leaves_whole_files_no_temporaries_and_no_workers(
        tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    rounds = random.Random(10)
    kills = 0
    for attempt in range(12):
        run = subprocess.Popen(
            [sys.executable, "-m", "eqxlint", "--fix", "--no-cache", "--jobs", "2", "."],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        time.sleep(rounds.uniform(0.3, 2.5))
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)  # the main process only, as a CI timeout does
            kills += 1
        run.wait(timeout=60)
        try:
            assert _group_is_gone(run.pid, within=10), "workers outlived their parent"
        finally:
            try:
                os.killpg(run.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        contents = {path.read_text() for path in paths}
        assert contents <= {BUGGY, FIXED}, "a file was left half written"
        leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".py"]
        assert leftovers == [], leftovers
        if contents == {FIXED}:  # all done: start again from broken files
            for path in paths:
                path.write_text(BUGGY)
    assert kills >= 6
