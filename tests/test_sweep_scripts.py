"""The sweep scripts' own parts (the sweeps themselves are slow and run by hand; README).

A sweep whose splicing silently produced nothing, or whose oracle called every file
valid, would report "ok" over any engine: these tests pin what the parts do.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

from eqxlint.rules import all_rules
from eqxlint.rules.base import Rule
from eqxlint.rules.first_look import prefilter_view

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


fuzz = _script("fuzz_engine")
fixcheck = _script("check_fix_corpus")

PROGRAM = ('"""Doc."""\nfrom __future__ import annotations\nimport os\n\n'
           '@decorate\ndef first(a, b):\n    return a; b\n\nx = 1; y = 2\n')


def test_the_fuzz_oracle_is_the_parser_not_the_compiler(tmp_path: Path) -> None:
    """As eqxlint's EQX000: what CPython's parser refuses, not what only its compiler does."""
    grammar = tmp_path / "grammar.py"
    grammar.write_text("def f(:\n")
    compiler = tmp_path / "compiler.py"
    compiler.write_text("return 1\n")
    valid = tmp_path / "valid.py"
    valid.write_text("x = 1\n")
    assert fuzz.compile_verdict(valid) is None
    message, row, grammar_refuses = fuzz.compile_verdict(grammar)
    assert (row, grammar_refuses) == (1, True) and message.startswith("SyntaxError")
    assert fuzz.compile_verdict(compiler) is None  # 'return' outside function: parsed


def test_statements_go_between_module_statements_after_the_future_imports() -> None:
    boundaries = fuzz.module_boundaries(PROGRAM)
    assert [PROGRAM[offset:].split("\n")[0] for offset in boundaries[:-1]] == [
        "import os", "@decorate", "x = 1; y = 2"]
    for seed in range(10):
        spliced = fuzz.insert_statement(PROGRAM, "model = 1\n", random.Random(seed))
        compile(spliced, "<spliced>", "exec")
        assert spliced.index("model = 1") > spliced.index("from __future__")


def test_header_after_a_whitespace_only_tail_still_compiles() -> None:
    spliced = fuzz.insert_statement("\r\n\n\t  \t\t", fuzz.IMPORT_HEADER, None)
    compile(spliced, "<spliced>", "exec")


def test_renaming_uses_trigger_words_and_keeps_the_program_valid() -> None:
    names = fuzz.trigger_names()
    assert {"apply_updates", "init", "jit", "state_dict", "inference_mode"} <= set(names)
    renamed = fuzz.rename(PROGRAM, names)
    compile(renamed, "<renamed>", "exec")
    assert "__future__" in renamed and "first" not in renamed and "os" not in renamed


def test_the_trigger_comment_meets_every_rules_trigger_words() -> None:
    """The comment meets each rule's text screen (its `triggers`); the closer looks that
    every rule now takes on Python's `ast` ask for code a comment cannot hold: the sweep's
    spliced Bad examples reach those."""
    data = prefilter_view(fuzz.trigger_comment().encode())
    screened = [rule for rule in all_rules() if rule.static and rule.triggers]
    assert len(screened) >= 10
    assert [rule.code for rule in screened if not Rule.may_fire.__func__(rule, data)] == []


def test_damage_changes_the_text() -> None:
    rng = random.Random(3)
    assert all(fuzz.damage(PROGRAM, rng) != PROGRAM for _ in range(50))


def test_splice_into_a_crlf_file_keeps_its_line_endings_and_compiles() -> None:
    snippet = fixcheck.Snippet("test", "import optax\nx = 1\n", "import optax\nx = 2\n")
    original = b"import os\r\n\r\ndef f():\r\n    return 1\r\n"
    for index in (0, 1):
        spliced, where = fixcheck.splice(original, snippet, index)
        assert b"import optax\r\nx = 1\r\n" in spliced and b"\n\n" not in spliced
        compile(spliced, "<spliced>", "exec")
        expected = fixcheck.expected_after_snippet(spliced, where)
        assert expected == spliced.replace(b"x = 1", b"x = 2")


def test_splice_refuses_a_file_that_does_not_compile() -> None:
    snippet = fixcheck.Snippet("test", "x = 1\n", "x = 2\n")
    assert fixcheck.splice(b"def f(:\n", snippet, 0) is None
