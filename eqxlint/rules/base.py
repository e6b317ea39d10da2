"""What a rule is: its documentation, its examples, its static check, its fix."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Iterator, Optional, Union

import libcst as cst

from eqxlint.diagnostics import Applicability, Diagnostic
from eqxlint.rules.first_look import FirstLook, mentioned_in_project, trigger_matches
from eqxlint.semantics import Semantics

if TYPE_CHECKING:  # the runtime context imports jax; the linter must not
    from eqxlint.runtime.checker import RuntimeContext


# A trigger met when the group's other words occur in a project module the file
# imports (see may_fire).
PROJECT_IMPORT = b"\0project-import\0"
EXPECT_MARKER = re.compile(r"\s*# expect: (EQX\d{3}(?:, *EQX\d{3})*)\s*$")


def dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


@dataclass(frozen=True)
class Bad:
    """Code the rule must flag: each line ending in `# expect: EQXnnn` is a finding."""

    code: str
    note: str = ""

    @property
    def source(self) -> str:
        return dedent(self.code)

    def expected(self) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        for row, line in enumerate(self.source.splitlines(), start=1):
            match = EXPECT_MARKER.search(line)
            if match:
                found.extend((row, code.strip()) for code in match.group(1).split(","))
        return found


@dataclass(frozen=True)
class Good:
    """Correct code that looks like the mistake: the rule must stay quiet."""

    code: str
    note: str = ""

    @property
    def source(self) -> str:
        return dedent(self.code)


@dataclass(frozen=True)
class FixCase:
    """`before` becomes exactly `after` with --fix (and --unsafe-fixes when unsafe)."""

    before: str
    after: str

    @property
    def source_before(self) -> str:
        return dedent(self.before)

    @property
    def source_after(self) -> str:
        return dedent(self.after)


@dataclass
class Finding:
    """What a rule reports: the node, the message, the line to write instead.

    `replacements` pairs nodes of the parsed module with the nodes to put in
    their place; the engine turns them into text edits, so nothing else in the
    file changes.
    """

    node: cst.CSTNode
    message: str
    hint: str
    replacements: tuple[tuple[cst.CSTNode, cst.CSTNode], ...] = ()
    fix_message: Optional[str] = None
    # A call in the same statement as `node`, when `node` is not itself a call:
    # it lets the engine place the finding without laying out the whole file.
    anchor: Optional[cst.Call] = None


class Rule:
    """One mistake: one code, one page, one set of examples.

    Subclasses set the class attributes and, when the rule has a static side,
    implement `check`.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    what_it_does: ClassVar[str]
    why_bad: ClassVar[str]
    example: ClassVar[str]
    use_instead: ClassVar[str]
    fix_safety: ClassVar[str]
    runtime: ClassVar[str] = "None: this rule is static only."
    real_error: ClassVar[str] = ""
    known_limits: ClassVar[str] = ""
    fix_applicability: ClassVar[Optional[Applicability]] = None
    # The file must contain, for each group, at least one of its strings, or the
    # rule cannot fire there and the file is not parsed for it.
    triggers: ClassVar[tuple[tuple["Union[bytes, re.Pattern[bytes]]", ...], ...]] = ()
    static: ClassVar[bool] = True
    # False: selected only when named (`--extend-select EQX001`, a prefix or ALL), as
    # Ruff's RUF100. Must agree with eqxlint.rules.OFF_BY_DEFAULT (read without imports).
    default_enabled: ClassVar[bool] = True
    bad_examples: ClassVar[tuple[Bad, ...]] = ()
    good_examples: ClassVar[tuple[Good, ...]] = ()
    fix_examples: ClassVar[tuple[FixCase, ...]] = ()

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        """The static side: findings in one parsed file."""
        return iter(())

    def check_runtime(self, context: "RuntimeContext") -> Iterator[Diagnostic]:
        """The runtime side: problems in a live model (imports jax inside)."""
        return iter(())

    @classmethod
    def may_fire(cls, source: bytes, look: Optional["FirstLook"] = None) -> bool:
        """The cheap text test: False means the rule cannot fire on this source.

        A needle is code, not text: `b".init("` also matches `opt . init (`, a space
        in a needle matches any whitespace, line continuation or comment, and `\r`
        line endings or form feeds change nothing (see trigger_matches). A group holding
        PROJECT_IMPORT is also met when one of its other needles occurs in a project
        module the file imports (read through `look`; what the rule needs may be defined
        there). Without `look`, any import of a project module meets it.

        A rule may look closer (Python's `ast` of the file, from `look.tree()`), as long
        as False still means "cannot fire": tests compare the findings with and without
        the pre-filter on every example.
        """
        if not cls.static:
            return False
        # The file's own text first, every group: the project modules are read only when
        # it alone cannot say no.
        unmet: list[list[bytes]] = []
        for group in cls.triggers:
            needles = [needle for needle in group if needle != PROJECT_IMPORT]
            if any(trigger_matches(needle, source) for needle in needles):
                continue
            if PROJECT_IMPORT not in group:
                return False
            unmet.append(needles)
        return all(mentioned_in_project(source, look, *needles) for needles in unmet)


@dataclass
class RuleSet:
    """The enabled rules, in code order."""

    rules: list[type[Rule]] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return [rule.code for rule in self.rules]
