"""EQX001: a `# noqa` code of eqxlint's that silences nothing. Reported by the engine."""

from __future__ import annotations

from eqxlint.rules.base import Bad, FixCase, Good, Rule


class UnusedNoqaRule(Rule):
    code = "EQX001"
    name = "unused-noqa"
    summary = "A `# noqa: EQXnnn` code that silences no finding (off by default)"
    static = False  # reported by the engine's suppression step (eqxlint/suppression.py)
    default_enabled = False
    fix_applicability = "safe"
    what_it_does = """
        Reports eqxlint codes in `# noqa` comments that silence nothing on their line:
        the rule did not fire there (unused), the rule is not selected (non-enabled), or
        no rule has that code (unknown). Like Ruff's RUF100, and like it off by default:
        turn it on with `--extend-select EQX001` or `extend-select = ["EQX001"]`.

        Only codes starting with `EQX` are judged: other codes (`F401`, `E501`) belong to
        other tools, and a blanket `# noqa` may be there for one of them, so neither is
        reported.

        How eqxlint reads a `# noqa` comment (as Ruff does, so that one comment means the
        same to both tools): only real comments count, not a `"# noqa"` inside a string;
        `# noqa` (any case) silences every code on the line; `# noqa: EQX101, EQX102`,
        `#noqa:EQX101`, `# noqa:  EQX101` and `# noqa : EQX101` silence the codes listed
        (upper-case letters then digits, separated by commas or spaces; the first word that
        is not a code starts a free comment); `# noqa EQX101` (no colon) is a blanket
        `# noqa`, as in Ruff and flake8. Malformed directives silence nothing and are
        reported as warnings: `# noqa-EQX101`, `# noqanothing`, `# noqa : X`, `# noqa:`,
        `# noqa: EQX101abc` (as in Ruff; `# noqa:  EQX101` with two spaces is read, as Ruff
        reads it, as a list holding EQX101). Those warnings are given for files with a
        finding (or with EQX001 on): elsewhere a directive has nothing to silence, and
        eqxlint spares reading the comments. `# eqxlint: noqa` on a line of its own exempts
        the whole file, `# eqxlint: noqa: EQX502` exempts it from those codes (Ruff's
        `# ruff: noqa`); on a line with code it is ignored, with a warning.
    """
    why_bad = """
        A `noqa` that silences nothing is a stale promise: the finding it was written for
        has gone, and the comment now hides the next real finding of that code on the line.
        An unknown code is usually a typo, so the finding meant to be silenced still shows.
    """
    example = """
        model = eqx.apply_updates(model, updates)  # noqa: EQX101
    """
    use_instead = """
        model = eqx.apply_updates(model, updates)
    """
    fix_safety = """
        Safe: the fix removes the unused codes from the comment, or the whole `# noqa`
        when none is left, and keeps every other code and comment on the line.
    """
    runtime = "None: this rule is about comments in source files."
    known_limits = """
        A file-level `# eqxlint: noqa: CODE` that silences nothing is not reported.
    """
    bad_examples = (
        Bad("""
            import equinox as eqx
            model = eqx.apply_updates(model, updates)  # noqa: EQX101  # expect: EQX001
        """, "the finding is gone, the noqa stayed"),
        Bad("""
            x = 1  # noqa: EQX999  # expect: EQX001
        """, "no rule has this code"),
        Bad("""
            x = 1  # noqa: E501, EQX102  # expect: EQX001
        """, "another tool's code is kept, ours is unused"),
    )
    good_examples = (
        Good("""
            import equinox as eqx
            model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)  # noqa: EQX101
        """, "the noqa silences a finding"),
        Good("""
            import os  # noqa: F401
        """, "another tool's code"),
        Good("""
            import os  # noqa
        """, "a blanket noqa may be for another tool"),
        Good("""
            s = "# noqa: EQX101"
        """, "not a comment"),
    )
    fix_examples = (
        FixCase("""
            import equinox as eqx
            model = eqx.apply_updates(model, updates)  # noqa: EQX101
        """, """
            import equinox as eqx
            model = eqx.apply_updates(model, updates)
        """),
        FixCase("""
            x = 1  # noqa: E501, EQX102  # why
        """, """
            x = 1  # noqa: E501  # why
        """),
        FixCase("""
            x = 1  # noqa: EQX102  # why
        """, """
            x = 1  # why
        """),
    )
