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
        or folder without read permission, a notebook that is not valid JSON.
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
    real_error = "Syntax Error @ 1:17."
    known_limits = """
        A file is parsed only when some enabled rule could fire on it (it mentions
        `apply_updates`, `optax`, `make_with_state`, ...): a syntax error in a file that
        no rule needs is not reported, as a file that no rule is selected for is not
        reported by Ruff. Decoding errors are reported for every file.
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
