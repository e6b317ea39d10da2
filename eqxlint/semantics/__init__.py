"""What a name is and what a value holds: the semantics every rule shares.

- syntax.py     questions about syntax alone (dotted names, arguments, walking);
- scopes.py     the one pass per file: imports, scopes, bindings, classes, call sites;
- values.py     abstract values and the vocabulary of leaf kinds;
- inference.py  `Semantics`: what an expression holds, the leaves of a module;
- project.py    the project index: imports of the project's own modules, resolved
                to files, each file's Semantics built once per content.

Names are loaded on first use, so that the engine can ask the project index for a
cache key (project.py needs no libcst) without importing libcst.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eqxlint.semantics.inference import LOCAL_PREFIX, Semantics
    from eqxlint.semantics.scopes import Binding, CallSite, ClassInfo, FieldInfo, Scope
    from eqxlint.semantics.syntax import (argument, descendants, dotted_name, has_star_args,
                                          keyword_arg, literal_index, positional_args)
    from eqxlint.semantics.values import Leaf, Value

_WHERE = {
    "LOCAL_PREFIX": "inference", "Semantics": "inference",
    "Binding": "scopes", "CallSite": "scopes", "ClassInfo": "scopes", "FieldInfo": "scopes",
    "Scope": "scopes",
    "argument": "syntax", "descendants": "syntax", "dotted_name": "syntax",
    "has_star_args": "syntax", "keyword_arg": "syntax", "literal_index": "syntax",
    "positional_args": "syntax",
    "Leaf": "values", "Value": "values",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
