"""`# noqa` read from comment tokens as Ruff reads it; file exemptions; EQX001; --add-noqa."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, run_subprocess

LINE = "model = eqx.apply_updates(eqx.filter(model, eqx.is_array), updates)"
HEAD = "import equinox as eqx\n"


def _codes(tmp_path: Path, source: str, *flags: str) -> tuple[list[tuple[int, str]], str]:
    (tmp_path / "t.py").write_text(source)
    result = run_cli("t.py", "--output-format", "json", "--no-cache", *flags, cwd=tmp_path)
    findings = json.loads(result.stdout)
    return [(f["location"]["row"], f["code"]) for f in findings], result.stderr


@pytest.mark.parametrize("comment", ["# noqa", "# NOQA", "#noqa", "# noqa: EQX101",
                                     "#noqa:EQX101", "# noqa: EQX102, EQX101",
                                     "# noqa:EQX102,EQX101", "# noqa: EQX101 because reasons",
                                     "# type: ignore # noqa: EQX101",
                                     # Ruff reads these as codes too: whitespace is allowed
                                     # after `noqa` and after the colon.
                                     "# noqa:  EQX101", "# noqa : EQX101",
                                     # Ruff and flake8: no colon means a blanket noqa.
                                     "# noqa EQX101"])
def test_well_formed_directives_silence(tmp_path: Path, comment: str) -> None:
    found, warnings = _codes(tmp_path, f"{HEAD}{LINE}  {comment}\n")
    assert found == [] and "warning" not in warnings


@pytest.mark.parametrize("comment", ["# noqa : X", "# noqa-EQX101", "# noqanothing",
                                     "# noqa:", "# noqa: EQX101abc", "# noqa: eqx101"])
def test_malformed_directives_warn_and_silence_nothing(tmp_path: Path, comment: str) -> None:
    found, warnings = _codes(tmp_path, f"{HEAD}{LINE}  {comment}\n")
    assert found == [(2, "EQX101")]
    assert "t.py:2: invalid `# noqa` directive" in warnings


def test_a_listed_code_silences_only_itself(tmp_path: Path) -> None:
    found, _ = _codes(tmp_path, f"{HEAD}{LINE}  # noqa:  EQX102\n")
    assert found == [(2, "EQX101")]


def test_noqa_inside_a_string_is_not_a_comment(tmp_path: Path) -> None:
    source = f'{HEAD}model = eqx.apply_updates(eqx.filter(model, eqx.is_array), "# noqa")\n'
    found, _ = _codes(tmp_path, source)
    assert found == [(2, "EQX101")]
    multiline = f'{HEAD}s = """\n{LINE}  # noqa\n"""\n{LINE}\n'
    found, _ = _codes(tmp_path, multiline)
    assert found == [(5, "EQX101")]


def test_file_level_exemption(tmp_path: Path) -> None:
    body = f"{HEAD}{LINE}\nopt_state = optax.adam(1e-3).init(eqx.nn.MLP(2, 1, 8, 1, key=k))\n"
    body = "import optax\n" + body
    found, _ = _codes(tmp_path, body)
    assert sorted(code for _, code in found) == ["EQX101", "EQX102"]
    found, _ = _codes(tmp_path, "# eqxlint: noqa\n" + body)
    assert found == []
    found, _ = _codes(tmp_path, "# eqxlint: noqa: EQX101\n" + body)
    assert [code for _, code in found] == ["EQX102"]
    # Not on a line of its own: a warning, and no exemption (as Ruff's `# ruff: noqa`).
    found, warnings = _codes(tmp_path, body.replace("import optax\n",
                                                    "import optax  # eqxlint: noqa\n"))
    assert sorted(code for _, code in found) == ["EQX101", "EQX102"]
    assert "must be on a line of its own" in warnings


def test_eqx000_is_never_suppressed(tmp_path: Path) -> None:
    found, _ = _codes(tmp_path, "# eqxlint: noqa\nimport optax\ns = optax.adam(1).init(\n")
    assert [code for _, code in found] == ["EQX000"]


def test_unused_noqa_is_off_by_default_and_reported_when_selected(tmp_path: Path) -> None:
    source = f"{HEAD}model = eqx.apply_updates(model, updates)  # noqa: EQX101, E501\n" \
             "x = 1  # noqa: EQX999\n" + f"{LINE}  # noqa: EQX101\n"
    found, _ = _codes(tmp_path, source)
    assert found == []
    found, _ = _codes(tmp_path, source, "--extend-select", "EQX001")
    assert found == [(2, "EQX001"), (3, "EQX001")]
    completed = run_subprocess("t.py", "--extend-select", "EQX001", "--output-format",
                               "concise", "--no-cache", cwd=tmp_path)
    out = completed.stdout.decode()
    assert "t.py:2:44: EQX001 [*] Unused `noqa` directive (unused: `EQX101`)" in out
    assert "t.py:3:8: EQX001 [*] Unused `noqa` directive (unknown: `EQX999`)" in out
    found, _ = _codes(tmp_path, source, "--select", "EQX1")
    assert found == [], "EQX001 is selected only when named"
    found, _ = _codes(tmp_path, source, "--select", "ALL")
    assert found == [(2, "EQX001"), (3, "EQX001")]


def test_unused_noqa_reports_codes_of_rules_not_enabled(tmp_path: Path) -> None:
    source = f"{HEAD}{LINE}  # noqa: EQX101, EQX502\n"
    (tmp_path / "t.py").write_text(source)
    completed = run_subprocess("t.py", "--select", "EQX101,EQX001", "--output-format",
                               "concise", "--no-cache", cwd=tmp_path)
    assert "EQX001 [*] Unused `noqa` directive (non-enabled: `EQX502`)" in \
        completed.stdout.decode()


def test_unused_noqa_fix_removes_only_the_stale_codes(tmp_path: Path) -> None:
    source = (f"{HEAD}model = eqx.apply_updates(model, u)  # noqa: EQX101  # kept\n"
              f"{LINE}  # noqa: EQX101, EQX502, F401\n"
              "y = 2  # noqa: EQX301\n")
    (tmp_path / "t.py").write_text(source)
    completed = run_subprocess("t.py", "--extend-select", "EQX001", "--fix", "--no-cache",
                               cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (tmp_path / "t.py").read_text() == (
        f"{HEAD}model = eqx.apply_updates(model, u)  # kept\n"
        f"{LINE}  # noqa: EQX101, F401\n"
        "y = 2\n")


def test_add_noqa_adds_codes_and_keeps_comments(tmp_path: Path) -> None:
    source = ("import equinox as eqx\nimport optax\n"
              "opt_state = optax.adam(1e-3).init(eqx.nn.MLP(2, 1, 8, 1, key=k))  # why\n"
              f"{LINE}  # noqa: F401\n"
              f"{LINE}  # noqa\n"
              f's = """{LINE}\n"""\n')
    (tmp_path / "t.py").write_text(source)
    completed = run_subprocess("t.py", "--add-noqa", "--no-cache", cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Added 2 noqa directives." in completed.stderr.decode()
    assert (tmp_path / "t.py").read_text() == (
        "import equinox as eqx\nimport optax\n"
        "opt_state = optax.adam(1e-3).init(eqx.nn.MLP(2, 1, 8, 1, key=k))  # why  # noqa: EQX102\n"
        f"{LINE}  # noqa: EQX101, F401\n"
        f"{LINE}  # noqa\n"
        f's = """{LINE}\n"""\n')
    assert run_cli("t.py", "--no-cache", cwd=tmp_path).exit_code == 0
    again = run_subprocess("t.py", "--add-noqa", "--no-cache", cwd=tmp_path)
    assert "Added 0 noqa directives." in again.stderr.decode()


def test_comment_scanner_agrees_with_the_tokenizer_on_the_standard_library() -> None:
    """eqxlint finds comments with one regex scan; Python's tokenizer is the reference."""
    import io
    import sysconfig
    import tokenize

    from eqxlint.suppression import comments

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    checked = 0
    for path in sorted(stdlib.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
            expected = [(t.start[0], t.start[1], t.string) for t in
                        tokenize.generate_tokens(io.StringIO(text).readline)
                        if t.type == tokenize.COMMENT]
        except (UnicodeDecodeError, SyntaxError, tokenize.TokenError):
            continue
        assert list(comments(text)) == expected, path
        checked += 1
    assert checked > 100
