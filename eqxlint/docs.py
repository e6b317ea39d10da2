"""Rule pages (rules/EQXnnn.md) and the rule table, generated from the rule modules.

    python -m eqxlint.docs          # rewrite rules/*.md and the README's rule table
    python -m eqxlint.docs --check  # exit 1 if any is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eqxlint.rules import all_rules
from eqxlint.rules.base import EXPECT_MARKER, Rule, dedent

REPO = Path(__file__).resolve().parent.parent
TABLE_START = "<!-- rule-table:start -->"
TABLE_END = "<!-- rule-table:end -->"


def _code_block(text: str) -> str:
    body = "\n".join(EXPECT_MARKER.sub("", line) for line in dedent(text).splitlines())
    return f"```python\n{body}\n```"


def _sides(rule: type[Rule]) -> str:
    if rule.code in ("EQX000", "EQX001"):
        return "engine"
    sides = (["static"] if rule.static else []) + \
        ([] if rule.runtime.strip().startswith("None") else ["runtime"])
    return " + ".join(sides)


def _fix_label(rule: type[Rule]) -> str:
    return rule.fix_applicability or "none"


def rule_page(rule: type[Rule]) -> str:
    """The rule's page, in Ruff's shape."""
    parts = [
        f"# {rule.name} ({rule.code})",
        "",
        f"Checks: {_sides(rule)}. Fix: {_fix_label(rule)}.",
        "",
        "## What it does",
        "",
        dedent(rule.what_it_does).rstrip(),
        "",
        "## Why is this bad?",
        "",
        dedent(rule.why_bad).rstrip(),
        "",
    ]
    if rule.real_error:
        parts += ["The error as the libraries raise it (jax 0.10.2, equinox 0.13.8, optax 0.2.8):",
                  "", f"```\n{dedent(rule.real_error).strip()}\n```", ""]
    parts += [
        "## Example",
        "",
        _code_block(rule.example),
        "",
        "Use instead:",
        "",
        _code_block(rule.use_instead),
        "",
        "## Fix safety",
        "",
        dedent(rule.fix_safety).rstrip(),
        "",
        "## Runtime counterpart",
        "",
        dedent(rule.runtime).rstrip(),
        "",
    ]
    if rule.known_limits:
        parts += ["## Known limits", "", dedent(rule.known_limits).rstrip(), ""]
    parts += [
        "## Suppressing it",
        "",
        _suppressing(rule),
        "",
        f"<!-- generated from eqxlint/rules/{_module_file(rule)} by `python -m eqxlint.docs`; "
        "do not edit -->",
        "",
    ]
    return "\n".join(parts)


def _suppressing(rule: type[Rule]) -> str:
    if rule.code == "EQX000":
        return "It cannot be suppressed."
    if rule.code == "EQX001":
        return ("`ignore = [\"EQX001\"]` or per-file-ignores in `[tool.eqxlint]`, or "
                "`# eqxlint: noqa: EQX001` on a line of its own for the whole file.")
    return (f"`# noqa: {rule.code}` on the reported line, `# eqxlint: noqa: {rule.code}` on a "
            f"line of its own for the whole file, or `ignore = [\"{rule.code}\"]` in "
            "`[tool.eqxlint]`.")


def _module_file(rule: type[Rule]) -> str:
    return rule.__module__.rsplit(".", 1)[1] + ".py"


def rule_table() -> str:
    rows = ["| code | name | what | checks | fix |", "| --- | --- | --- | --- | --- |"]
    for rule in all_rules():
        rows.append(f"| [{rule.code}](rules/{rule.code}.md) | {rule.name} | {rule.summary} | "
                    f"{_sides(rule)} | {_fix_label(rule)} |")
    return "\n".join(rows) + "\n"


def generated() -> dict[Path, str]:
    pages = {REPO / "rules" / f"{rule.code}.md": rule_page(rule) for rule in all_rules()}
    readme = REPO / "README.md"
    if readme.exists():
        text = readme.read_text(encoding="utf-8")
        if TABLE_START in text and TABLE_END in text:
            head, rest = text.split(TABLE_START, 1)
            _, tail = rest.split(TABLE_END, 1)
            pages[readme] = f"{head}{TABLE_START}\n{rule_table()}{TABLE_END}{tail}"
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the rule pages and rule table.")
    parser.add_argument("--check", action="store_true")
    options = parser.parse_args(argv)
    stale = []
    for path, text in generated().items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not options.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if options.check else 'wrote'}: {path.relative_to(REPO)}")
    return 1 if options.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
