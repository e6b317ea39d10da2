"""`--fix --unsafe-fixes` over a copy of a corpus: what changes is only the fixes.

    nice -n 10 python scripts/check_fix_corpus.py /tmp/corpus --into /tmp/fixcorpus --jobs 1

Real corpora have few fixable findings of their own, so by default each .py file of
the copy gets one of the rules' own fixable examples spliced in at module level
(appended, or inserted before a top-level statement after the docstring and the
`from __future__` imports, in the file's own line endings), and only where the file
still compiles. The snippets are every FixCase `before` and every Bad example of a
rule with a fix whose fix changes it when linted alone. Some of the spliced files are
given other modes and owners, a symbolic link and a hard link.

Then it runs `--fix --unsafe-fixes` and checks, printing counts: every changed .py
file still compiles; a second run changes nothing; each changed file is exactly its
original with the reported edits applied, and changed only inside its snippet (so no byte outside the fixes moved; how many equal
the snippet's fixed form when alone is counted: the file's own imports can give a fix
another spelling, `eqx.filter` where the file imports `equinox as eqx`); every
file's mode, owner, group and link count, and every symlink, are as before; nothing is
left behind. Exits 1 on any failure. Never touches the corpus itself.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

_LINE_END = re.compile(rb"\r\n|\r|\n")
# (mode, uid, gid) given to every n-th spliced file, so that keeping them is tested.
ODD_OWNERSHIP = ((0o755, None, None), (0o600, None, None), (0o444, None, None),
                 (0o640, 65534, 65534))


@dataclass(frozen=True)
class Snippet:
    """A rule's fixable example: its text, and its text once eqxlint has fixed it alone."""

    origin: str
    before: str
    after: str


@dataclass(frozen=True)
class Splice:
    """Where a snippet went: file bytes [offset, offset + len(before)) hold it."""

    snippet: Snippet
    offset: int
    newline: bytes


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


def run(root: Path, jobs: int, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eqxlint", ".", "--no-cache", "--unsafe-fixes",
                           "--jobs", str(jobs), *flags], cwd=root, capture_output=True,
                          timeout=7200)


def compiles(data: bytes, name: str = "<spliced>") -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(data, name, "exec", dont_inherit=True)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def fixable_snippets(jobs: int) -> tuple[list[Snippet], list[str]]:
    """Every fixable example, with its fixed form measured by running eqxlint --fix on it
    alone; problems found on the way (a FixCase whose `after` eqxlint does not write)."""
    from eqxlint.rules import all_rules
    from eqxlint.rules.base import EXPECT_MARKER

    candidates: list[tuple[str, str, Optional[str]]] = []
    for rule in all_rules():
        if rule.fix_applicability is None or not rule.default_enabled:
            continue
        for number, case in enumerate(rule.fix_examples):
            candidates.append((f"{rule.code} fix example {number}", case.source_before,
                               case.source_after))
        for number, bad in enumerate(rule.bad_examples):
            text = "\n".join(EXPECT_MARKER.sub("", row) for row in bad.source.splitlines())
            candidates.append((f"{rule.code} bad example {number}", text + "\n", None))
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="eqxlint-snippets-") as scratch:
        folder = Path(scratch)
        for index, (_, before, _) in enumerate(candidates):
            (folder / f"snippet_{index:03}.py").write_text(before, encoding="utf-8")
        completed = run(folder, jobs, "--fix")
        if b"Traceback" in completed.stderr:
            problems.append("traceback fixing the snippets alone")
        snippets = []
        for index, (origin, before, expected) in enumerate(candidates):
            after = (folder / f"snippet_{index:03}.py").read_text(encoding="utf-8")
            if expected is not None and after != expected:
                problems.append(f"{origin}: --fix alone does not give its `after`")
            if after != before and compiles(before.encode()):
                snippets.append(Snippet(origin, before, after))
    return snippets, problems


def module_boundaries(data: bytes) -> list[int]:
    """Byte offsets where a module-level statement may go: before a top-level statement
    beginning its line (after a docstring and the __future__ imports), and the end."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(data)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    starts = [0] + [match.end() for match in _LINE_END.finditer(data)]
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body.pop(0)
    while body and isinstance(body[0], ast.ImportFrom) and body[0].module == "__future__":
        body.pop(0)
    offsets = []
    for statement in body:
        decorators = getattr(statement, "decorator_list", [])
        row = decorators[0].lineno if decorators else statement.lineno
        if row - 1 < len(starts):
            first = data[starts[row - 1]:starts[row - 1] + 1]
            if (first == b"@") if decorators else (statement.col_offset == 0):
                offsets.append(starts[row - 1])
    return offsets


def splice(data: bytes, snippet: Snippet, index: int) -> Optional[tuple[bytes, Splice]]:
    """`data` with `snippet` appended (even `index`) or inserted before a top-level
    statement (odd), in the file's line endings; None unless the result compiles."""
    newline = b"\r\n" if data.count(b"\r\n") * 2 > data.count(b"\n") else b"\n"
    boundaries = module_boundaries(data)
    if not boundaries and not compiles(data):
        return None
    if index % 2 and boundaries:
        offset = boundaries[(index // 2) % len(boundaries)]
        prefix, suffix = data[:offset], data[offset:]
    else:
        prefix, suffix = data, b""
        if prefix and not prefix.endswith((b"\n", b"\r")):
            prefix += newline
    body = snippet.before.replace("\n", newline.decode()).encode()
    spliced = prefix + body + suffix
    if not compiles(spliced):
        return None
    return spliced, Splice(snippet, len(prefix), newline)


def expected_after_snippet(spliced: bytes, where: Splice) -> bytes:
    """The spliced file with the snippet replaced by the snippet's own fixed form."""
    newline = where.newline.decode()
    before = where.snippet.before.replace("\n", newline).encode()
    after = where.snippet.after.replace("\n", newline).encode()
    assert spliced[where.offset:where.offset + len(before)] == before
    return spliced[:where.offset] + after + spliced[where.offset + len(before):]


def prepare(root: Path, snippets: list[Snippet]) -> tuple[dict[str, Splice], dict[str, int]]:
    """Splice snippets into the .py files of `root` (in place), give some of them odd
    modes and owners, and add a symbolic and a hard link; counts of what was done."""
    splices: dict[str, Splice] = {}
    counts = {"py_files": 0, "not_spliced_would_not_compile": 0, "appended": 0,
              "inserted": 0, "odd_mode_or_owner": 0, "symlinks_made": 0, "hard_links_made": 0}
    files = sorted(p for p in root.rglob("*.py") if p.is_file() and not p.is_symlink())
    for index, path in enumerate(files):
        counts["py_files"] += 1
        data = path.read_bytes()
        done = splice(data, snippets[index % len(snippets)], index)
        if done is None:
            counts["not_spliced_would_not_compile"] += 1
            continue
        spliced, where = done
        path.write_bytes(spliced)
        relative = path.relative_to(root).as_posix()
        splices[relative] = where
        counts["appended" if where.offset + len(where.snippet.before) >= len(data)
               else "inserted"] += 1
        if index % 97 == 5:
            mode, uid, gid = ODD_OWNERSHIP[(index // 97) % len(ODD_OWNERSHIP)]
            path.chmod(mode)
            if uid is not None and os.geteuid() == 0:
                os.chown(path, uid, gid)
            counts["odd_mode_or_owner"] += 1
        if index % 301 == 7:
            link = path.with_name(f"link_to_{path.name}")
            link.symlink_to(path.name)
            counts["symlinks_made"] += 1
        elif index % 301 == 150:
            os.link(path, path.with_name(f"hard_link_to_{path.name}"))
            splices[path.with_name(f"hard_link_to_{path.name}").relative_to(root).as_posix()] \
                = where
            counts["hard_links_made"] += 1
    return splices, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--into", type=Path, help="the copy (kept; default: a temporary "
                        "folder, removed); must not exist")
    parser.add_argument("--no-splice", action="store_true",
                        help="only the corpus's own findings")
    parser.add_argument("--jobs", type=int, default=1)
    arguments = parser.parse_args()
    from eqxlint.diagnostics import Edit, Location
    from eqxlint.linter import apply_edits

    failures: list[str] = []
    snippets: list[Snippet] = []
    if not arguments.no_splice:
        snippets, problems = fixable_snippets(arguments.jobs)
        failures += problems
    scratch = None
    if arguments.into:
        root = arguments.into
    else:
        scratch = tempfile.mkdtemp(prefix="eqxlint-fixcheck-")
        root = Path(scratch) / "corpus"
    shutil.copytree(arguments.corpus, root, symlinks=True)
    originals = snapshot(root)
    splices, counts = prepare(root, snippets) if snippets else ({}, {})
    before = snapshot(root)
    listed = run(root, arguments.jobs, "--output-format", "json")
    edits: dict[str, list[Edit]] = {}
    for finding in json.loads(listed.stdout or b"[]"):
        if finding["fix"] and finding["cell"] is None:
            edits.setdefault(finding["filename"], []).extend(
                Edit(e["content"], Location(e["location"]["row"], e["location"]["column"]),
                     Location(e["end_location"]["row"], e["end_location"]["column"]))
                for e in finding["fix"]["edits"])
    first = run(root, arguments.jobs, "--fix")
    after = snapshot(root)
    second = run(root, arguments.jobs, "--fix")
    again = snapshot(root)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)

    changed = [p for p in before if before[p][0] == "file" and after.get(p, ("",))[0] == "file"
               and after[p][5] != before[p][5]]
    compiled = exact = as_snippet = 0
    context_differs: list[str] = []
    for path in changed:
        old, new = before[path][5], after[path][5]
        if path.endswith(".py"):
            if compiles(new, path):
                compiled += 1
            else:
                failures.append(f"{path}: no longer compiles")
            try:
                expected = apply_edits(old.decode("utf-8"), edits.get(path, [])).encode("utf-8")
            except (UnicodeDecodeError, IndexError):
                expected = None
            if expected == new:
                exact += 1
            else:
                failures.append(f"{path}: not its original plus its reported edits")
            if path in splices:
                where = splices[path]
                end = where.offset + len(where.snippet.before.replace(
                    "\n", where.newline.decode()).encode())
                if not (new.startswith(old[:where.offset]) and new.endswith(old[end:])
                        and len(new) >= len(old) - (end - where.offset)):
                    failures.append(f"{path}: bytes outside its {where.snippet.origin} "
                                    f"changed")
                if expected_after_snippet(old, where) == new:
                    as_snippet += 1
                else:  # the file's own imports may give the fix another spelling (eqx.)
                    context_differs.append(f"{path}: {where.snippet.origin}")
    unfixed = [p for p in splices if p in after and after[p][0] == "file"
               and after[p][5] == before[p][5]
               and splices[p].snippet.after != splices[p].snippet.before
               and not (p.startswith("hard_link") or "/hard_link_to_" in p)]
    failures += [f"{path}: its {splices[path].snippet.origin} was not fixed" for path in unfixed]
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
    untouched_changed = [p for p in before if p not in splices and p in originals
                         and after.get(p) != before[p] and p not in edits]
    failures += [f"{path}: changed with nothing to fix" for path in untouched_changed]
    report = {
        "corpus": str(arguments.corpus), "copy": str(arguments.into or "(temporary)"),
        "files": sum(1 for e in before.values() if e[0] == "file"),
        "symlinks": sum(1 for e in before.values() if e[0] == "link"),
        "snippets": len(snippets), "snippet_origins": sorted({s.origin.split(" ")[0]
                                                              for s in snippets}),
        **counts,
        "files_spliced": len(splices),
        "findings_listed": len(json.loads(listed.stdout or b"[]")),
        "files_with_fixes_listed": len(edits),
        "edits_listed": sum(len(v) for v in edits.values()),
        "changed_files": len(changed), "changed_files_that_compile": compiled,
        "changed_files_exactly_original_plus_edits": exact,
        "changed_files_exactly_original_with_snippet_fixed_alone": as_snippet,
        "changed_files_fixed_otherwise_than_alone": len(context_differs),
        "fixed_otherwise_than_alone": context_differs[:10],
        "spliced_but_not_fixed": len(unfixed),
        "second_run_changed": len(second_changes), "left_behind": len(extra),
        "first_exit": first.returncode, "second_exit": second.returncode,
        "first_summary": first.stdout.decode(errors="replace").strip().splitlines()[-1:],
        "tracebacks": sum(b"Traceback" in r.stderr for r in (listed, first, second)),
        "internal_errors": sum(r.stderr.count(b"internal error") for r in (listed, first,
                                                                           second)),
        "failure_count": len(failures),
        "failures": failures[:40],
    }
    print(json.dumps(report, indent=1))
    ok = not failures and not report["tracebacks"] and not report["internal_errors"]
    print("RESULT:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
