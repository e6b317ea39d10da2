"""The rule registry: every module named `eqxNNN_<slug>.py` in this package is a rule.

Adding a rule means adding its module; no engine file changes. A rule's code is
read from its module's file name, so selecting rules imports none of them (nor
libcst): a run that finds every file in the cache stays cheap.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from eqxlint.rules.base import Rule

# Rules left out when no selection is given (each has `default_enabled = False`);
# kept here so that selecting rules imports none of them.
OFF_BY_DEFAULT = frozenset({"EQX001"})

_RULE_MODULE = re.compile(r"^eqx(\d{3})_[a-z0-9_]+$")


@lru_cache(maxsize=None)
def _rule_modules() -> dict[str, str]:
    """Code -> module name, from the file names alone."""
    modules = {}
    for info in pkgutil.iter_modules(__path__):
        match = _RULE_MODULE.match(info.name)
        if match:
            modules[f"EQX{match.group(1)}"] = info.name
    return dict(sorted(modules.items()))


def rule_names() -> dict[str, str]:
    """Code -> the rule's name (its slug), from the module names alone (no imports)."""
    return {code: name.split("_", 1)[1].replace("_", "-")
            for code, name in _rule_modules().items()}


def all_codes() -> list[str]:
    return list(_rule_modules())


@lru_cache(maxsize=None)
def all_rules() -> tuple[type["Rule"], ...]:
    """Every rule class, sorted by code (imports every rule module)."""
    from eqxlint.rules.base import Rule

    found: list[type[Rule]] = []
    for code, name in _rule_modules().items():
        module = importlib.import_module(f"{__name__}.{name}")
        classes = [value for value in vars(module).values()
                   if isinstance(value, type) and issubclass(value, Rule) and value is not Rule
                   and value.__module__ == module.__name__]
        if len(classes) != 1 or classes[0].code != code:
            raise RuntimeError(f"{module.__name__} must define exactly one Rule, coded {code}")
        found.append(classes[0])
    return tuple(found)


def rules_by_code() -> dict[str, type["Rule"]]:
    return {rule.code: rule for rule in all_rules()}


def get_rule(code: str) -> type["Rule"]:
    """The rule with this code; KeyError if there is none."""
    return rules_by_code()[code.upper()]


def select_codes(select: Optional[list[str]] = None, ignore: Optional[list[str]] = None,
                 extend_select: Optional[list[str]] = None) -> list[str]:
    """Resolve Ruff-style selectors ("EQX", "EQX1", "EQX101", "ALL") to rule codes.

    Raises ValueError naming a selector that matches no rule.
    """
    codes = all_codes()

    def matching(selector: str) -> list[str]:
        selector = selector.strip().upper()
        if selector == "ALL":
            return list(codes)
        chosen = [code for code in codes if code.startswith(selector)]
        if not chosen:
            raise ValueError(f"unknown rule selector {selector!r}: "
                             f"no rule code starts with it (see `eqxlint --list-rules`)")
        return chosen

    selected: set[str] = set()
    if select:
        for selector in select:
            selected.update(matching(selector))
    else:
        selected.update(code for code in codes if code not in OFF_BY_DEFAULT)
    for selector in extend_select or []:
        selected.update(matching(selector))
    for selector in ignore or []:
        selected.difference_update(matching(selector))
    return sorted(selected)


def select_rules(select: Optional[list[str]] = None, ignore: Optional[list[str]] = None,
                 extend_select: Optional[list[str]] = None) -> list[type["Rule"]]:
    """As select_codes, but the rule classes."""
    known = rules_by_code()
    return [known[code] for code in select_codes(select, ignore, extend_select)]
