"""EQX000: a file eqxlint could not read or parse. Reported by the engine itself."""

from __future__ import annotations

from eqxlint.rules.base import Bad, Good, Rule


class SyntaxErrorRule(Rule):
    code = "EQX000"
    name = "syntax-error"
    summary = "A file that cannot be read or parsed"
    static = False  # reported by the engine, not by a visitor
    what_it_does = """
        Reports a file that eqxlint could not check: invalid Python syntax (with the
        parser's line, column and message), bytes that do not decode in the file's
        declared encoding, a binary file named `.py`, a path that does not exist, a file
        or folder without read permission, a notebook that is not valid JSON, and a file
        eqxlint could not analyse within its limits (a parser crash, the time budget).
    """
    why_bad = """
        A file that is not checked can hide every other mistake. eqxlint says so and goes
        on with the other files; the run exits with status 2 so that CI does not pass
        silently. EQX000 cannot be ignored with `--ignore` or `# noqa`.
    """
    example = """
        def train(model:
            return model
    """
    use_instead = """
        def train(model):
            return model
    """
    fix_safety = "No fix: the file must be repaired by hand."
    runtime = "None."
    real_error = "SyntaxError: '(' was never closed"
    known_limits = """
        Every file is syntax-checked by CPython's parser (the pre-filter spares files from
        libcst, not from this check), so EQX000 appears exactly where Python itself cannot
        parse the file, at CPython's line and column, as in a notebook's cells. What
        CPython refuses only once it compiles a parsed file (`'return' outside function`,
        `nonlocal x` at module level) is not EQX000: general linters report it (Ruff's
        F706 and kin). Such files are rare (16 of 20,000 generated programs; 8 of
        CPython's 1,790 `Lib/` files, its tests of `from __future__` errors; none of the
        corpus), and `compile()` on every file would cost as much again as the parser.
        Those files are linted as usual.
        Also EQX000: a file that
        crashes libcst's parser ("could not be parsed"), one that takes longer than its
        time budget or is over 4 million characters ("not analysed"). Valid Python that
        libcst cannot parse is a warning on stderr, not EQX000. Syntax of a newer Python
        (`type X = ...`, generics, 3.12 f-strings, t-strings, `except A, B:`) is analysed,
        not EQX000, when libcst parses it and all its string literals decode.
    """
    # The engine's own tests cover EQX000 (tests/test_bad_input.py); these examples
    # are run like every rule's.
    bad_examples = (
        Bad("""
            import equinox as eqx
            model = eqx.apply_updates(eqx.filter(model,  # expect: EQX000
        """, "unclosed call"),
    )
    good_examples = (
        Good("""
            import equinox as eqx
            model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)  # noqa: EQX101
        """, "a valid file (the noqa silences EQX101)"),
    )
