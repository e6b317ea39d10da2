"""The rule registry: every module named `eqxNNN_<slug>.py` in this package is a rule.

Adding a rule means adding its module; no engine file changes.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import lru_cache

from eqxlint.rules.base import Rule

_RULE_MODULE = re.compile(r"^eqx\d{3}_[a-z0-9_]+$")


@lru_cache(maxsize=None)
def all_rules() -> tuple[type[Rule], ...]:
    """Every rule class, sorted by code."""
    found: list[type[Rule]] = []
    for info in pkgutil.iter_modules(__path__):
        if not _RULE_MODULE.match(info.name):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Rule) and value is not Rule \
                    and value.__module__ == module.__name__:
                found.append(value)
    found.sort(key=lambda rule: rule.code)
    return tuple(found)


def rules_by_code() -> dict[str, type[Rule]]:
    return {rule.code: rule for rule in all_rules()}


def get_rule(code: str) -> type[Rule]:
    """The rule with this code; KeyError if there is none."""
    return rules_by_code()[code.upper()]


def select_rules(select: list[str] | None = None, ignore: list[str] | None = None,
                 extend_select: list[str] | None = None) -> list[type[Rule]]:
    """Resolve Ruff-style selectors ("EQX", "EQX1", "EQX101", "ALL") to rules.

    Raises ValueError naming a selector that matches no rule.
    """
    rules = all_rules()

    def matching(selector: str) -> list[type[Rule]]:
        selector = selector.strip().upper()
        if selector == "ALL":
            return list(rules)
        chosen = [rule for rule in rules if rule.code.startswith(selector)]
        if not chosen:
            raise ValueError(f"unknown rule selector {selector!r}: "
                             f"no rule code starts with it (see `eqxlint --list-rules`)")
        return chosen

    selected: dict[str, type[Rule]] = {}
    for selector in (select if select else ["ALL"]):
        for rule in matching(selector):
            selected[rule.code] = rule
    for selector in extend_select or []:
        for rule in matching(selector):
            selected[rule.code] = rule
    for selector in ignore or []:
        for rule in matching(selector):
            selected.pop(rule.code, None)
    return sorted(selected.values(), key=lambda rule: rule.code)
