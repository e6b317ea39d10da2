"""eqxlint against Fixit, TorchFix, flake8, Ruff and a bare libcst parse, on the same files.

    benchmarks/setup-tools.sh                 # once: the other linters, in their own venv
    python benchmarks/compare.py CORPUS       # CORPUS from shared/corpus/build-corpus.sh

Every number comes from this one run on this machine; the table gives seconds of
wall time, CPU seconds (user + system, all processes), files per second, peak
memory (largest process) and each time as a ratio to eqxlint's cold single-process
run. The bare parse and eqxlint's cold run alternate, three times each by default
(`--repeat`), and the table gives each one's median: the headline ratio then compares
runs that saw the same machine. The other linters run with their default rules (Ruff
with every rule), and their exit status is ignored: only the time is compared.

eqxlint and the bare parse run with this interpreter's libcst; TorchFix pins an older
libcst in its own venv. The table names both versions. eqxlint's package is
byte-compiled first, as `pip install` does.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_TOOLS_VENV = HERE / ".venv-tools"

BARE_PARSE = r"""
import io, sys, tokenize
from pathlib import Path
import libcst
ok = failed = 0
for path in sorted(Path(sys.argv[1]).rglob("*.py")):
    data = path.read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        libcst.parse_module(data.decode(encoding))
        ok += 1
    except Exception:
        failed += 1
print(f"parsed {ok}, failed {failed}", file=sys.stderr)
"""


@dataclass
class Measure:
    label: str
    wall: float
    cpu: float
    peak_mb: float
    note: str = ""


def run(argv: list[str], cwd: Path, env: Optional[dict[str, str]] = None,
        output: Optional[Path] = None) -> Measure:
    """Wall time, CPU time of the process and its children, and peak RSS (Linux wait4)."""
    stdout = open(output, "wb") if output is not None else subprocess.DEVNULL
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    if output is not None:
        stdout.close()
    wall = time.perf_counter() - start
    process.returncode = 0  # reaped by wait4
    return Measure(" ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv)),
                   wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def interleaved_medians(first: list[str], second: list[str], cwd: Path,
                        repeat: int, second_output: Optional[Path] = None
                        ) -> tuple[Measure, Measure]:
    """Median of `repeat` runs of each command, alternating them so that both see the
    same machine (a shared machine's speed drifts more than these runs differ).
    `second_output` keeps the second command's output (of its last run)."""
    runs: tuple[list[Measure], list[Measure]] = ([], [])
    for _ in range(repeat):
        runs[0].append(run(first, cwd))
        runs[1].append(run(second, cwd, output=second_output))

    def median(measures: list[Measure]) -> Measure:
        return Measure(measures[0].label, statistics.median(m.wall for m in measures),
                       statistics.median(m.cpu for m in measures),
                       max(m.peak_mb for m in measures), f"median of {repeat}, interleaved")

    return median(runs[0]), median(runs[1])


def corpus_size(corpus: Path) -> tuple[int, int]:
    files = lines = 0
    for path in corpus.rglob("*.py"):
        files += 1
        with open(path, "rb") as stream:
            lines += sum(1 for _ in stream)
    return files, lines


def tool(name: str, tools_venv: Path) -> Optional[str]:
    candidate = tools_venv / "bin" / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def library_version(python: str, module: str) -> str:
    completed = subprocess.run([python, "-c", f"import importlib.metadata as m; "
                                f"print(m.version('{module}'))"], capture_output=True, text=True)
    return completed.stdout.strip() or "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--tools-venv", type=Path, default=DEFAULT_TOOLS_VENV)
    parser.add_argument("--skip", default="", help="comma-separated: fixit,torchfix,flake8,ruff")
    parser.add_argument("--one-file-runs", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of the bare parse and of eqxlint cold, interleaved")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    options = parser.parse_args()
    corpus = options.corpus.resolve()
    # As `pip install` does: byte-compile eqxlint once, so that no run pays for it
    # (an editable install under PYTHONDONTWRITEBYTECODE would compile at every start).
    import eqxlint

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(eqxlint.__file__).parent)],
                   check=True)
    skip = {name.strip() for name in options.skip.split(",") if name.strip()}
    files, lines = corpus_size(corpus)
    jobs = len(os.sched_getaffinity(0))
    eqxlint = [sys.executable, "-m", "eqxlint"]
    quiet = ["--output-format", "concise", "--exit-zero"]
    measures: dict[str, Measure] = {}

    def record(key: str, label: str, measure: Measure) -> None:
        measure.label = label
        measures[key] = measure
        print(f"{label}: {measure.wall:.2f} s wall, {measure.cpu:.2f} s CPU, "
              f"{measure.peak_mb:.0f} MB", file=sys.stderr)

    with tempfile.TemporaryDirectory() as scratch:
        cwd = Path(scratch)  # eqxlint's cache lands here, not in the corpus
        # The headline ratio: the two runs alternate, and each is the median of its
        # runs, so that the machine's drift (a shared machine's speed moves by a third
        # between minutes) falls on both alike.
        bare, cold = interleaved_medians(
            [sys.executable, "-c", BARE_PARSE, str(corpus)],
            eqxlint + [str(corpus), "--no-cache", "--jobs", "1"] + quiet, cwd,
            options.repeat, second_output=cwd / "prefiltered.txt")
        record("bare", "bare `libcst.parse_module` loop, 1 process", bare)
        record("cold1", "eqxlint, cold, 1 job", cold)
        record("noproject", "eqxlint, cold, 1 job, without the project index",
               run(eqxlint + [str(corpus), "--no-cache", "--jobs", "1"] + quiet, cwd,
                   env={**os.environ, "EQXLINT_NO_PROJECT_INDEX": "1"}))
        record("coldN", f"eqxlint, cold, {jobs} jobs",
               run(eqxlint + [str(corpus), "--no-cache", "--jobs", str(jobs)] + quiet, cwd))
        record("noprefilter", "eqxlint, cold, 1 job, no pre-filter (every file parsed)",
               run(eqxlint + [str(corpus), "--no-cache", "--jobs", "1", "--no-prefilter"]
                   + quiet, cwd, output=cwd / "everything.txt"))
        same_findings = (cwd / "prefiltered.txt").read_bytes() == \
            (cwd / "everything.txt").read_bytes()
        findings = (cwd / "prefiltered.txt").read_text().count(": EQX")
        run(eqxlint + [str(corpus)] + quiet, cwd)  # fill the cache
        record("warm", "eqxlint, warm (cache, nothing changed)",
               run(eqxlint + [str(corpus)] + quiet, cwd))
        one_file = REPO / "examples" / "train_buggy.py"
        linted, imported = interleaved_medians(
            eqxlint + [str(one_file), "--no-cache"] + quiet,
            [sys.executable, "-c", "import libcst, click"], cwd, options.one_file_runs)
        record("onefile", "eqxlint on one file (what pre-commit runs)", linted)
        record("imports", "`python -c \"import libcst, click\"`", imported)
        others = {
            "ruff": ["check", "--select", "ALL", "--no-cache", "--exit-zero", str(corpus)],
            "flake8": [str(corpus)],
            "torchfix": [str(corpus)],
            "fixit": ["lint", str(corpus)],
        }
        for name, arguments in others.items():
            executable = tool(name, options.tools_venv)
            if name in skip:
                continue
            if executable is None:
                print(f"{name}: not installed (benchmarks/setup-tools.sh), skipped",
                      file=sys.stderr)
                continue
            record(name, f"{name} (all cores)" if name != "ruff" else "ruff --select ALL",
                   run([executable, *arguments], cwd))

    base = measures["cold1"].wall
    tools_python = str(options.tools_venv / "bin" / "python")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    out = [
        f"Measured {now} on {platform.machine()}, {jobs} cores, Python "
        f"{platform.python_version()}; corpus: {files} .py files, {lines} lines. "
        f"libcst {library_version(sys.executable, 'libcst')} for eqxlint and the bare parse"
        + (f", {library_version(tools_python, 'libcst')} in the tools venv"
           if Path(tools_python).exists() else "") + ".",
        "",
        "| run | wall (s) | CPU (s) | files/s | peak MB | × eqxlint cold 1 job |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, m in measures.items():
        rate = "" if key in ("onefile", "imports") else f"{files / m.wall:.0f}"
        note = f" ({m.note})" if m.note else ""
        out.append(f"| {m.label}{note} | {m.wall:.2f} | {m.cpu:.2f} | {rate} | "
                   f"{m.peak_mb:.0f} | {m.wall / base:.3f} |")

    def ratio(a: str, b: str) -> str:
        if a not in measures or b not in measures:
            return "n/a"
        return f"{measures[a].wall / measures[b].wall:.3f}"

    out += [
        "",
        "| target | measured |",
        "| --- | ---: |",
        f"| eqxlint cold, 1 job ÷ bare libcst parse (≤ 0.5) | {ratio('cold1', 'bare')} |",
        f"| eqxlint cold, 1 job ÷ TorchFix (≤ 0.1) | {ratio('cold1', 'torchfix')} |",
        f"| eqxlint warm ÷ eqxlint cold, 1 job (≤ 0.05) | {ratio('warm', 'cold1')} |",
        f"| one file ÷ `import libcst, click` (≤ 1.5) | {ratio('onefile', 'imports')} |",
        f"| peak memory, whole corpus, 1 job (< 500 MB) | {measures['cold1'].peak_mb:.0f} MB |",
        f"| findings with the pre-filter = findings parsing every file | "
        f"{'yes' if same_findings else 'NO'} ({findings} findings) |",
    ]
    text = "\n".join(out) + "\n"
    print(text)
    if options.out is not None:
        options.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
