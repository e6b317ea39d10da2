"""The real `pre-commit` binary, a temporary git repository, and this checkout as the hook repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BUGGY = "import equinox as eqx\nmodel = eqx.apply_updates(eqx.filter(model, eqx.is_array), u)\n"
FIXED = "import equinox as eqx\nmodel = eqx.apply_updates(model, u)\n"
HOOK_REPO_FILES = ["pyproject.toml", "README.md", ".pre-commit-hooks.yaml", "eqxlint"]


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=600)


def _pre_commit() -> list[str]:
    found = shutil.which("pre-commit", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("pre-commit is not installed: `pip install -e '.[dev]'`")
    return [found]


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """This checkout as it is now (committed or not), as a git repo pre-commit can clone."""
    repo = tmp_path_factory.mktemp("hook-repo")
    for name in HOOK_REPO_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, repo / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, repo / name)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    assert _git(repo, "commit", "-q", "-m", "hook repo").returncode == 0
    rev = _git(repo, "rev-parse", "HEAD").stdout.strip()
    return repo, rev


def test_commit_is_refused_with_the_finding_then_accepted_when_fixed(
        hook_repo: tuple[Path, str], tmp_path: Path) -> None:
    hooks, rev = hook_repo
    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "-q")
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n- repo: {hooks}\n  rev: {rev}\n  hooks:\n  - id: eqxlint\n")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    installed = subprocess.run([*_pre_commit(), "install"], cwd=project, capture_output=True,
                               text=True, env=env, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    (project / "unstaged.py").write_text(BUGGY)  # never staged: the hook must not see it
    (project / "train.py").write_text(BUGGY)
    _git(project, "add", ".pre-commit-config.yaml", "train.py")

    refused = subprocess.run(["git", "commit", "-m", "buggy"], cwd=project, capture_output=True,
                             text=True, env={**env, "GIT_AUTHOR_NAME": "t",
                                             "GIT_AUTHOR_EMAIL": "t@example.com",
                                             "GIT_COMMITTER_NAME": "t",
                                             "GIT_COMMITTER_EMAIL": "t@example.com"},
                             timeout=900)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "train.py:2:9: EQX101" in output
    assert "unstaged.py" not in output
    assert _git(project, "rev-parse", "--verify", "HEAD").returncode != 0  # nothing committed

    (project / "train.py").write_text(FIXED)
    _git(project, "add", "train.py")
    accepted = _git(project, "commit", "-m", "fixed")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "eqxlint" in accepted.stdout + accepted.stderr and "Passed" in accepted.stdout + \
        accepted.stderr


TWO_CODES = ("import equinox as eqx\nimport optax\n"
             "opt_state = optax.adam(1e-3).init(eqx.nn.MLP(2, 1, 8, 1, key=k))\n"
             "model = eqx.apply_updates(eqx.filter(model, eqx.is_array), u)\n")


def test_staged_files_under_different_configs_get_their_own_settings(
        hook_repo: tuple[Path, str], tmp_path: Path) -> None:
    """pre-commit passes both files in one run: each must still follow its own pyproject."""
    hooks, rev = hook_repo
    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "-q")
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n- repo: {hooks}\n  rev: {rev}\n  hooks:\n  - id: eqxlint\n")
    for name, ignore in (("a", "EQX101"), ("b", "EQX102")):
        (project / name).mkdir()
        (project / name / "pyproject.toml").write_text(f'[tool.eqxlint]\nignore = ["{ignore}"]\n')
        (project / name / "train.py").write_text(TWO_CODES)
    _git(project, "add", "-A")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    run = subprocess.run([*_pre_commit(), "run", "--all-files"], cwd=project,
                         capture_output=True, text=True, env=env, timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "a/train.py:3:13: EQX102" in output and "b/train.py:4:9: EQX101" in output
    assert "a/train.py:4:9: EQX101" not in output and "b/train.py:3:13: EQX102" not in output


def test_readme_repo_local_snippet_works(tmp_path: Path) -> None:
    """The README's `repo: local` hook, as written there, with eqxlint on PATH."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    snippet = readme.split("<!-- precommit:local -->", 1)[1].split("```yaml\n", 1)[1]
    snippet = snippet.split("```", 1)[0]
    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "-q")
    (project / ".pre-commit-config.yaml").write_text(snippet)
    (project / "train.py").write_text(BUGGY)
    _git(project, "add", "-A")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run([*_pre_commit(), "run", "--all-files"], cwd=project,
                         capture_output=True, text=True, env=env, timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode != 0 and "train.py:2:9: EQX101" in output, output
    (project / "train.py").write_text(FIXED)
    _git(project, "add", "-A")
    run = subprocess.run([*_pre_commit(), "run", "--all-files"], cwd=project,
                         capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
