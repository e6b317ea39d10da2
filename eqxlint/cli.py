"""The `eqxlint` command (`eqxlint check` is the same command, as in Ruff)."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Optional, Sequence

import click

from eqxlint import __version__
from eqxlint.cache import CACHE_DIR_NAME
from eqxlint.config import Config, ConfigError, Resolver, load, parse_override
from eqxlint.diagnostics import Diagnostic
from eqxlint.linter import SYNTAX_ERROR, FileResult, Settings, default_jobs, discover, \
    lint_bytes, lint_paths, unified_diff
from eqxlint.report import REPORTERS, ReportOptions, fix_applies
from eqxlint.rules import select_codes

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
FORMATS = tuple(REPORTERS)
UNUSED_NOQA = "EQX001"


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
    from eqxlint.rules import OFF_BY_DEFAULT, all_rules

    width = max(len(rule.name) for rule in all_rules())
    for rule in all_rules():
        fix = {"safe": "[*]", "unsafe": "[~]"}.get(rule.fix_applicability or "", "   ")
        off = " (off by default)" if rule.code in OFF_BY_DEFAULT else ""
        click.echo(f"{rule.code}  {fix}  {rule.name.ljust(width)}  {rule.summary}{off}")
    click.echo("\n[*] safe fix with --fix   [~] unsafe fix with --fix --unsafe-fixes")


def _statistics(diagnostics: Sequence[Diagnostic], unsafe_fixes: bool, as_json: bool) -> str:
    """Findings counted per rule; Ruff's shape in text and in JSON."""
    from eqxlint.rules import rule_names

    counts = Counter(d.code for d in diagnostics)
    fixable = {d.code for d in diagnostics if fix_applies(d, unsafe_fixes)}
    names = rule_names()
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if as_json:
        return json.dumps([{"code": code, "name": names.get(code), "count": count,
                            "fixable": code in fixable} for code, count in ordered],
                          indent=2) + "\n"
    lines = []
    for code, count in ordered:
        marker = "[*]" if code in fixable else "   "
        lines.append(f"{count:>5}\t{code}\t{marker} {names.get(code, '')}")
    return "\n".join(lines) + ("\n" if lines else "")


def _use_color(no_color: bool, to_file: bool) -> bool:
    """Colour on a terminal, as Ruff: `--no-color` and NO_COLOR turn it off, FORCE_COLOR on."""
    if no_color or to_file or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _split_config(values: Sequence[str]) -> tuple[Optional[str], list[dict[str, Any]]]:
    """`--config` values: at most one file, and any number of `KEY = VALUE` overrides."""
    path: Optional[str] = None
    overrides: list[dict[str, Any]] = []
    for value in values:
        if "=" not in value or Path(value).is_file():
            if path is not None:
                raise click.UsageError(f"--config names two files ({path}, {value}); give one "
                                       "file and any number of `KEY = VALUE` overrides")
            path = value
        else:
            try:
                overrides.append(parse_override(value))
            except ConfigError as error:
                raise click.UsageError(str(error))
    return path, overrides


def _per_file_ignores_flag(values: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """`--extend-per-file-ignores 'tests/*:EQX101,EQX102'` as a config table."""
    table: dict[str, list[str]] = {}
    for value in values:
        pattern, sep, codes = value.rpartition(":")
        if not sep or not pattern or not codes.strip():
            raise click.UsageError(f"--extend-per-file-ignores {value!r}: expected "
                                   "PATTERN:CODE[,CODE...] (e.g. 'tests/*:EQX101')")
        table.setdefault(pattern, []).extend(_codes([codes]))
    return {"extend-per-file-ignores": table} if table else {}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@click.option("--select", multiple=True, help="Rule codes or prefixes to enable (e.g. EQX1).")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to disable.")
@click.option("--extend-select", multiple=True, help="Codes to enable on top of the selection.")
@click.option("--extend-per-file-ignores", multiple=True, metavar="PATTERN:CODES",
              help="Ignore codes in files matching a glob, on top of the config's.")
@click.option("--fix", is_flag=True, help="Apply safe fixes in place.")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply fixes that need review.")
@click.option("--diff", is_flag=True, help="Print the fixes as a unified diff; write nothing.")
@click.option("--show-fixes", is_flag=True,
              help="List the fixes applied (with --fix), or show each fix under its finding.")
@click.option("--add-noqa", is_flag=True,
              help="Add `# noqa: CODE` to every line with a finding (keeps other comments).")
@click.option("--exit-zero", is_flag=True,
              help="Exit 0 even when there are findings (of any code, EQX000 included).")
@click.option("--exit-non-zero-on-fix", is_flag=True,
              help="Exit 1 when fixes were applied, even if no finding remains.")
@click.option("--output-format", type=click.Choice(FORMATS), default="full", show_default=True)
@click.option("--output-file", "-o", type=click.Path(dir_okay=False),
              help="Write the report to this file instead of standard output.")
@click.option("--config", "config_values", multiple=True, metavar="FILE | KEY=VALUE",
              help="A config file to use instead of the nearest one, or a TOML `KEY = VALUE` "
                   "that overrides one setting (repeatable).")
@click.option("--respect-gitignore/--no-respect-gitignore", default=True, show_default=True,
              help="Skip files and folders that .gitignore files ignore.")
@click.option("--no-cache", is_flag=True,
              help="Neither read nor write .eqxlint_cache/ (findings of unchanged files).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: all cores).")
@click.option("--file-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="CPU seconds one file may take before it is reported as not analysed "
                   "(EQX000); 0 for no limit. Default: 60, or `file-timeout` in the config.")
@click.option("--statistics", is_flag=True, help="Count findings per rule instead of listing them.")
@click.option("--stdin-filename",
              help="The name of the source read from stdin (path `-`): reported, and used to "
                   "find its config and per-file-ignores.")
@click.option("--show-files", is_flag=True, help="Print the files that would be checked and exit.")
@click.option("--show-settings", is_flag=True,
              help="Print the settings in force for the first file and exit.")
@click.option("--quiet", "-q", is_flag=True, help="Print the findings and nothing else.")
@click.option("--silent", "-s", is_flag=True, help="Print nothing; the exit status tells.")
@click.option("--no-color", is_flag=True, help="No colours, even on a terminal (or set NO_COLOR).")
@click.option("--explain", metavar="CODE", help="Print the page of one rule and exit.")
@click.option("--list-rules", is_flag=True, help="Print the table of rules and exit.")
@click.option("--no-prefilter", is_flag=True, hidden=True,
              help="Parse every file, even those no rule could match (for testing).")
@click.version_option(__version__, prog_name="eqxlint")
def main(paths: tuple[str, ...], select: tuple[str, ...], ignore: tuple[str, ...],
         extend_select: tuple[str, ...], extend_per_file_ignores: tuple[str, ...], fix: bool,
         unsafe_fixes: bool, diff: bool, show_fixes: bool, add_noqa: bool, exit_zero: bool,
         exit_non_zero_on_fix: bool, output_format: str, output_file: Optional[str],
         config_values: tuple[str, ...], respect_gitignore: bool, no_cache: bool,
         jobs: Optional[int], file_timeout: Optional[float], statistics: bool,
         stdin_filename: Optional[str],
         show_files: bool, show_settings: bool, quiet: bool, silent: bool, no_color: bool,
         explain: Optional[str], list_rules: bool, no_prefilter: bool) -> None:
    """Check Equinox training code for the mistakes JAX reports late or never.

    PATHS are files and folders (default: the current folder); `-` reads stdin.
    `eqxlint check PATHS` is the same command (a path named `check`: write `./check`).
    `eqxlint server` starts the language server (LSP over stdio) instead.
    """
    if paths[:1] == ("server",):
        _serve(paths[1:])
        return
    if explain:
        _explain(explain)
        return
    if list_rules:
        _list_rules()
        return
    if paths[:1] == ("check",):
        paths = paths[1:]
    quiet = quiet or silent

    config_file, overrides = _split_config(config_values)
    overrides.append(_per_file_ignores_flag(extend_per_file_ignores))
    try:
        resolver = Resolver(load(Path(config_file)) if config_file is not None else None,
                            [table for table in overrides if table])
    except ConfigError as error:
        raise click.UsageError(str(error))
    cli = (_codes(select), _codes(ignore), _codes(extend_select))
    try:
        select_codes(cli[0] or None, cli[1], cli[2])  # unknown selectors: a usage error now
    except ValueError as error:
        raise click.UsageError(str(error))

    def settings_for(config: Config) -> Settings:
        return Settings(rules=_rules(config, *cli), fix=fix or diff, unsafe_fixes=unsafe_fixes,
                        per_file_ignores=config.per_file_ignores, root=Path.cwd(),
                        use_prefilter=not no_prefilter,
                        cache_dir=None if no_cache else config.root / CACHE_DIR_NAME,
                        file_timeout=file_timeout if file_timeout is not None
                        else config.file_timeout)

    targets = list(paths) or ["."]
    results: list[FileResult] = []
    problems: list[Diagnostic] = []
    stdin_fixed: Optional[str] = None
    written: dict[str, Path] = {}
    try:
        if targets == ["-"]:
            display = stdin_filename or "-"
            config = resolver.for_path(Path(stdin_filename) if stdin_filename else Path.cwd())
            if show_settings:
                click.echo(_settings_text(display, config, settings_for(config)), nl=False)
                return
            if show_files:
                click.echo(os.path.abspath(display) if stdin_filename else "-")
                return
            result = lint_bytes(sys.stdin.buffer.read(), display, settings_for(config))
            results.append(result)
            if fix and not diff:
                stdin_fixed = result.fixed_text if result.fixed_text is not None \
                    else result.original
        else:
            from eqxlint.gitignore import GitIgnore
            from eqxlint.linter import _matches_any, display_path

            ignores = GitIgnore() if respect_gitignore else None

            def skip(path: str, is_dir: bool, given: bool) -> bool:
                where = Path(path)
                config = resolver.for_path(where.parent if not given or not is_dir else where)
                for folder in {folder for _, folder in config.exclude}:
                    patterns = [p for p, f in config.exclude if f == folder]
                    if _matches_any(Path(os.path.abspath(path)), patterns, folder):
                        return True
                return ignores is not None and not given and ignores.ignored(where, is_dir)

            files, problems = discover(targets, root=Path.cwd(), skip=skip)
            if show_files:
                for path in sorted(os.path.abspath(f) for f in files):
                    click.echo(path)
                return
            groups: dict[int, tuple[Config, list[Path]]] = {}
            for path in files:
                config = resolver.for_path(path)
                groups.setdefault(id(config), (config, []))[1].append(path)
            if show_settings:
                if not files:
                    raise click.UsageError("no file to show the settings of")
                config = resolver.for_path(files[0])
                click.echo(_settings_text(display_path(files[0], Path.cwd()), config,
                                          settings_for(config)), nl=False)
                return
            workers = jobs or default_jobs()
            for config, members in groups.values():
                settings = settings_for(config)
                for path in members:
                    written[display_path(path, settings.root)] = path
                results.extend(lint_paths(members, settings,
                                          write=fix and not diff and not add_noqa,
                                          jobs=workers))
    except ConfigError as error:
        raise click.UsageError(str(error))

    diagnostics = list(problems)
    for result in results:
        diagnostics.extend(result.diagnostics)
    diagnostics.sort(key=Diagnostic.sort_key)
    internal = any(r.internal_error for r in results)

    for result in results:
        if not quiet:
            for warning in result.warnings:
                click.echo(f"eqxlint: warning: {warning}", err=True)
        if result.internal_error and not silent:
            click.echo(f"eqxlint: error: {result.internal_error} (please report this)", err=True)

    if add_noqa:
        added = _add_noqa(results, written, quiet)
        if not silent:
            click.echo(f"Added {added} noqa directive{'s' if added != 1 else ''}.", err=True)
        sys.exit(EXIT_ERROR if internal else EXIT_CLEAN)

    if diff:
        patches = [unified_diff(r.original or "", r.fixed_text or "", r.display)
                   for r in results if r.changed]
        if not silent:
            click.echo("".join(patches), nl=False)
        for problem in diagnostics:  # what could not be diffed, and why
            if problem.code == SYNTAX_ERROR and not silent:
                where = f"{problem.location.row}:{problem.location.column}: " \
                    if problem.location else ""
                click.echo(f"eqxlint: error: {problem.filename}:{where}{problem.code} "
                           f"{problem.message}", err=True)
        if not silent:
            fixes = sum(r.fixed for r in results)
            click.echo(f"Would fix {fixes} error{'s' if fixes != 1 else ''}.", err=True)
        errors = any(d.code == SYNTAX_ERROR for d in diagnostics)
        if internal:
            sys.exit(EXIT_ERROR)
        if exit_zero:
            sys.exit(EXIT_CLEAN)
        sys.exit(EXIT_ERROR if errors else (EXIT_FINDINGS if patches else EXIT_CLEAN))

    options = ReportOptions(unsafe_fixes=unsafe_fixes,
                            color=_use_color(no_color, output_file is not None))
    parts: list[str] = []
    if statistics:
        parts.append(_statistics(diagnostics, unsafe_fixes, output_format == "json"))
    else:
        report = REPORTERS[output_format](diagnostics, options)
        if show_fixes and not fix and output_format == "full":
            report = _with_fix_previews(diagnostics, options)
        parts.append(report)
    fixed = sum(r.fixed for r in results)
    if output_format in ("full", "concise") and not statistics and not quiet:
        if show_fixes and fix and fixed:
            parts.append(_fixed_listing(results))
        parts.append(_summary(diagnostics, fixed, fix, unsafe_fixes, options) + "\n")
    text = "".join(parts)
    if output_file is not None:
        try:
            Path(output_file).write_text(click.unstyle(text), encoding="utf-8")
        except OSError as error:
            raise click.UsageError(f"--output-file {output_file}: {error.strerror or error}")
    elif not silent:
        click.echo(text, nl=False, file=sys.stderr if stdin_fixed is not None else sys.stdout,
                   color=options.color)
    if stdin_fixed is not None:
        sys.stdout.write(stdin_fixed)

    if internal:
        sys.exit(EXIT_ERROR)
    if exit_zero:
        sys.exit(EXIT_CLEAN)
    if any(d.code == SYNTAX_ERROR for d in diagnostics):
        sys.exit(EXIT_ERROR)
    if diagnostics or (exit_non_zero_on_fix and fixed):
        sys.exit(EXIT_FINDINGS)
    sys.exit(EXIT_CLEAN)


def _serve(extra: Sequence[str]) -> None:
    """`eqxlint server`: the language server over stdio (the `server` extra: pygls)."""
    if extra:
        raise click.UsageError("`eqxlint server` takes no paths (to check a folder named "
                               "server: `eqxlint ./server`)")
    try:
        from eqxlint.server import serve
    except ImportError as error:
        raise click.UsageError(f"`eqxlint server` needs pygls ({error}): "
                               "pip install 'eqxlint[server]'")
    serve()


def _rules(config: Config, cli_select: list[str], cli_ignore: list[str],
           cli_extend: list[str]) -> list[str]:
    """The codes in force: the config's selection layers in order, then the command line's.

    As in Ruff, `--select` replaces every earlier choice, `--extend-select` adds on top
    of the config (re-enabling a code the config ignores), and `--ignore` removes.
    """
    from eqxlint.rules import OFF_BY_DEFAULT, all_codes

    def matching(selector: str) -> set[str]:
        return set(select_codes([selector]))

    chosen = {code for code in all_codes() if code not in OFF_BY_DEFAULT}
    layers = [(layer.select, layer.ignore, layer.extend_select) for layer in config.layers]
    layers.append((tuple(cli_select) or None, tuple(cli_ignore), tuple(cli_extend)))
    try:
        for layer_select, layer_ignore, layer_extend in layers:
            if layer_select is not None:
                chosen = set().union(*(matching(s) for s in layer_select))
            for selector in layer_extend:
                chosen |= matching(selector)
            for selector in layer_ignore:
                chosen -= matching(selector)
    except ValueError as error:
        where = f" (in {config.path})" if config.path is not None else ""
        raise click.UsageError(f"{error}{where}")
    return sorted(chosen)


def _summary(diagnostics: Sequence[Diagnostic], fixed: int, fixing: bool, unsafe_fixes: bool,
             options: ReportOptions) -> str:
    """Ruff's closing lines: the count, then what `--fix` (and `--unsafe-fixes`) would do."""
    count = len(diagnostics)
    noun = "error" if count == 1 else "errors"
    if fixing and fixed:
        if count == 0:
            return f"Found {fixed} error{'s' if fixed != 1 else ''} ({fixed} fixed, 0 remaining)."
        return f"Found {count + fixed} errors ({fixed} fixed, {count} remaining)."
    if count == 0:
        return "All checks passed!"
    lines = [f"Found {count} {noun}."]
    applicable = sum(1 for d in diagnostics if fix_applies(d, unsafe_fixes))
    hidden = 0 if unsafe_fixes else sum(
        1 for d in diagnostics if d.fix is not None and d.fix.edits
        and d.fix.applicability == "unsafe")
    star = f"[{click.style('*', fg='cyan') if options.color else '*'}]"
    es = "" if hidden == 1 else "es"
    if applicable and hidden:
        lines.append(f"{star} {applicable} fixable with the `--fix` option ({hidden} hidden "
                     f"fix{es} can be enabled with the `--unsafe-fixes` option).")
    elif applicable:
        lines.append(f"{star} {applicable} fixable with the `--fix` option.")
    elif hidden:
        lines.append(f"No fixes available ({hidden} hidden fix{es} can be enabled with the "
                     "`--unsafe-fixes` option).")
    return "\n".join(lines)


def _fixed_listing(results: Sequence[FileResult]) -> str:
    """`--show-fixes` after `--fix`: what was fixed, per file and rule, as Ruff lists it."""
    from eqxlint.rules import rule_names

    names = rule_names()
    total = sum(r.fixed for r in results)
    lines = [f"Fixed {total} error{'s' if total != 1 else ''}:"]
    for result in sorted(results, key=lambda r: r.display):
        if not result.fixed:
            continue
        lines.append(f"- {result.display}:")
        for code, count in sorted(result.fixed_codes.items()):
            lines.append(f"    {count} × {code} ({names.get(code, '')})")
    return "\n".join(lines) + "\n\n"


def _with_fix_previews(diagnostics: Sequence[Diagnostic], options: ReportOptions) -> str:
    """The full report with each fix shown under its finding (`--show-fixes` without `--fix`)."""
    from eqxlint.report.full import render_one

    blocks = []
    for d in diagnostics:
        block = render_one(d, options)
        if d.fix is not None and d.fix.edits:
            kind = "Safe" if d.fix.applicability == "safe" else "Unsafe"
            block += f"\nℹ {kind} fix: {d.fix.message}\n"
            row = d.location.row if d.location else None
            if d.source_line is not None and row is not None and all(
                    e.location.row == row == e.end_location.row for e in d.fix.edits):
                after = d.source_line
                for edit in sorted(d.fix.edits, key=lambda e: e.location.column, reverse=True):
                    after = (after[:edit.location.column - 1] + edit.content
                             + after[edit.end_location.column - 1:])
                block += f"{row} |-{d.source_line}\n{row} |+{after}\n"
        blocks.append(block)
    return "\n".join(blocks)


def _settings_text(display: str, config: Config, settings: Settings) -> str:
    lines = [f"Resolved settings for: {display!r}",
             f"Settings path: {str(config.path) if config.path else '(none: defaults)'}"]
    if len(config.sources) > 1:
        lines.append("Extends: " + ", ".join(str(p) for p in config.sources[1:]))
    lines += ["", f"rules = {json.dumps(list(settings.codes))}",
              f"per-file-ignores = {json.dumps(config.per_file_ignores)}",
              f"exclude = {json.dumps([p for p, _ in config.exclude])}",
              f"cache-dir = {json.dumps(str(settings.cache_dir) if settings.cache_dir else None)}"]
    return "\n".join(lines) + "\n"


def _add_noqa(results: Sequence[FileResult], paths: dict[str, Path], quiet: bool) -> int:
    """Write `# noqa: CODE` for every remaining finding; the number of lines changed."""
    from eqxlint.linter import DecodeError, decode, write_atomically
    from eqxlint.suppression import UNSUPPRESSIBLE, add_noqa

    added = 0
    for result in results:
        findings = [d for d in result.diagnostics
                    if d.code not in UNSUPPRESSIBLE and d.code != UNUSED_NOQA]
        path = paths.get(result.display)
        if not findings or path is None:
            continue
        if result.display.endswith(".ipynb"):
            if not quiet:
                click.echo(f"eqxlint: warning: {result.display}: --add-noqa does not edit "
                           "notebooks yet; left as it is", err=True)
            continue
        try:
            data = path.read_bytes()
            decoded = decode(data)
        except (OSError, DecodeError) as error:
            click.echo(f"eqxlint: warning: {result.display}: not changed: {error}", err=True)
            continue
        new_text, count = add_noqa(decoded.text, findings, result.display)
        if count:
            try:
                write_atomically(path, new_text.encode(decoded.encoding))
            except (OSError, UnicodeEncodeError) as error:
                click.echo(f"eqxlint: warning: {result.display}: could not write: {error}",
                           err=True)
                continue
            added += count
    return added
