"""Reading source files without blocking, and writing fixes back without harm.

Reading: only regular files are read. A FIFO, socket or device named `x.py` is
skipped with a note, never opened in blocking mode (opening a FIFO for reading
waits for a writer forever).

Writing: what the file is survives the fix. A symlink is followed, so the target
gets the fix and the link stays a link; a hard-linked file keeps its links; the
owner, group and mode stay as they were. A file with one link is replaced by a
complete new file renamed over it, so that a reader, a crash or a SIGKILL sees
either the old bytes or the new ones, never a truncated file, and no temporary
file is left behind under its own name (Linux: the new file has no name until
the moment before the rename).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]
TEMPORARY_SUFFIX = ".eqxlint-tmp"

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


class NotARegularFile(OSError):
    """The path names something other than a regular file; `kind` says what."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"skipped: {kind}, not a regular file")
        self.kind = kind


def read_source(path: PathLike) -> bytes:
    """The bytes of a regular file. Raises NotARegularFile for anything else, OSError
    when it cannot be read. Never blocks: FIFOs and devices are opened non-blocking,
    recognised and closed unread."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise NotARegularFile(_KINDS.get(stat.S_IFMT(status.st_mode), "not a file"))
        chunks = []
        size = max(status.st_size + 1, 1 << 16)
        while True:
            chunk = os.read(descriptor, size)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def write_source(path: PathLike, data: bytes) -> None:
    """Give the file at `path` the contents `data`, keeping links, owner, group and mode.

    Raises OSError (the file is then as it was) when it cannot be done.
    """
    target = os.path.realpath(path)  # a symlink: write the file it points to
    status = os.stat(target)
    if not stat.S_ISREG(status.st_mode):
        raise NotARegularFile(_KINDS.get(stat.S_IFMT(status.st_mode), "not a file"))
    if status.st_nlink > 1:
        _rewrite_in_place(target, data)  # a rename would split the hard links
        return
    try:
        _replace(target, data, status)
    except _OwnerNotKept:
        _rewrite_in_place(target, data)  # the inode keeps its owner


class _OwnerNotKept(Exception):
    """The new file could not be given the old one's owner (only root can chown)."""


def _replace(target: str, data: bytes, status: os.stat_result) -> None:
    """Write a new file beside `target` and rename it over `target`."""
    folder = os.path.dirname(target) or "."
    if _replace_from_nameless_file(folder, target, data, status):
        return
    with _termination_held():  # no fsync: it would keep the temporary name alive longer
        replace_through_temporary(target, data, f".{os.path.basename(target)}.",
                                  TEMPORARY_SUFFIX,
                                  lambda descriptor: _copy_owner_and_mode(descriptor, status))


def replace_through_temporary(target: str, data: bytes, prefix: str, suffix: str,
                              prepare: Optional[Callable[[int], None]] = None) -> None:
    """Write `data` to a new file beside `target` (`prepare` may set its owner and mode
    before it is closed) and rename it over `target`; whatever fails, the new file is
    removed and `target` is as it was."""
    descriptor, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix,
                                             dir=os.path.dirname(target) or ".")
    try:
        try:
            _write_all(descriptor, data)
            if prepare is not None:
                prepare(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


_NAMELESS = {"works": hasattr(os, "O_TMPFILE") and sys.platform.startswith("linux")}


def _name_it(descriptor: int, name: str) -> None:
    """Give an O_TMPFILE a name: linkat(AT_EMPTY_PATH), else through /proc/self/fd."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, at_empty_path = -100, 0x1000
    if libc.linkat(descriptor, b"", at_fdcwd, os.fsencode(name), at_empty_path) == 0:
        return
    os.link(f"/proc/self/fd/{descriptor}", name, follow_symlinks=True)


def _replace_from_nameless_file(folder: str, target: str, data: bytes,
                                status: os.stat_result) -> bool:
    """Linux: write an O_TMPFILE (no name, so that a SIGKILL leaves nothing behind),
    name it only at the last moment, rename it over the target. False where the
    system cannot."""
    if not _NAMELESS["works"]:
        return False
    try:
        descriptor = os.open(folder, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            _NAMELESS["works"] = False
            return False
        raise
    temporary = None
    try:
        _write_all(descriptor, data)
        _copy_owner_and_mode(descriptor, status)
        os.fsync(descriptor)  # nameless: taking time here leaves nothing behind
        name = _temporary_name(target)
        with _termination_held():
            try:
                _name_it(descriptor, name)
            except OSError as error:
                if error.errno in (errno.EXDEV, errno.ENOENT, errno.EPERM, errno.EOPNOTSUPP,
                                   errno.EACCES):
                    _NAMELESS["works"] = False  # this system cannot name it: write a named one
                    return False
                raise
            temporary = name
            try:
                os.replace(temporary, target)
                temporary = None
            finally:
                if temporary is not None:
                    try:
                        os.unlink(temporary)
                    except OSError:
                        pass
        return True
    finally:
        os.close(descriptor)


_HELD_SIGNALS = tuple(getattr(signal, name) for name in
                      ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGXCPU") if hasattr(signal, name))


@contextlib.contextmanager
def _termination_held() -> Iterator[None]:
    """Hold the signals that would end this thread's process (a worker's parent-death
    SIGTERM, the CPU budget's SIGXCPU) while a temporary file has a name: they are
    delivered, and end the process, the moment the name is gone again. SIGKILL cannot
    be held; that window is two system calls long."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _temporary_name(target: str) -> str:
    folder, name = os.path.split(target)
    return os.path.join(folder, f".{name}.{os.getpid()}.{os.urandom(4).hex()}{TEMPORARY_SUFFIX}")


def _copy_owner_and_mode(descriptor: int, status: os.stat_result) -> None:
    current = os.fstat(descriptor)
    if (current.st_uid, current.st_gid) != (status.st_uid, status.st_gid):
        try:
            os.fchown(descriptor, status.st_uid, status.st_gid)
        except OSError:
            raise _OwnerNotKept() from None
    os.fchmod(descriptor, stat.S_IMODE(status.st_mode))  # after chown, which clears setuid


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


def _rewrite_in_place(target: str, data: bytes) -> None:
    """Overwrite the file's own inode (hard links and owner stay): one write from
    offset 0, then cut what is left of the old contents."""
    descriptor = os.open(target, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            offset += os.pwrite(descriptor, view[offset:], offset)
        os.ftruncate(descriptor, len(data))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def leftover_temporaries(folder: Path) -> list[Path]:
    """Temporary files eqxlint may have left in `folder` (for tests and cleanup)."""
    return sorted(p for p in folder.rglob(f"*{TEMPORARY_SUFFIX}"))
