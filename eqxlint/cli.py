"""The `eqxlint` command."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

import click

from eqxlint import __version__
from eqxlint.cache import CACHE_DIR_NAME
from eqxlint.config import Config, ConfigError, resolve
from eqxlint.diagnostics import Diagnostic
from eqxlint.linter import SYNTAX_ERROR, FileResult, Settings, default_jobs, discover, \
    lint_bytes, lint_paths, unified_diff
from eqxlint.report import REPORTERS
from eqxlint.rules import select_codes

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
FORMATS = tuple(REPORTERS)


def _codes(values: Sequence[str]) -> list[str]:
    """Accept both `--select EQX101,EQX102` and repeated `--select` flags."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _explain(code: str) -> None:
    from eqxlint.docs import rule_page
    from eqxlint.rules import get_rule

    try:
        rule = get_rule(code)
    except KeyError:
        raise click.UsageError(f"unknown rule code {code!r} (see `eqxlint --list-rules`)")
    click.echo(rule_page(rule), nl=False)


def _list_rules() -> None:
    from eqxlint.rules import all_rules

    width = max(len(rule.name) for rule in all_rules())
    for rule in all_rules():
        fix = {"safe": "[*]", "unsafe": "[~]"}.get(rule.fix_applicability or "", "   ")
        click.echo(f"{rule.code}  {fix}  {rule.name.ljust(width)}  {rule.summary}")
    click.echo("\n[*] safe fix with --fix   [~] unsafe fix with --fix --unsafe-fixes")


def _statistics(diagnostics: Sequence[Diagnostic]) -> str:
    counts = Counter(d.code for d in diagnostics)
    from eqxlint.rules import rules_by_code

    fixable = {d.code for d in diagnostics if d.fix is not None and d.fix.edits}
    names = rules_by_code()
    lines = []
    for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        marker = "[*]" if code in fixable else "   "
        lines.append(f"{count:>5}\t{code}\t{marker} {names[code].name if code in names else ''}")
    return "\n".join(lines) + ("\n" if lines else "")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@click.option("--select", multiple=True, help="Rule codes or prefixes to enable (e.g. EQX1).")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to disable.")
@click.option("--extend-select", multiple=True, help="Codes to enable on top of the selection.")
@click.option("--fix", is_flag=True, help="Apply safe fixes in place.")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply fixes that need review.")
@click.option("--diff", is_flag=True, help="Print the fixes as a unified diff; write nothing.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("--output-format", type=click.Choice(FORMATS), default="full", show_default=True)
@click.option("--config", "config_path", type=click.Path(), help="Read settings from this TOML file.")
@click.option("--no-cache", is_flag=True,
              help="Neither read nor write .eqxlint_cache/ (findings of unchanged files).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: all cores).")
@click.option("--file-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="CPU seconds one file may take before it is reported as not analysed "
                   "(EQX000); 0 for no limit. Default: 60, or `file-timeout` in the config.")
@click.option("--statistics", is_flag=True, help="Count findings per rule instead of listing them.")
@click.option("--stdin-filename", help="The name to report for source read from stdin (path `-`).")
@click.option("--explain", metavar="CODE", help="Print the page of one rule and exit.")
@click.option("--list-rules", is_flag=True, help="Print the table of rules and exit.")
@click.option("--no-prefilter", is_flag=True, hidden=True,
              help="Parse every file, even those no rule could match (for testing).")
@click.version_option(__version__, prog_name="eqxlint")
def main(paths: tuple[str, ...], select: tuple[str, ...], ignore: tuple[str, ...],
         extend_select: tuple[str, ...], fix: bool, unsafe_fixes: bool, diff: bool,
         exit_zero: bool, output_format: str, config_path: Optional[str], no_cache: bool,
         jobs: Optional[int], file_timeout: Optional[float], statistics: bool, stdin_filename: Optional[str],
         explain: Optional[str], list_rules: bool, no_prefilter: bool) -> None:
    """Check Equinox training code for the mistakes JAX reports late or never.

    PATHS are files and folders (default: the current folder); `-` reads stdin.
    """
    if explain:
        _explain(explain)
        return
    if list_rules:
        _list_rules()
        return

    targets = list(paths) or ["."]
    try:
        config = resolve(config_path, targets)
    except ConfigError as error:
        raise click.UsageError(str(error))
    rules = _rules(config, select, ignore, extend_select)
    settings = Settings(rules=rules, fix=fix or diff, unsafe_fixes=unsafe_fixes,
                        per_file_ignores=config.per_file_ignores, root=Path.cwd(),
                        use_prefilter=not no_prefilter,
                        cache_dir=None if no_cache else config.root / CACHE_DIR_NAME,
                        file_timeout=file_timeout if file_timeout is not None
                        else config.file_timeout)

    results: list[FileResult] = []
    problems: list[Diagnostic] = []
    stdin_fixed: Optional[str] = None
    if targets == ["-"]:
        display = stdin_filename or "-"
        result = lint_bytes(sys.stdin.buffer.read(), display, settings)
        results.append(result)
        if fix and not diff:
            stdin_fixed = result.fixed_text if result.fixed_text is not None else result.original
    else:
        files, problems = discover(targets, config.exclude, config.extend_exclude,
                                   root=config.root)
        workers = jobs or default_jobs()
        results = list(lint_paths(files, settings, write=fix and not diff, jobs=workers))

    diagnostics = list(problems)
    for result in results:
        diagnostics.extend(result.diagnostics)
    diagnostics.sort(key=Diagnostic.sort_key)

    out = sys.stderr if stdin_fixed is not None else sys.stdout
    for result in results:
        for warning in result.warnings:
            click.echo(f"eqxlint: warning: {warning}", err=True)
        if result.internal_error:
            click.echo(f"eqxlint: error: {result.internal_error} (please report this)", err=True)

    if diff:
        patches = [unified_diff(r.original or "", r.fixed_text or "", r.display)
                   for r in results if r.changed]
        click.echo("".join(patches), nl=False)
        for problem in diagnostics:  # what could not be diffed, and why
            if problem.code == SYNTAX_ERROR:
                where = f"{problem.location.row}:{problem.location.column}: " \
                    if problem.location else ""
                click.echo(f"eqxlint: error: {problem.filename}:{where}{problem.code} "
                           f"{problem.message}", err=True)
        fixes = sum(r.fixed for r in results)
        click.echo(f"Would fix {fixes} error{'s' if fixes != 1 else ''}.", err=True)
        errors = any(d.code == SYNTAX_ERROR for d in diagnostics) or \
            any(r.internal_error for r in results)
        sys.exit(EXIT_ERROR if errors else (EXIT_FINDINGS if patches else EXIT_CLEAN))

    if statistics:
        click.echo(_statistics(diagnostics), nl=False, file=out)
    else:
        click.echo(REPORTERS[output_format](diagnostics), nl=False, file=out)
    if output_format in ("full", "concise") and not statistics:
        click.echo(_summary(diagnostics, sum(r.fixed for r in results), fix), file=out)
    if stdin_fixed is not None:
        sys.stdout.write(stdin_fixed)

    if any(d.code == SYNTAX_ERROR for d in diagnostics) or any(r.internal_error for r in results):
        sys.exit(EXIT_ERROR)
    if diagnostics and not exit_zero:
        sys.exit(EXIT_FINDINGS)
    sys.exit(EXIT_CLEAN)


def _rules(config: Config, select: tuple[str, ...], ignore: tuple[str, ...],
           extend_select: tuple[str, ...]) -> list[str]:
    cli_select = _codes(select)
    cli_extend = _codes(extend_select)
    chosen_select = cli_select or config.select
    explicit = {code.upper() for code in cli_select + cli_extend}
    ignores = [code for code in config.ignore if code.upper() not in explicit] + _codes(ignore)
    try:
        return select_codes(chosen_select, ignores, config.extend_select + cli_extend)
    except ValueError as error:
        raise click.UsageError(str(error))


def _summary(diagnostics: Sequence[Diagnostic], fixed: int, fixing: bool) -> str:
    count = len(diagnostics)
    noun = "error" if count == 1 else "errors"
    if fixing and fixed:
        if count == 0:
            return f"Found {fixed} error{'s' if fixed != 1 else ''} ({fixed} fixed, 0 remaining)."
        return f"Found {count + fixed} errors ({fixed} fixed, {count} remaining)."
    if count == 0:
        return "All checks passed!"
    lines = [f"Found {count} {noun}."]
    safe = sum(1 for d in diagnostics if d.fix is not None and d.fix.edits
               and d.fix.applicability == "safe")
    unsafe = sum(1 for d in diagnostics if d.fix is not None and d.fix.edits
                 and d.fix.applicability == "unsafe")
    if safe:
        lines.append(f"[*] {safe} fixable with the `--fix` option.")
    if unsafe:
        lines.append(f"{unsafe} more fixable with `--fix --unsafe-fixes`.")
    return "\n".join(lines)
