"""Every rule's own examples: bad ones give exactly their codes at their lines,
good ones give nothing, fixes turn `before` into `after`, re-parse and are idempotent."""

from __future__ import annotations

import libcst as cst
import pytest

from eqxlint.linter import Settings, fix_text, lint_bytes
from eqxlint.rules import all_rules
from eqxlint.rules.base import Bad, FixCase, Good, Rule

ALL = list(all_rules())
SETTINGS = Settings(rules=ALL)


def _cases(kind: str) -> list:
    cases = []
    for rule in ALL:
        for index, example in enumerate(getattr(rule, kind)):
            cases.append(pytest.param(rule, example, id=f"{rule.code}-{kind}-{index}"))
    return cases


def _found(source: str) -> list[tuple[int, str]]:
    result = lint_bytes(source.encode("utf-8"), "example.py", SETTINGS)
    assert result.internal_error is None, result.internal_error
    return sorted((d.location.row, d.code) for d in result.diagnostics)


@pytest.mark.parametrize("rule, example", _cases("bad_examples"))
def test_bad_example_is_flagged(rule: type[Rule], example: Bad) -> None:
    expected = sorted(example.expected())
    assert expected, "a bad example must mark its finding with `# expect: EQXnnn`"
    assert _found(example.source) == expected


@pytest.mark.parametrize("rule, example", _cases("good_examples"))
def test_good_example_is_quiet(rule: type[Rule], example: Good) -> None:
    assert _found(example.source) == []


@pytest.mark.parametrize("rule, example", _cases("fix_examples"))
def test_fix_example(rule: type[Rule], example: FixCase) -> None:
    settings = Settings(rules=ALL, fix=True, unsafe_fixes=rule.fix_applicability == "unsafe")
    fixed, applied, remaining, warnings = fix_text(example.source_before, "example.py", settings)
    assert fixed == example.source_after
    assert applied >= 1 and not warnings
    assert [d for d in remaining if d.code == rule.code] == []
    cst.parse_module(fixed)
    again, applied_again, _, _ = fix_text(fixed, "example.py", settings)
    assert again == fixed and applied_again == 0


@pytest.mark.parametrize("rule", [r for r in ALL if r.static], ids=lambda r: r.code)
def test_every_static_rule_has_enough_examples(rule: type[Rule]) -> None:
    assert len(rule.bad_examples) >= 6
    assert len(rule.good_examples) >= 8
    if rule.fix_applicability is not None:
        assert rule.fix_examples, "a rule with a fix shows it"


@pytest.mark.parametrize("rule", ALL, ids=lambda r: r.code)
def test_rule_is_documented(rule: type[Rule]) -> None:
    for attribute in ("name", "summary", "what_it_does", "why_bad", "example", "use_instead",
                      "fix_safety", "runtime"):
        assert getattr(rule, attribute).strip(), attribute
    assert rule.code.startswith("EQX") and len(rule.code) == 6
    assert rule.__module__.rsplit(".", 1)[1].startswith(rule.code.lower() + "_")


def test_codes_are_unique() -> None:
    codes = [rule.code for rule in ALL]
    assert len(codes) == len(set(codes))
    names = [rule.name for rule in ALL]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule", [r for r in ALL if r.static], ids=lambda r: r.code)
def test_doc_example_is_flagged_and_use_instead_is_not(rule: type[Rule]) -> None:
    """The page's own Example / Use instead pair, in a file with the usual imports."""
    header = "import equinox as eqx\nimport jax\nimport optax\n\n"
    from eqxlint.rules.base import dedent

    assert {code for _, code in _found(header + dedent(rule.example))} == {rule.code}
    assert _found(header + dedent(rule.use_instead)) == []


def _every_example_source() -> list[str]:
    sources = []
    for rule in ALL:
        sources += [e.source for e in rule.bad_examples + rule.good_examples]
        sources += [e.source_before for e in rule.fix_examples]
    return sources


def test_the_prefilter_never_changes_the_findings() -> None:
    """Each rule declares the text it needs; parsing every file must find nothing more."""
    from conftest import REPO

    sources = _every_example_source() + [
        path.read_text() for path in sorted((REPO / "examples").glob("*.py"))]
    without = Settings(rules=ALL, use_prefilter=False)
    for source in sources:
        data = source.encode("utf-8")
        assert lint_bytes(data, "x.py", SETTINGS).diagnostics == \
            lint_bytes(data, "x.py", without).diagnostics, source


def _whitespace_forms(source: str) -> list[str]:
    """The same code with other line endings, and form feeds (legal whitespace)."""
    lines = source.split("\n")
    forms = [
        source.replace("\n", "\r"),
        source.replace("\n", "\r\n"),
        "\n".join("\x0c" + line if line.strip() else line for line in lines),
        "\r".join("\x0c" + line if line.strip() else line for line in lines),
    ]
    valid = []
    for form in forms:
        try:
            compile(form, "x.py", "exec")
        except SyntaxError:
            continue
        valid.append(form)
    return valid


def test_the_prefilter_never_changes_the_findings_whatever_the_whitespace() -> None:
    """`\\r` line endings and form feeds: still no finding lost."""
    from conftest import REPO

    sources = _every_example_source() + [
        path.read_text() for path in sorted((REPO / "examples").glob("*.py"))]
    without = Settings(rules=ALL, use_prefilter=False)
    checked = 0
    for source in sources:
        for form in _whitespace_forms(source):
            data = form.encode("utf-8")
            assert lint_bytes(data, "x.py", SETTINGS).diagnostics == \
                lint_bytes(data, "x.py", without).diagnostics, form
            checked += 1
    assert checked > 3 * len(sources)


def test_a_trigger_is_code_however_it_is_spaced() -> None:
    """The engine's needle test: whitespace, continuations and comments between tokens."""
    from eqxlint.rules.first_look import trigger_matches

    for spelled in (b"opt.init(p)", b"opt . init (p)", b"opt.\\\n    init(p)",
                    b"(opt  # the optimizer\n .init(p))", b"opt.init\t(p)"):
        assert trigger_matches(b".init(", spelled), spelled
    for spelled in (b"x in y", b"x\tin\ty", b"x in\\\r y", b"'a'in'abc'", b"(x\x0cin y)"):
        assert trigger_matches(b" in ", spelled), spelled
    for spelled in (b"for\tx in y", b"for(a, b) in y"):
        assert trigger_matches(b"for ", spelled), spelled
    for absent in (b"opt.initialise(p)", b"x = int(y)", b"opt.init_state(p)"):
        assert not trigger_matches(b".init(", absent), absent
    for absent in (b"print(x)\nx = int(y)\n", b"inside = 1", b"x = min(y)"):
        assert not trigger_matches(b" in ", absent), absent
    assert not trigger_matches(b"for ", b"format = 1")
    # One way to match a comment: a line of 5,000 `#` after a dot is no backtracking trap.
    assert not trigger_matches(b".init(", b"x.  " + b"#" * 5000 + b"\ny = 1\n")


def _spelled_otherwise(source: str) -> list[str]:
    """The same program with its imports written other ways (aliases, after `if True:` on
    their line, in try blocks, continued lines) or moved into a function."""
    import re
    import textwrap

    def aliased(text: str) -> str:
        text = re.sub(r"(?m)^import jax$", "import jax as jx", text)
        text = re.sub(r"(?m)^import optax$", "import optax as ox", text)
        return re.sub(r"\boptax\.", "ox.", re.sub(r"\bjax\.", "jx.", text))

    def in_function(text: str) -> str:
        return "def main():\n" + textwrap.indent(text, "    ") + "\n"

    def on_one_line(text: str) -> str:
        return "\n".join("if True: " + line if re.match(r"(import|from) ", line) else line
                         for line in text.splitlines()) + "\n"

    def in_try(text: str) -> str:
        lines: list[str] = []
        for line in text.splitlines():
            lines += ["try:", "    " + line, "except ImportError:", "    pass"] \
                if re.match(r"(import|from) ", line) else [line]
        return "\n".join(lines) + "\n"

    def continued(text: str) -> str:
        return text.replace("optax.", "optax.\\\n    ").replace("jax.jit", "jax.\\\n    jit")

    forms = [f(source) for f in (aliased, in_function, on_one_line, in_try, continued)]
    forms.append(in_function(aliased(source)))
    valid = []
    for form in forms:
        try:
            compile(form, "x.py", "exec")
        except SyntaxError:
            continue
        valid.append(form)
    return valid


@pytest.mark.parametrize("code", ["EQX102", "EQX103", "EQX106", "EQX202", "EQX204"])
def test_the_prefilter_never_changes_the_findings_however_the_imports_are_written(
        code: str) -> None:
    """First looks that read imports and scopes (the optax factory, the jit's loop): the
    rule's examples respelled still give the same findings with and without them."""
    from eqxlint.rules import rules_by_code

    rule = rules_by_code()[code]
    sources = [e.source for e in rule.bad_examples + rule.good_examples]
    with_prefilter, without = Settings(rules=[rule]), Settings(rules=[rule], use_prefilter=False)
    checked = 0
    for source in sources:
        for form in _spelled_otherwise(source):
            data = form.encode("utf-8")
            assert lint_bytes(data, "x.py", with_prefilter).diagnostics == \
                lint_bytes(data, "x.py", without).diagnostics, form
            checked += 1
    assert checked > 3 * len(sources)
