"""`--fix --unsafe-fixes` over a copy of a corpus: what changes is only the fixes.

    python scripts/check_fix_corpus.py /tmp/corpus

Checks, and prints as counts: every changed .py file still compiles; a second run
changes nothing; each changed file is exactly its original with the reported edits
applied (so no byte outside the fixes moved); every file's mode, owner, group and
link count, and every symlink, are as before. Exits 1 on any failure. Never touches
the corpus itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path


def snapshot(root: Path) -> dict[str, tuple]:
    """Path -> (kind, mode, uid, gid, nlink, link target or bytes)."""
    state = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        info = path.lstat()
        if path.is_symlink():
            state[relative] = ("link", os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            state[relative] = ("file", stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                               info.st_nlink, path.read_bytes())
    return state


def run(root: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eqxlint", ".", "--no-cache", "--unsafe-fixes",
                           "--jobs", "2", *flags], cwd=root, capture_output=True, timeout=7200)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    arguments = parser.parse_args()
    from eqxlint.diagnostics import Edit, Location
    from eqxlint.linter import apply_edits

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="eqxlint-fixcheck-") as scratch:
        root = Path(scratch) / "corpus"
        shutil.copytree(arguments.corpus, root, symlinks=True)
        before = snapshot(root)
        listed = run(root, "--output-format", "json")
        edits: dict[str, list[Edit]] = {}
        for finding in json.loads(listed.stdout or b"[]"):
            if finding["fix"] and finding["cell"] is None:
                edits.setdefault(finding["filename"], []).extend(
                    Edit(e["content"], Location(e["location"]["row"], e["location"]["column"]),
                         Location(e["end_location"]["row"], e["end_location"]["column"]))
                    for e in finding["fix"]["edits"])
        first = run(root, "--fix")
        after = snapshot(root)
        second = run(root, "--fix")
        again = snapshot(root)

    changed = [p for p in before if before[p][0] == "file" and after.get(p) != before[p]
               and after.get(p, ("",))[0] == "file" and after[p][5] != before[p][5]]
    compiles = exact = 0
    for path in changed:
        old, new = before[path][5], after[path][5]
        if path.endswith(".py"):
            try:
                compile(new, path, "exec", dont_inherit=True)
                compiles += 1
            except (SyntaxError, ValueError) as error:
                failures.append(f"{path}: no longer compiles: {error}")
            try:
                expected = apply_edits(old.decode("utf-8"), edits.get(path, [])).encode("utf-8")
            except (UnicodeDecodeError, IndexError):
                expected = None
            if expected == new:
                exact += 1
            else:
                failures.append(f"{path}: changed beyond its reported edits (a second fix "
                                f"pass, or bytes outside the fixes)")
    for path, entry in before.items():
        now = after.get(path)
        if now is None:
            failures.append(f"{path}: gone after --fix")
        elif entry[0] != now[0] or (entry[0] == "link" and entry != now):
            failures.append(f"{path}: was a {entry[0]}, now {now[0]} {now[1:2]}")
        elif entry[0] == "file" and entry[1:5] != now[1:5]:
            failures.append(f"{path}: mode/owner/group/links {entry[1:5]} -> {now[1:5]}")
    extra = sorted(set(after) - set(before))
    failures += [f"{path}: left behind by --fix" for path in extra]
    second_changes = [p for p in after if again.get(p) != after[p]]
    failures += [f"{path}: changed again by a second --fix" for path in second_changes]
    report = {
        "files": sum(1 for e in before.values() if e[0] == "file"),
        "symlinks": sum(1 for e in before.values() if e[0] == "link"),
        "files_with_fixes_listed": len(edits),
        "edits_listed": sum(len(v) for v in edits.values()),
        "changed_files": len(changed), "changed_files_that_compile": compiles,
        "changed_files_exactly_original_plus_edits": exact,
        "second_run_changed": len(second_changes), "left_behind": len(extra),
        "first_exit": first.returncode, "second_exit": second.returncode,
        "tracebacks": sum(b"Traceback" in r.stderr for r in (listed, first, second)),
        "failures": failures[:40],
    }
    print(json.dumps(report, indent=1))
    print("RESULT:", "ok" if not failures and not report["tracebacks"] else "FAILED")
    return 0 if not failures and not report["tracebacks"] else 1


if __name__ == "__main__":
    sys.exit(main())
