"""SARIF 2.1.0, for GitHub code scanning."""

from __future__ import annotations

import json
from typing import Any, Sequence

from eqxlint import __version__
from eqxlint.diagnostics import DOCS_URL, Diagnostic, Location
from eqxlint.report.concise import where

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _rule_descriptor(rule: Any) -> dict[str, Any]:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "helpUri": DOCS_URL.format(code=rule.code),
        "properties": {"tags": ["eqxlint"]},
    }


def _result(d: Diagnostic, index: dict[str, int]) -> dict[str, Any]:
    start = d.location or Location(1, 1)
    end = d.end_location or start
    text = d.message + (f" Help: {d.hint}" if d.hint else "")
    if d.cell is not None:
        # As Ruff: a notebook's lines are JSON, so the region falls back to 1:1;
        # the message and the result's properties name the cell.
        text = f"{where(d)}: {text}"
        start = end = Location(1, 1)
    result: dict[str, Any] = {
        "ruleId": d.code,
        "level": "error",
        "message": {"text": text},
        "locations": [{
            "physicalLocation": {
                "artifactLocation": {"uri": (d.filename or "").replace("\\", "/")},
                "region": {"startLine": start.row, "startColumn": start.column,
                           "endLine": end.row, "endColumn": max(end.column, 1)},
            }
        }],
    }
    if d.cell is not None and d.location is not None:
        result["properties"] = {"cell": d.cell, "row": d.location.row,
                                "column": d.location.column}
    if d.code in index:
        result["ruleIndex"] = index[d.code]
    return result


def render(diagnostics: Sequence[Diagnostic], options: object = None) -> str:
    from eqxlint.rules import all_rules

    rules = list(all_rules())
    index = {rule.code: i for i, rule in enumerate(rules)}
    document = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "eqxlint",
                "version": __version__,
                "informationUri": "https://github.com/eqxlint/eqxlint",
                "rules": [_rule_descriptor(rule) for rule in rules],
            }},
            "results": [_result(d, index) for d in diagnostics],
        }],
    }
    return json.dumps(document, indent=2) + "\n"
