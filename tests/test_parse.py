"""eqxlint's libcst parse: the same tree as libcst's, and libcst's checks left on after."""

from __future__ import annotations

import threading

import libcst as cst
import pytest

from eqxlint.parse import parse_module
from eqxlint.rules import all_rules

SOURCES = [example.source for rule in all_rules() if rule.code != "EQX000"
           for example in rule.bad_examples + rule.good_examples]


def test_the_tree_is_the_one_libcst_builds() -> None:
    assert len(SOURCES) > 100
    for source in SOURCES:
        ours = parse_module(source)
        assert ours.deep_equals(cst.parse_module(source)), source
        assert ours.code == source


def test_nodes_built_after_a_parse_are_validated_again() -> None:
    parse_module("x = 1\n")
    with pytest.raises(cst.CSTValidationError):
        cst.Name("not a name")


def test_a_failed_parse_leaves_validation_on() -> None:
    with pytest.raises(cst.ParserSyntaxError):
        parse_module("def (:\n")
    with pytest.raises(cst.CSTValidationError):
        cst.Name("1x")


def test_parses_on_two_threads_give_the_same_trees() -> None:
    results: list[bool] = []

    def parse_all() -> None:
        results.append(all(parse_module(s).deep_equals(cst.parse_module(s)) for s in SOURCES[:60]))

    threads = [threading.Thread(target=parse_all) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True, True]
    with pytest.raises(cst.CSTValidationError):
        cst.Name("not a name")


def test_a_first_look_that_fails_costs_no_finding() -> None:
    """A bug in a rule's first look (here: an exception) sends the file to the full
    check, which still reports the finding."""
    from eqxlint.parse import lint_text
    from eqxlint.rules import get_rule

    rule = get_rule("EQX101")
    bad = rule.bad_examples[0].source

    class Failing(rule):  # type: ignore[misc, valid-type]
        @classmethod
        def may_fire(cls, source: bytes, look: object = None) -> bool:
            raise IndexError("a bug in a first look")

    expected = [(d.code, d.location.row) for d in lint_text(bad, "x.py", [rule])]
    assert expected
    assert [(d.code, d.location.row) for d in lint_text(bad, "x.py", [Failing])] == expected


def test_the_first_looks_leave_no_cycle_holding_the_files_ast() -> None:
    """Each file's `ast` is freed as soon as it is linted, not left to the garbage
    collector: a cycle through it made the collector walk every tree (a tenth of a cold
    run). Every rule's first look reads each example; with the collector off, nothing of
    the tree may survive the lint."""
    import ast
    import gc
    import weakref

    from eqxlint.parse import lint_text

    rules = [rule for rule in all_rules() if rule.static]
    gc.collect()
    gc.disable()
    try:
        for source in SOURCES:
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            walked = weakref.ref(tree.body[0]) if tree.body else None
            whole = weakref.ref(tree)
            lint_text(source, "example.py", rules, tree=tree)
            del tree
            assert whole() is None, source
            assert walked is None or walked() is None, source
    finally:
        gc.enable()
