"""Settings from `[tool.eqxlint]`, found per file as Ruff finds its own.

For each file, the nearest folder at or above it holding `.eqxlint.toml`,
`eqxlint.toml` or a `pyproject.toml` with a `[tool.eqxlint]` table gives its settings
(in that order of preference within one folder, as Ruff prefers `.ruff.toml`, then
`ruff.toml`, then `pyproject.toml`). `extend = "../base.toml"` inherits another file's
settings: the extending file's own keys win, `extend-*` keys add to the inherited ones,
and rule selections apply in order (the base's first). Relative paths and glob
patterns are resolved from the folder of the file that wrote them.

`--config FILE` replaces that search for every file; `--config 'KEY = VALUE'` (a TOML
fragment) overrides one key on top of whichever file is in force.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LIST_KEYS = ("select", "ignore", "extend-select", "exclude", "extend-exclude")
MAP_KEYS = ("per-file-ignores", "extend-per-file-ignores")
KNOWN_KEYS = set(LIST_KEYS) | set(MAP_KEYS) | {"extend", "file-timeout"}
CONFIG_NAMES = (".eqxlint.toml", "eqxlint.toml", "pyproject.toml")
DEFAULT_FILE_TIMEOUT = 60.0  # CPU seconds per file (eqxlint.workers)


class ConfigError(Exception):
    """A config file that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Selection:
    """One layer of rule selection: `select` replaces, then `extend-select` adds, `ignore` removes."""

    select: Optional[tuple[str, ...]] = None
    ignore: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()


@dataclass
class Config:
    """The settings in force for some files, with the file they came from."""

    layers: list[Selection] = field(default_factory=list)
    # Glob patterns made absolute from the folder of the file that wrote them
    # (patterns without a `/` stay bare: they match a file's name at any depth).
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    exclude: list[tuple[str, Path]] = field(default_factory=list)  # (pattern, its folder)
    file_timeout: float = DEFAULT_FILE_TIMEOUT
    path: Optional[Path] = None
    sources: list[Path] = field(default_factory=list)  # this file and those it extends

    @property
    def root(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    # The old single-layer view, for callers that read it.
    @property
    def select(self) -> Optional[list[str]]:
        chosen = [layer.select for layer in self.layers if layer.select is not None]
        return list(chosen[-1]) if chosen else None

    @property
    def ignore(self) -> list[str]:
        return [code for layer in self.layers for code in layer.ignore]

    @property
    def extend_select(self) -> list[str]:
        return [code for layer in self.layers for code in layer.extend_select]


def _absolute(pattern: str, folder: Path) -> str:
    if pattern.startswith("!"):
        return "!" + _absolute(pattern[1:], folder)
    if "/" not in pattern.rstrip("/") or os.path.isabs(pattern):
        return pattern
    return os.path.join(os.fspath(folder), pattern[2:] if pattern.startswith("./") else pattern)


def _read_table(path: Path) -> Optional[dict[str, Any]]:
    """The `[tool.eqxlint]` table of a file (a bare table for eqxlint.toml); None if absent."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        if path.name != "pyproject.toml" or "tool.eqxlint" in text:
            raise ConfigError(f"{path}: not valid TOML: {error}") from None
        return None  # someone else's broken pyproject: not ours to judge
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        table = tool.get("eqxlint") if isinstance(tool, dict) else None
    else:
        table = data.get("tool", {}).get("eqxlint", data) if isinstance(data.get("tool"), dict) \
            else data
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.eqxlint] must be a table")
    return table


def _check(table: dict[str, Any], where: str) -> None:
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) in [tool.eqxlint]: {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(KNOWN_KEYS))})")
    for key in LIST_KEYS:
        value = table.get(key)
        if value is not None and (not isinstance(value, list)
                                  or not all(isinstance(v, str) for v in value)):
            raise ConfigError(f"{where}: `{key}` must be a list of strings")
    for key in MAP_KEYS:
        value = table.get(key, {})
        if not isinstance(value, dict) or not all(
                isinstance(v, list) and all(isinstance(c, str) for c in v)
                for v in value.values()):
            raise ConfigError(f"{where}: `{key}` must map glob patterns to lists of codes")
    timeout = table.get("file-timeout", DEFAULT_FILE_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ConfigError(f"{where}: `file-timeout` must be a number of seconds (0: no limit)")
    if "extend" in table and not isinstance(table["extend"], str):
        raise ConfigError(f"{where}: `extend` must be the path of another config file")


def _apply(base: Config, table: dict[str, Any], folder: Path) -> Config:
    """`base` with one table's keys on top (the table's folder resolves its patterns)."""
    config = replace(base, layers=list(base.layers), per_file_ignores=dict(base.per_file_ignores),
                     exclude=list(base.exclude), sources=list(base.sources))
    if any(key in table for key in ("select", "ignore", "extend-select")):
        config.layers.append(Selection(
            select=tuple(table["select"]) if table.get("select") is not None else None,
            ignore=tuple(table.get("ignore") or ()),
            extend_select=tuple(table.get("extend-select") or ())))
    if "per-file-ignores" in table:
        config.per_file_ignores = {}
    for key in MAP_KEYS:
        for pattern, codes in (table.get(key) or {}).items():
            absolute = _absolute(str(pattern), folder)
            config.per_file_ignores[absolute] = \
                config.per_file_ignores.get(absolute, []) + list(codes)
    if "file-timeout" in table:
        config.file_timeout = float(table["file-timeout"])
    if "exclude" in table:
        config.exclude = [(p, folder) for p in table["exclude"]]
    config.exclude += [(p, folder) for p in table.get("extend-exclude") or ()]
    return config


def load(path: Path, _seen: Optional[tuple[Path, ...]] = None) -> Config:
    """The settings of one config file, with whatever it extends."""
    seen = _seen or ()
    resolved = path.resolve() if path.exists() else path
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise ConfigError(f"{path}: `extend` makes a cycle: {chain}")
    table = _read_table(path)
    if table is None:
        table = {}
    _check(table, str(path))
    base = Config()
    if "extend" in table:
        target = Path(os.path.expanduser(table["extend"]))
        if not target.is_absolute():
            target = path.parent / target
        if not target.is_file():
            raise ConfigError(f"{path}: `extend` names {target}, which is not a file")
        base = load(target, (*seen, resolved))
    config = _apply(base, table, path.parent.resolve())
    config.path = path
    config.sources = [path, *base.sources]
    return config


def find_config(start: Path) -> Optional[Path]:
    """The nearest config file at or above `start` (a folder, or a file's folder)."""
    folder = start if start.is_absolute() else Path.cwd() / start
    folder = Path(os.path.normpath(folder))
    try:
        if folder.is_file():
            folder = folder.parent
    except OSError:
        folder = folder.parent
    for candidate in [folder, *folder.parents]:
        found = _config_in(candidate)
        if found is not None:
            return found
    return None


def _config_in(folder: Path) -> Optional[Path]:
    for name in CONFIG_NAMES:
        path = folder / name
        try:
            if not path.is_file():
                continue
        except OSError:
            continue
        if name != "pyproject.toml":
            return path
        if os.access(path, os.R_OK) and _read_table(path) is not None:
            return path
    return None


find_pyproject = find_config  # the old name


def parse_override(text: str) -> dict[str, Any]:
    """`--config 'select = ["EQX1"]'`: a TOML fragment of `[tool.eqxlint]` keys."""
    fragment = text.strip()
    for prefix in ("tool.eqxlint.", "lint."):
        if fragment.startswith(prefix):
            fragment = fragment[len(prefix):]
    try:
        table = tomllib.loads(fragment)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"--config {text!r}: neither a file nor a TOML `KEY = VALUE` "
                          f"({error})") from None
    _check(table, f"--config {text!r}")
    if "extend" in table:
        raise ConfigError(f"--config {text!r}: `extend` belongs in a config file")
    return table


class Resolver:
    """The config of each folder, looked up once per folder."""

    def __init__(self, explicit: Optional[Config] = None,
                 overrides: Sequence[dict[str, Any]] = ()) -> None:
        self.explicit = explicit
        self.overrides = list(overrides)
        self._by_folder: dict[Path, Config] = {}
        self._by_file: dict[Optional[Path], Config] = {}
        self._by_given: dict[str, Config] = {}  # the path as asked: discovery asks often

    def _finish(self, config: Config) -> Config:
        for table in self.overrides:
            config = _apply(config, table, Path.cwd())
        return config

    def for_path(self, path: Path) -> Config:
        """The settings for a file or folder at `path`."""
        given = str(path)
        known = self._by_given.get(given)
        if known is not None:
            return known
        config = self._for_path(path)
        self._by_given[given] = config
        return config

    def _for_path(self, path: Path) -> Config:
        if self.explicit is not None:
            key: Optional[Path] = None
        else:
            absolute = Path(os.path.abspath(path))
            folder = absolute if _is_dir(absolute) else absolute.parent
            if folder in self._by_folder:
                return self._by_folder[folder]
            key = find_config(folder)
        if key not in self._by_file:
            base = self.explicit if self.explicit is not None else \
                (load(key) if key is not None else Config())
            self._by_file[key] = self._finish(base)
        config = self._by_file[key]
        if self.explicit is None:
            self._by_folder[folder] = config
        return config


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def resolve(explicit: Optional[str], paths: list[str]) -> Config:
    """The config for the first path (kept for callers that want one config)."""
    resolver = Resolver(load(Path(explicit)) if explicit is not None else None)
    start = Path(paths[0]) if paths and paths[0] != "-" else Path.cwd()
    try:
        return resolver.for_path(start if start.exists() else Path.cwd())
    except OSError:  # a path we may not look into: it gets its EQX000 later
        return resolver.for_path(Path.cwd())
