"""The project index: what the project's own modules define, read from their source.

`from cnnproj.model import CNN`, `from .model import CNN`, `import cnnproj.model as M`
and re-exports through `__init__.py` resolve to files of the project; the index
builds each file's Semantics once per content (lazily: only when a rule asks what
an imported name holds) and keeps it for the rest of the run.

Where a module is looked for, in order: the importing file's folder (a script's
`from model import CNN`, as Python's sys.path[0]), the project root (the nearest
folder above with pyproject.toml, setup.cfg, setup.py or .git), and `src/` below it.
Installed third-party packages are never read: what eqxlint knows of equinox and
optax is measured (eqxlint/knowledge), and anything else is unknown.

The user's code is never imported or run.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional

if TYPE_CHECKING:
    from eqxlint.semantics.inference import Semantics

ROOT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")
# Top-level names that are libraries, never the project's own modules.
LIBRARIES = frozenset({
    "equinox", "optax", "jax", "jaxtyping", "numpy", "torch", "safetensors", "functools",
    "typing", "collections", "dataclasses", "math", "copy", "os", "sys", "builtins",
    "operator", "itertools", "abc", "flax", "haiku", "diffrax", "optimistix", "lineax",
    "scipy", "pandas", "matplotlib", "tqdm", "einops", "pathlib", "json", "re", "time",
    "argparse", "logging", "pickle", "random", "warnings", "contextlib", "enum", "wandb",
    "chex", "jaxlib", "sklearn", "seaborn", "PIL", "torchvision", "datasets", "hydra",
    "omegaconf", "yaml", "tensorflow", "tensorflow_datasets", "pytest", "__future__",
})
MAX_FILE_BYTES = 2_000_000  # a dependency bigger than this is not read
MAX_RECORDED_DIGESTS = 50_000  # an older run's digests carried into the next record
REMEMBERED_LINTED_FILES = 128

# Import statements, found in bytes without parsing (for cache keys).
# The names of `from m import ...` run to the line's end, across backslash continuations,
# or to the closing bracket.
_IMPORT_LINE = re.compile(
    rb"^[ \t]*(?:from[ \t]+(?P<module>\.*[\w.]*)[ \t]+import[ \t]*"
    rb"(?P<names>\([^)]*\)?|(?:[\w., \t]|\\\r?\n)+)"
    rb"|import[ \t]+(?P<plain>(?:[\w., \t]|\\\r?\n)+))", re.MULTILINE)


class ProjectIndex:
    """Resolves the project's own imports to files, and keeps their Semantics."""

    def __init__(self, overlays: Optional[dict[Path, str]] = None) -> None:
        # Unsaved editor buffers: their text stands in for the file's.
        self.overlays: dict[Path, str] = {Path(os.path.abspath(p)): t
                                          for p, t in (overlays or {}).items()}
        self._roots: dict[Path, Path] = {}
        self._semantics: dict[tuple[Path, str], Optional["Semantics"]] = {}
        self._digests: dict[Path, Optional[str]] = {}
        self._resolved: dict[tuple[str, str], tuple[tuple[Path, tuple[str, ...]], ...]] = {}
        # A file's own imports, by its bytes: asked for a file linted and again when it is
        # another's dependency (the bytes compare equal: the regex scan is not redone).
        self._imports_of: dict[Path, tuple[bytes, list[Path]]] = {}
        self._search_folders: dict[Path, list[Path]] = {}
        self._modules: dict[tuple[Path, tuple[str, ...]], Optional[tuple[Path, tuple[str, ...]]]] = {}
        # Files read, keyed by what stat says of them: a dependency shared by many
        # importers is read once per run (and again if it changes on disk).
        self._texts: dict[Path, tuple[tuple[int, ...], Optional[str]]] = {}
        self._dependencies: dict[tuple[Path, bytes], list[Path]] = {}
        self._views: dict[Path, tuple[str, bytes]] = {}
        self._direct: dict[Path, tuple[str, list[Path]]] = {}  # imports of one file
        self._listings: dict[str, frozenset[str]] = {}  # folder -> its entries
        self._files: dict[str, bool] = {}  # path -> whether it is a file
        # What this run saw of the file system, for the next run (see layout_record).
        self._stamps: dict[str, Optional[tuple[int, ...]]] = {}  # file read -> its stat
        self._digests_of: dict[tuple[str, str], str] = {}  # (importer, its bytes' sha) ->
        self._adopted: Optional[dict] = None  # a verified record of an earlier run
        self.layout_grew = False  # a digest was computed that no record held
        # Imported texts (ids) -> (the texts, joined, needle -> found): see mentioned().
        self._mentions: dict[tuple[int, ...], tuple[tuple[bytes, ...], bytes, dict]] = {}
        self._linted: OrderedDict[tuple[Path, str], "Semantics"] = OrderedDict()

    def set_overlay(self, path: Path, text: Optional[str]) -> None:
        """An editor buffer changed (or closed, with None): forget what was read of it."""
        key = Path(os.path.abspath(path))
        if text is None:
            self.overlays.pop(key, None)
        else:
            self.overlays[key] = text
        self._digests.pop(key, None)
        self._dependencies.clear()
        # A Semantics remembers what it inferred through its imports: those of the
        # files that import this one, however indirectly, are stale too.
        self._semantics = {k: v for k, v in self._semantics.items()
                           if k[0] != key and not self._imports(k[0], key)}
        self._linted.clear()  # the linted files are the open buffers: re-linted anyway

    def _imports(self, importer: Path, target: Path) -> bool:
        text = self.text_of(importer)
        return text is not None and \
            target in self.dependencies(importer, text.encode("utf-8", "surrogatepass"))

    def forget_layout(self) -> None:
        """Files were created, moved or deleted (an editor session): resolve imports anew."""
        self._roots.clear()
        self._resolved.clear()
        self._imports_of.clear()
        self._search_folders.clear()
        self._modules.clear()
        self._digests.clear()
        self._dependencies.clear()
        self._direct.clear()
        self._listings.clear()
        self._files.clear()
        self._stamps.clear()
        self._digests_of.clear()
        self._adopted = None
        self._texts.clear()
        self._views.clear()
        self._mentions.clear()
        self._semantics.clear()  # files moved or changed on disk: what they define too
        self._linted.clear()

    # -- finding files -------------------------------------------------------

    def root_of(self, folder: Path) -> Path:
        """The project root above `folder`: the nearest folder with a project marker."""
        # Every folder walked through is remembered: the files of a tree share their roots.
        walked: list[Path] = []
        here, found = folder, None
        while True:
            known = self._roots.get(here)
            if known is not None:
                found = known if self._is_root(known) else None
                break
            walked.append(here)
            if self._is_root(here):
                found = here
                break
            if here.parent == here:
                break
            here = here.parent
        for passed in walked:
            self._roots[passed] = found if found is not None else passed
        return found if found is not None else folder

    def _is_root(self, folder: Path) -> bool:
        """Does `folder` hold a project marker? (Read from its listing, kept per folder.)"""
        entries = self._listing(str(folder))
        return any(marker in entries for marker in ROOT_MARKERS)

    def search_folders(self, importer: Path) -> list[Path]:
        folder = importer.parent
        folders = self._search_folders.get(folder)
        if folders is None:
            root = self.root_of(folder)
            folders = []
            for candidate in (folder, root, root / "src"):
                if candidate not in folders:
                    folders.append(candidate)
            self._search_folders[folder] = folders
        return folders

    def resolve(self, importer: Path, qual: str, folder: Optional[Path] = None
                ) -> Optional[tuple[Path, tuple[str, ...]]]:
        """(file of the module, the names after it) for a qualified name seen in `importer`
        (`folder`: the importer's, when the caller has it)."""
        # What a name resolves to depends on the importer's folder, not on the importer
        # (files of one folder share most imports): cached per folder. Only an absolute
        # import that would find the importer itself looks further.
        if qual[:1] != "." and qual.split(".", 1)[0] in LIBRARIES:
            return None
        key = (str(importer.parent if folder is None else folder), qual)  # str: hashed fast
        candidates = self._resolved.get(key)
        if candidates is None:
            candidates = self._resolved[key] = self._candidates(importer, qual)
        if qual.startswith("."):
            return candidates[0] if candidates else None
        for found in candidates:
            if found[0] != importer:
                return found
        return None

    def _candidates(self, importer: Path, qual: str) -> tuple[tuple[Path, tuple[str, ...]], ...]:
        """Where `qual` may be, in search order (at most one for a relative import)."""
        dots = len(qual) - len(qual.lstrip("."))
        parts = tuple(part for part in qual[dots:].split(".") if part)
        if dots:
            base = importer.parent
            for _ in range(dots - 1):
                base = base.parent
            found = self._module_below(base, parts, True)
            return (found,) if found is not None else ()
        if not parts or parts[0] in LIBRARIES:
            return ()
        candidates = []
        for folder in self.search_folders(importer):
            if not self._has_entry(folder, parts[0]):
                continue  # most names: a library, not a module of this project
            found = self._module_below(folder, parts, False)
            if found is not None:
                candidates.append(found)
        return tuple(candidates)

    def _has_entry(self, folder: Path, name: str) -> bool:
        """Could `folder` hold module or package `name` (a file `name.py` or a folder)?"""
        entries = self._listing(str(folder))
        return f"{name}.py" in entries or name in entries

    def _module_below(self, base: Path, parts: tuple[str, ...], relative: bool
                      ) -> Optional[tuple[Path, tuple[str, ...]]]:
        """The longest prefix of `parts` that is a module file below `base`, and the rest
        (with `relative`, `base/__init__.py` itself when no prefix is). Each prefix is
        asked once: `from m import a, b, c` finds `m` once, then only asks whether `a`,
        `b`, `c` are submodules."""
        key = (base, parts if not relative else ("",) + parts)
        known = self._modules.get(key, False)
        if known is not False:
            return known  # type: ignore[return-value]
        found: Optional[tuple[Path, tuple[str, ...]]] = None
        if parts:
            folder = os.path.join(str(base), *parts[:-1])
            for candidate in (os.path.join(folder, parts[-1] + ".py"),
                              os.path.join(folder, parts[-1], "__init__.py")):
                if self._is_file(candidate):
                    found = Path(candidate), ()
                    break
            else:
                shorter = self._module_below(base, parts[:-1], relative)
                if shorter is not None:
                    found = shorter[0], shorter[1] + (parts[-1],)
        elif relative:
            package = os.path.join(str(base), "__init__.py")
            if self._is_file(package):
                found = Path(package), ()
        self._modules[key] = found
        return found

    def _is_file(self, path: str) -> bool:
        """`os.path.isfile(path)`, from one listing per folder (imports ask about many names),
        kept as the listings are (forget_layout drops both)."""
        known = self._files.get(path)
        if known is None:
            folder, name = os.path.split(path)
            known = self._files[path] = name in self._listing(folder) and os.path.isfile(path)
        return known

    def _listing(self, folder: str) -> frozenset[str]:
        entries = self._listings.get(folder)
        if entries is None:
            try:
                entries = frozenset(os.listdir(folder))
            except OSError:
                entries = frozenset()
            self._listings[folder] = entries
        return entries

    # -- reading files -------------------------------------------------------

    def text_of(self, path: Path) -> Optional[str]:
        overlay = self.overlays.get(path)
        if overlay is not None:
            return overlay
        try:
            status = path.stat()
        except OSError:
            self._stamps[str(path)] = None
            return None
        stamp = self._stamps[str(path)] = _stat_stamp(status)
        known = self._texts.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        text = _read_text(path, status.st_size)
        self._texts[path] = (stamp, text)
        return text

    def prefilter_view_of(self, path: Path) -> Optional[bytes]:
        """A project file's bytes as the pre-filter reads them (see rules.base.prefilter_view)."""
        text = self.text_of(path)
        if text is None:
            return None
        known = self._views.get(path)
        if known is not None and known[0] is text:
            return known[1]
        from eqxlint.rules.first_look import prefilter_view

        view = prefilter_view(text.encode("utf-8", "surrogatepass"))
        self._views[path] = (text, view)
        return view

    def semantics_of(self, path: Path) -> Optional["Semantics"]:
        """The Semantics of a project file, built once per content; None if it cannot be read."""
        text = self.text_of(path)
        if text is None:
            return None
        key = self._key(path, text)
        if key in self._semantics:
            return self._semantics[key]
        if key in self._linted:
            return self._linted[key]
        self._semantics[key] = None  # an import cycle sees "unknown", not a loop
        from eqxlint.parse import parse_module
        from eqxlint.semantics.inference import Semantics
        from eqxlint.syntax import cpython_refusal

        if cpython_refusal(text, str(path)) is not None:
            return None  # CPython first: input it refuses can crash libcst's native parser
        try:
            module = parse_module(text)
        except Exception:  # not Python libcst can read: nothing is known of it
            return None
        semantics = Semantics.of(module, path, self, text=text)
        self._semantics[key] = semantics
        return semantics

    def known_semantics(self, path: Path, text: str) -> Optional["Semantics"]:
        """The Semantics already built for this file with this text (as a dependency of a
        file linted earlier), or None: a file linted in the same run is parsed once."""
        key = self._key(Path(os.path.abspath(path)), text)
        return self._semantics.get(key) or self._linted.get(key)

    def remember(self, path: Path, text: str, semantics: "Semantics") -> None:
        """A linted file's Semantics, for the files that import it. Only the latest few
        are kept (a whole tree's parses would not fit in memory); an evicted one is
        parsed again if something imports it."""
        key = self._key(Path(os.path.abspath(path)), text)
        self._linted[key] = semantics
        self._linted.move_to_end(key)
        while len(self._linted) > REMEMBERED_LINTED_FILES:
            self._linted.popitem(last=False)

    @staticmethod
    def _key(path: Path, text: str) -> tuple[Path, str]:
        return path, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def definition(self, importer: Path, qual: str) -> Optional[tuple["Semantics", str]]:
        """(Semantics of the project file, top-level name) that `qual` refers to."""
        resolved = self.resolve(Path(os.path.abspath(importer)), qual)
        if resolved is None:
            return None
        path, names = resolved
        if len(names) != 1:
            return None
        semantics = self.semantics_of(path)
        if semantics is None:
            return None
        return semantics, names[0]

    # -- what a file's findings depend on ------------------------------------

    def dependencies(self, importer: Path, data: bytes) -> list[Path]:
        """The project files `importer` imports, directly or through them (sorted)."""
        importer = Path(os.path.abspath(importer))
        key = (importer, data)
        found = self._dependencies.get(key)
        if found is None:
            seen: set[Path] = set()
            pending = self._direct_dependencies(importer, data)
            while pending:
                path = pending.pop()
                if path in seen or path == importer:
                    continue
                seen.add(path)
                text = self.text_of(path)
                if text is not None:
                    known = self._direct.get(path)
                    if known is None or known[0] is not text:
                        known = (text, self._direct_dependencies(
                            path, text.encode("utf-8", "surrogatepass")))
                        self._direct[path] = known
                    pending.extend(known[1])
            found = self._dependencies[key] = sorted(seen)
        return found

    def imported_back(self, importer: Path, data: bytes) -> bool:
        """Whether a project file that `importer` imports (directly or not) imports
        `importer` again: an import cycle, through which what `importer` defines can come
        back to it as an imported name."""
        importer = Path(os.path.abspath(importer))
        for path in self.dependencies(importer, data):
            known = self._direct.get(path)
            if known is None or importer in known[1]:
                return True  # not read (say yes), or it imports the importer
        return False

    def _direct_dependencies(self, importer: Path, data: bytes) -> list[Path]:
        known = self._imports_of.get(importer)
        if known is not None and known[0] == data:
            return list(known[1])
        found = self._scan_imports(importer, data)
        self._imports_of[importer] = (data, found)
        return list(found)

    def _scan_imports(self, importer: Path, data: bytes) -> list[Path]:
        found = []
        folder = importer.parent
        for qual in imported_names(data):
            resolved = self.resolve(importer, qual, folder)
            if resolved is not None and resolved[0] != importer:
                found.append(resolved[0])
        return found

    def mentioned(self, sources: tuple[bytes, ...], needle: object,
                  matches: Callable[[object, bytes], bool]) -> bool:
        """ImportedSources.mention's memo: the texts joined once, each needle tested once."""
        key = tuple(id(text) for text in sources)
        known = self._mentions.get(key)
        if known is None or any(a is not b for a, b in zip(known[0], sources)):
            # No match spans two texts: a NUL stops every needle, and the line breaks
            # around it end a trailing comment and let `^` match where each text begins.
            known = self._mentions[key] = (sources, b"\n\0\n".join(sources), {})
            while len(self._mentions) > REMEMBERED_LINTED_FILES:
                del self._mentions[next(iter(self._mentions))]
        answers = known[2]
        if needle not in answers:
            answers[needle] = matches(needle, known[1])
        return answers[needle]

    def digest_of_dependencies(self, importer: Path, data: bytes) -> bytes:
        """What the findings of `importer` depend on besides its own bytes: a hash of the
        paths and contents of the project files it imports, directly or not (taken from an
        earlier run's record when nothing it saw has changed since: see adopt_layout)."""
        key = (os.path.abspath(importer), hashlib.sha256(data).hexdigest())
        known = self._digests_of.get(key)
        if known is None:
            self.layout_grew = True
            parts = []
            for path in self.dependencies(importer, data):
                parts.append(f"{path}\0{self._digest(path)}")
            known = self._digests_of[key] = hashlib.sha256(
                "\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
        return known.encode()

    # -- what a run saw, for the next run ---------------------------------------

    def layout_record(self) -> dict:
        """What resolving imports and digesting dependencies read of the file system in
        this run (each folder listed, by a hash of its entries; each file read, by its
        stat), with the dependency digests computed from it. Every answer of the index
        comes from these listings and files: where none has changed, the digests hold."""
        record = self._adopted or {"listings": {}, "stamps": {}, "digests": {}}
        listings = dict(record["listings"])
        listings.update((folder, _listing_hash(entries))
                        for folder, entries in self._listings.items())
        stamps = dict(record["stamps"])
        stamps.update((path, list(stamp) if stamp is not None else None)
                      for path, stamp in self._stamps.items())
        digests = dict(record["digests"]) if len(record["digests"]) < MAX_RECORDED_DIGESTS \
            else {}
        digests.update((f"{importer}\0{sha}", digest)
                       for (importer, sha), digest in self._digests_of.items())
        return {"listings": listings, "stamps": stamps, "digests": digests}

    def adopt_layout(self, record: object) -> bool:
        """Take an earlier run's dependency digests if every folder listing and file stat
        it recorded is still the same (then every import resolves as it did and every
        dependency has the bytes it had); else nothing. True if taken."""
        try:
            listings, stamps, digests = (record["listings"], record["stamps"],  # type: ignore[index]
                                         record["digests"])  # type: ignore[index]
            if not all(isinstance(value, dict) for value in (listings, stamps, digests)):
                return False
            for folder, expected in listings.items():
                if _listing_hash(self._listing(folder)) != expected:
                    return False
            for path, expected in stamps.items():
                try:
                    stamp: Optional[list[int]] = list(_stat_stamp(os.stat(path)))
                except OSError:
                    stamp = None
                if stamp != expected:
                    return False
            known = {}
            for key, digest in digests.items():
                importer, _, sha = key.partition("\0")
                if not isinstance(digest, str) or not sha:
                    return False
                known[(importer, sha)] = digest
        except (KeyError, TypeError, AttributeError):
            return False
        self._digests_of.update(known)
        self._adopted = {"listings": listings, "stamps": stamps, "digests": digests}
        return True

    def _digest(self, path: Path) -> Optional[str]:
        if path not in self._digests:
            text = self.text_of(path)
            self._digests[path] = None if text is None else \
                hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return self._digests[path]


class ImportedSources:
    """The text of the project modules one file imports, as the pre-filter reads it.

    A rule that can learn what it needs from an imported module (a model class
    holding BatchNorm, an optimizer built by a helper) asks whether that module's
    text holds the rule's words; a file whose imports hold none of them is not
    parsed for that rule. Read lazily: most files never ask.
    """

    def __init__(self, index: Optional[ProjectIndex], importer: Optional[Path],
                 data: bytes) -> None:
        self._index = index
        self._importer = importer
        self._data = data
        self._sources: Optional[list[bytes]] = None

    def imports_back(self) -> bool:
        """Whether one of the imported modules imports this file again (an import cycle)."""
        if self._index is None or self._importer is None:
            return False
        return self._index.imported_back(self._importer, self._data)

    def resolves(self, qual: str) -> bool:
        """Could the Semantics of this file learn what `qual` is from a project file?
        (False only where ProjectIndex.definition, which it asks, would find none.)"""
        if self._index is None or self._importer is None:
            return False
        return self._index.resolve(Path(os.path.abspath(self._importer)), qual) is not None

    def resolved_text(self, qual: str) -> Optional[bytes]:
        """The text (as `sources` gives it) of the project file `qual` resolves to."""
        if self._index is None or self._importer is None:
            return None
        found = self._index.resolve(Path(os.path.abspath(self._importer)), qual)
        return self._index.prefilter_view_of(found[0]) if found is not None else None

    def sources(self) -> list[bytes]:
        """The imported modules' bytes (`\n` line endings), nearest dependencies first."""
        if self._sources is None:
            self._sources = []
            if self._index is not None and self._importer is not None:
                for path in self._index.dependencies(self._importer, self._data):
                    view = self._index.prefilter_view_of(path)
                    if view is not None:
                        self._sources.append(view)
        return self._sources

    def mention(self, needle: object, matches: Callable[[object, bytes], bool]) -> bool:
        """Whether `matches(needle, text)` holds for one of the imported modules' texts.

        Files of one package import much the same modules: the answer is kept per set
        of imported texts (by identity: a changed file is a new text) and needle."""
        sources = self.sources()
        if not sources:
            return False
        if self._index is None:
            return any(matches(needle, text) for text in sources)
        return self._index.mentioned(tuple(sources), needle, matches)


def _stat_stamp(status: os.stat_result) -> tuple[int, ...]:
    """What tells a file changed without reading it: any write moves its ctime, which no
    tool sets back (an mtime can be), and a file replaced by another has a new inode."""
    return (status.st_mtime_ns, status.st_ctime_ns, status.st_size, status.st_ino)


def _listing_hash(entries: Iterable[str]) -> str:
    return hashlib.sha256("\0".join(sorted(entries)).encode("utf-8", "surrogatepass")
                          ).hexdigest()


_SHARED: Optional[ProjectIndex] = None


def shared_index() -> ProjectIndex:
    """The index of this process: summaries built for one file serve the next."""
    global _SHARED
    if _SHARED is None:
        _SHARED = ProjectIndex()
    return _SHARED


def _read_text(path: Path, size: int) -> Optional[str]:
    if not path.is_file() or size > MAX_FILE_BYTES:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    from eqxlint.linter import DecodeError, decode

    try:
        return decode(data).text
    except DecodeError:
        return None


def imports_project_module(data: bytes) -> bool:
    """Does the source import anything that is not a known library (a cheap text test)?"""
    for qual in imported_names(data):
        head = qual.lstrip(".").split(".", 1)[0]
        if qual.startswith(".") or head not in LIBRARIES:
            return True
    return False


def imported_names(data: bytes) -> Iterable[str]:
    """Qualified names the import statements of a source mention (a superset is fine)."""
    for match in _import_statements(data):
        plain = match.group("plain")
        if plain is not None:
            for item in plain.replace(b"\\", b" ").split(b","):
                name = item.strip().split()
                if name:
                    yield name[0].decode("ascii", "replace") + ".?"
            continue
        module = (match.group("module") or b"").decode("ascii", "replace")
        names = match.group("names") or b""
        for raw in re.split(rb"[,\s()\\]+", names):
            item = raw.decode("ascii", "replace")
            if item and item != "as" and item.isidentifier():
                separator = "" if module.endswith(".") or not module else "."
                yield f"{module}{separator}{item}"


def _import_statements(data: bytes) -> Iterator["re.Match[bytes]"]:
    """`_IMPORT_LINE.finditer(data)`, found faster: the pattern is tried only at the start
    of the lines that hold the word `import` (a `^` search tries every line)."""
    position = end = 0
    while True:
        at = data.find(b"import", position)
        if at < 0:
            return
        position = at + 6
        start = data.rfind(b"\n", 0, at) + 1
        if start < end:
            continue  # inside the statement found last (its bracketed names)
        match = _IMPORT_LINE.match(data, start)
        if match is not None:
            yield match
            end = match.end()
            position = max(position, end)
