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
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

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

# Import statements, found in bytes without parsing (for cache keys).
_IMPORT_LINE = re.compile(
    rb"^[ \t]*(?:from[ \t]+(?P<module>\.*[\w.]*)[ \t]+import[ \t]+(?P<names>\(?[\w., \t\\\r\n]+\)?)"
    rb"|import[ \t]+(?P<plain>[\w., \t]+))", re.MULTILINE)


class ProjectIndex:
    """Resolves the project's own imports to files, and keeps their Semantics."""

    def __init__(self, overlays: Optional[dict[Path, str]] = None) -> None:
        # Unsaved editor buffers: their text stands in for the file's.
        self.overlays: dict[Path, str] = {Path(os.path.abspath(p)): t
                                          for p, t in (overlays or {}).items()}
        self._roots: dict[Path, Path] = {}
        self._semantics: dict[tuple[Path, str], Optional["Semantics"]] = {}
        self._digests: dict[Path, Optional[str]] = {}
        self._resolved: dict[tuple[Path, str], Optional[tuple[Path, tuple[str, ...]]]] = {}
        self._modules: dict[tuple[Path, tuple[str, ...]], Optional[tuple[Path, tuple[str, ...]]]] = {}

    def set_overlay(self, path: Path, text: Optional[str]) -> None:
        """An editor buffer changed (or closed, with None): forget what was read of it."""
        key = Path(os.path.abspath(path))
        if text is None:
            self.overlays.pop(key, None)
        else:
            self.overlays[key] = text
        self._digests.pop(key, None)
        self._semantics = {k: v for k, v in self._semantics.items() if k[0] != key}

    def forget_layout(self) -> None:
        """Files were created, moved or deleted (an editor session): resolve imports anew."""
        self._roots.clear()
        self._resolved.clear()
        self._modules.clear()
        self._digests.clear()

    # -- finding files -------------------------------------------------------

    def root_of(self, folder: Path) -> Path:
        """The project root above `folder`: the nearest folder with a project marker."""
        cached = self._roots.get(folder)
        if cached is not None:
            return cached
        here = folder
        found = folder
        while True:
            if any((here / marker).exists() for marker in ROOT_MARKERS):
                found = here
                break
            if here.parent == here:
                break
            here = here.parent
        self._roots[folder] = found
        return found

    def search_folders(self, importer: Path) -> list[Path]:
        folder = importer.parent
        root = self.root_of(folder)
        folders: list[Path] = []
        for candidate in (folder, root, root / "src"):
            if candidate not in folders:
                folders.append(candidate)
        return folders

    def resolve(self, importer: Path, qual: str) -> Optional[tuple[Path, tuple[str, ...]]]:
        """(file of the module, the names after it) for a qualified name seen in `importer`."""
        key = (importer, qual)
        if key in self._resolved:
            return self._resolved[key]
        found = self._resolve(importer, qual)
        self._resolved[key] = found
        return found

    def _resolve(self, importer: Path, qual: str) -> Optional[tuple[Path, tuple[str, ...]]]:
        dots = len(qual) - len(qual.lstrip("."))
        parts = tuple(part for part in qual[dots:].split(".") if part)
        if dots:
            base = importer.parent
            for _ in range(dots - 1):
                base = base.parent
            return self._module_below(base, parts, True)
        if not parts or parts[0] in LIBRARIES:
            return None
        for folder in self.search_folders(importer):
            found = self._module_below(folder, parts, False)
            if found is not None and found[0] != importer:
                return found
        return None

    def _module_below(self, base: Path, parts: tuple[str, ...], relative: bool
                      ) -> Optional[tuple[Path, tuple[str, ...]]]:
        key = (base, parts if not relative else ("",) + parts)
        if key not in self._modules:
            self._modules[key] = _longest_module(base, list(parts), relative)
        return self._modules[key]

    # -- reading files -------------------------------------------------------

    def text_of(self, path: Path) -> Optional[str]:
        overlay = self.overlays.get(path)
        if overlay is not None:
            return overlay
        try:
            if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
                return None
            data = path.read_bytes()
        except OSError:
            return None
        from eqxlint.linter import DecodeError, decode

        try:
            return decode(data).text
        except DecodeError:
            return None

    def semantics_of(self, path: Path) -> Optional["Semantics"]:
        """The Semantics of a project file, built once per content; None if it cannot be read."""
        text = self.text_of(path)
        if text is None:
            return None
        key = (path, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
        if key in self._semantics:
            return self._semantics[key]
        self._semantics[key] = None  # an import cycle sees "unknown", not a loop
        import libcst as cst

        from eqxlint.semantics.inference import Semantics

        from eqxlint.syntax import cpython_refusal

        if cpython_refusal(text, str(path)) is not None:
            return None  # CPython first: input it refuses can crash libcst's native parser
        try:
            module = cst.parse_module(text)
        except Exception:  # not Python libcst can read: nothing is known of it
            return None
        semantics = Semantics.of(module, path, self)
        self._semantics[key] = semantics
        return semantics

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

    def dependencies(self, importer: Path, data: bytes, _seen: Optional[set[Path]] = None
                     ) -> list[Path]:
        """The project files `importer` imports, directly or through them (sorted)."""
        seen = _seen if _seen is not None else set()
        importer = Path(os.path.abspath(importer))
        for qual in imported_names(data):
            resolved = self.resolve(importer, qual)
            if resolved is None or resolved[0] in seen or resolved[0] == importer:
                continue
            seen.add(resolved[0])
            text = self.text_of(resolved[0])
            if text is not None:
                self.dependencies(resolved[0], text.encode("utf-8", "surrogatepass"), seen)
        return sorted(seen)

    def digest_of_dependencies(self, importer: Path, data: bytes) -> bytes:
        """What the findings of `importer` depend on besides its own bytes."""
        parts = []
        for path in self.dependencies(importer, data):
            parts.append(f"{path}\0{self._digest(path)}")
        return "\n".join(parts).encode("utf-8", "surrogatepass")

    def _digest(self, path: Path) -> Optional[str]:
        if path not in self._digests:
            text = self.text_of(path)
            self._digests[path] = None if text is None else \
                hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return self._digests[path]


_SHARED: Optional[ProjectIndex] = None


def shared_index() -> ProjectIndex:
    """The index of this process: summaries built for one file serve the next."""
    global _SHARED
    if _SHARED is None:
        _SHARED = ProjectIndex()
    return _SHARED


def imports_project_module(data: bytes) -> bool:
    """Does the source import anything that is not a known library (a cheap text test)?"""
    for qual in imported_names(data):
        head = qual.lstrip(".").split(".", 1)[0]
        if qual.startswith(".") or head not in LIBRARIES:
            return True
    return False


def imported_names(data: bytes) -> Iterable[str]:
    """Qualified names the import statements of a source mention (a superset is fine)."""
    if b"import" not in data:
        return
    for match in _IMPORT_LINE.finditer(data):
        plain = match.group("plain")
        if plain is not None:
            for item in plain.split(b","):
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


def _longest_module(base: Path, parts: list[str], allow_package_itself: bool = False
                    ) -> Optional[tuple[Path, tuple[str, ...]]]:
    """The longest prefix of `parts` that is a module file below `base`, and the rest."""
    for length in range(len(parts), 0, -1):
        folder = base.joinpath(*parts[:length - 1]) if length > 1 else base
        stem = parts[length - 1]
        for candidate in (folder / f"{stem}.py", folder / stem / "__init__.py"):
            if candidate.is_file():
                return candidate, tuple(parts[length:])
    if allow_package_itself and (base / "__init__.py").is_file():
        return base / "__init__.py", tuple(parts)
    return None
