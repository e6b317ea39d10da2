"""`[tool.eqxlint]` in the nearest pyproject.toml."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KNOWN_KEYS = {"select", "ignore", "extend-select", "per-file-ignores", "exclude",
              "extend-exclude", "file-timeout"}
DEFAULT_FILE_TIMEOUT = 60.0  # CPU seconds per file (eqxlint.workers)


class ConfigError(Exception):
    """A config file that cannot be used; the message says which and why."""


@dataclass
class Config:
    select: Optional[list[str]] = None
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    extend_exclude: list[str] = field(default_factory=list)
    file_timeout: float = DEFAULT_FILE_TIMEOUT
    path: Optional[Path] = None

    @property
    def root(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()


def find_pyproject(start: Path) -> Optional[Path]:
    """The nearest pyproject.toml at or above `start` that has a [tool.eqxlint] table."""
    folder = start.resolve()
    if folder.is_file():
        folder = folder.parent
    for candidate in [folder, *folder.parents]:
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            try:
                text = pyproject.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as error:
                if "tool.eqxlint" in text:  # ours, and broken: say so rather than ignore it
                    raise ConfigError(f"{pyproject}: not valid TOML: {error}") from None
                continue
            if "eqxlint" in data.get("tool", {}):
                return pyproject
    return None


def load(path: Path) -> Config:
    """Read [tool.eqxlint] from a pyproject.toml (or a bare eqxlint TOML file)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    table: Any = data.get("tool", {}).get("eqxlint", data if path.name != "pyproject.toml" else {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.eqxlint] must be a table")
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) in [tool.eqxlint]: {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(KNOWN_KEYS))})")

    def strings(key: str) -> Optional[list[str]]:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: `{key}` must be a list of strings")
        return value

    timeout = table.get("file-timeout", DEFAULT_FILE_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ConfigError(f"{path}: `file-timeout` must be a number of seconds (0: no limit)")
    per_file = table.get("per-file-ignores", {})
    if not isinstance(per_file, dict) or not all(
            isinstance(v, list) and all(isinstance(c, str) for c in v) for v in per_file.values()):
        raise ConfigError(f"{path}: `per-file-ignores` must map glob patterns to lists of codes")
    return Config(
        select=strings("select"),
        ignore=strings("ignore") or [],
        extend_select=strings("extend-select") or [],
        per_file_ignores={str(k): list(v) for k, v in per_file.items()},
        exclude=strings("exclude") or [],
        extend_exclude=strings("extend-exclude") or [],
        file_timeout=float(timeout),
        path=path,
    )


def resolve(explicit: Optional[str], paths: list[str]) -> Config:
    """The config in force: `--config FILE`, else the nearest pyproject, else defaults."""
    if explicit is not None:
        return load(Path(explicit))
    start = Path(paths[0]) if paths and paths[0] != "-" else Path.cwd()
    try:
        if not start.exists():
            start = Path.cwd()
        found = find_pyproject(start)
    except OSError:  # a path we may not look into: it gets its EQX000 later
        found = find_pyproject(Path.cwd())
    return load(found) if found is not None else Config()
