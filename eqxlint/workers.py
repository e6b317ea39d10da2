"""Worker processes that lint files, watched so that no one file can break or stall a run.

libcst's parser is native code: on some inputs it overflows its stack and the
process dies (SIGSEGV) instead of raising, and on others (long attribute chains,
huge files) it runs for minutes. Neither can be caught inside the process that
parses. So files are linted in worker processes, one file at a time, and this
module watches them:

- a worker that dies costs only the file it held: that file gets an EQX000
  ("could not be parsed"), a new worker takes its place, the run goes on;
- a file that takes more CPU time than its budget gets an EQX000 ("not analysed:
  took longer than N s"): its worker is stopped by the kernel (RLIMIT_CPU, so that
  a loaded machine does not count against the file) and replaced; a worker that
  is still at it after much longer in wall time (wall_clock_backstop) is killed too;
- workers die with the main process (Linux: PR_SET_PDEATHSIG; elsewhere they
  watch their parent's pid), so killing eqxlint never leaves them rewriting files.

Results come back in the order of the files given.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

from eqxlint.diagnostics import Diagnostic, Location

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from eqxlint.linter import FileResult, Settings

SYNTAX_ERROR = "EQX000"
DEFAULT_FILE_TIMEOUT = 60.0  # CPU seconds; libcst parses a 10,000-line file in about 2 s


def wall_clock_backstop(budget: float) -> float:
    """Wall time after which a worker is killed whatever its CPU time: a loaded machine
    (8 jobs on 2 cores) stretches CPU seconds several times over."""
    return budget * 10 + 60


def _die_with_parent(parent: int) -> None:
    """Make this process end when `parent` does (a SIGKILL of eqxlint included)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            # SIGTERM, not SIGKILL: a worker holds it for the instant a fix's new file
            # has a name but has not yet replaced the old one (files.write_source), so
            # the death of eqxlint never leaves a temporary file behind
            libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            _watch_parent(parent)
    else:
        _watch_parent(parent)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _watch_parent(parent: int) -> None:
    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _serve(connection: Connection, settings: "Settings", write: bool, parent: int) -> None:
    """A worker's life: lint the files it is sent until it is sent None."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's death ends the worker at once
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    from eqxlint.linter import lint_path

    budget = settings.file_timeout if settings.file_timeout and settings.file_timeout > 0 \
        else None
    _no_core_dumps()
    _fewer_full_collections()
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        index, path, display = job
        if budget is not None:
            _limit_cpu_time(budget)
        result = lint_path(path, display, settings, write)
        if not settings.fix:
            result.original = None  # only --fix and --diff need the text back
        connection.send((index, result))


def _fewer_full_collections() -> None:
    """A worker keeps the parsed project modules it may be asked about again, millions
    of objects that every full garbage collection walks: measured at a third of a cold
    corpus run (80 s of CPU against 54 s). Reference counts free nearly all garbage (the
    first looks break their trees' cycles, FirstLook.release), so even young collections
    find little: over the corpus the tracked objects grow by 1.3 million, and a young
    collection every 100,000 of them cost 0.2 s of a 9.5 s run for no memory (peak 235
    MB either way). One every 2 million bounds what could wait for it, at every size."""
    import gc

    gc.set_threshold(2_000_000, 50, 100)


def _no_core_dumps() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass


def _limit_cpu_time(seconds: float) -> None:
    """Let the kernel stop this process (SIGXCPU) after `seconds` more of CPU time."""
    try:
        import math
        import resource

        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = math.ceil(used.ru_utime + used.ru_stime + seconds)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ImportError, ValueError, OSError):
        pass  # no RLIMIT_CPU here: the wall-clock backstop still holds


@dataclass
class _Worker:
    process: "BaseProcess"
    connection: Connection
    job: Optional[tuple[int, Path, str]] = None
    started: float = 0.0


@dataclass
class _Pool:
    """Start, feed, watch and replace workers."""

    context: Any
    settings: "Settings"
    write: bool
    size: int
    timeout: Optional[float]
    workers: list[_Worker] = field(default_factory=list)

    def start(self) -> _Worker:
        ours, theirs = self.context.Pipe(duplex=True)
        process = self.context.Process(target=_serve, daemon=True,
                                       args=(theirs, self.settings, self.write, os.getpid()))
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        self.workers.append(worker)
        return worker

    def retire(self, worker: _Worker, kill: bool) -> None:
        self.workers.remove(worker)
        if kill and worker.process.is_alive():
            worker.process.kill()
        worker.connection.close()
        worker.process.join(timeout=5)

    def close(self) -> None:
        for worker in list(self.workers):
            try:
                worker.connection.send(None)
            except OSError:
                pass
        for worker in list(self.workers):
            worker.process.join(timeout=5)
            self.retire(worker, kill=True)


def lint_in_workers(files: Sequence[Path], displays: Sequence[str], settings: "Settings",
                    write: bool, jobs: int, method: str) -> Iterator["FileResult"]:
    """Lint `files` in up to `jobs` watched worker processes; results in order."""
    import multiprocessing

    budget = settings.file_timeout if settings.file_timeout and settings.file_timeout > 0 \
        else None
    timeout = None if budget is None else wall_clock_backstop(budget)
    pool = _Pool(multiprocessing.get_context(method), settings, write,
                 max(1, min(jobs, len(files))), timeout)
    waiting = deque((index, path, display)
                    for index, (path, display) in enumerate(zip(files, displays)))
    done: dict[int, "FileResult"] = {}
    next_index = 0
    try:
        while next_index < len(files):
            while waiting and len(pool.workers) < pool.size:
                pool.start()
            for worker in pool.workers:
                if worker.job is None and waiting:
                    worker.job = waiting.popleft()
                    worker.started = time.monotonic()
                    try:
                        worker.connection.send(worker.job)
                    except OSError:
                        pass  # it died: its sentinel says so below
            busy = [w for w in pool.workers if w.job is not None]
            if busy:
                _wait_for(pool, busy, done)
            while next_index in done:
                yield done.pop(next_index)
                next_index += 1
    finally:
        pool.close()


def _wait_for(pool: _Pool, busy: list[_Worker], done: dict[int, "FileResult"]) -> None:
    """Wait until a busy worker answers, dies or runs out of time; record what happened."""
    limit = None
    if pool.timeout is not None:
        first_deadline = min(w.started for w in busy) + pool.timeout
        limit = max(0.0, first_deadline - time.monotonic())
    handles: dict[Any, _Worker] = {}
    for worker in busy:
        handles[worker.connection] = worker
        handles[worker.process.sentinel] = worker
    ready = wait(list(handles), timeout=limit)
    answered: set[int] = set()
    for handle in ready:
        worker = handles[handle]
        if id(worker) in answered or worker.job is None:
            continue
        answered.add(id(worker))
        index, _, display = worker.job
        if handle is worker.connection or worker.connection.poll():
            try:
                got_index, result = worker.connection.recv()
            except (EOFError, OSError):
                result = None
            if result is not None and got_index == index:
                done[index] = result
                worker.job = None
                continue
        done[index] = _crashed(display, worker.process, pool.settings.file_timeout)
        worker.job = None
        pool.retire(worker, kill=True)
    if pool.timeout is None:
        return
    now = time.monotonic()
    for worker in list(busy):
        if worker.job is not None and now - worker.started >= pool.timeout:
            index, _, display = worker.job
            done[index] = _timed_out(display, pool.timeout, "of wall-clock time")
            worker.job = None
            pool.retire(worker, kill=True)


def _crashed(display: str, process: "BaseProcess", budget: Optional[float]) -> "FileResult":
    from eqxlint.linter import FileResult

    process.join(timeout=5)
    code = process.exitcode
    if budget and code == -getattr(signal, "SIGXCPU", -1000):
        return _timed_out(display, budget, "of CPU time")
    if code is not None and code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exit status {code}"
    return FileResult(display, diagnostics=[Diagnostic(
        code=SYNTAX_ERROR,
        message=f"could not be parsed: the parser crashed ({how}); this file was not checked",
        hint="Simplify the deepest nesting or the longest expression in this file",
        filename=display, location=Location(1, 1), end_location=Location(1, 1))])


def _timed_out(display: str, seconds: float, kind: str) -> "FileResult":
    from eqxlint.linter import FileResult

    return FileResult(display, diagnostics=[Diagnostic(
        code=SYNTAX_ERROR,
        message=f"not analysed: took longer than {seconds:g} s {kind}",
        hint="Raise the budget with `--file-timeout SECONDS` (or `file-timeout` in "
             "[tool.eqxlint]), or exclude the file",
        filename=display, location=Location(1, 1), end_location=Location(1, 1))])
