"""The project, not the file: findings across modules equal their single-file twin's.

A small project of several files (src layout, relative imports, `__init__`
re-exports, a helper that builds the optimizer, a Trainer holding model and
optimizer as attributes, a script importing the package as `M`, a notebook beside
it) is linted with the real CLI, and compared statement by statement with the same
code pasted into one file. The linter reads the source; it never imports it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODEL = '''
    import equinox as eqx
    import jax
    import jax.numpy as jnp


    class CNN(eqx.Module):
        layers: list

        def __init__(self, key):
            key1, key2 = jax.random.split(key)
            self.layers = [eqx.nn.Conv2d(1, 3, kernel_size=4, key=key1), eqx.nn.MaxPool2d(2),
                           jax.nn.relu, jnp.ravel, eqx.nn.Linear(1728, 10, key=key2)]

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return x


    class StatefulNet(eqx.Module):
        linear: eqx.nn.Linear
        norm: eqx.nn.BatchNorm

        def __init__(self, key):
            self.linear = eqx.nn.Linear(4, 4, key=key)
            self.norm = eqx.nn.BatchNorm(4, axis_name="batch")

        def __call__(self, x, state):
            return self.norm(self.linear(x), state)
'''
OPTIM = '''
    import optax


    def build_optimizer(lr):
        return optax.adamw(lr)
'''
TRAINER = '''
    import jax


    class Trainer:
        def __init__(self, lr, seed):
            self.model = CNN(jax.random.PRNGKey(seed))
            self.optim = build_optimizer(lr)
            self.opt_state = self.optim.init(self.model)
'''
TRAIN = '''
    import jax
    import jax.numpy as jnp

    model = CNN(jax.random.PRNGKey(0))
    optim = build_optimizer(3e-4)
    opt_state = optim.init(model)


    @jax.jit
    def evaluate(model: CNN, x):
        return jnp.argmax(model(x))


    def step(model, opt_state, grads):
        updates, opt_state = optim.update(grads, opt_state)
        return updates, opt_state


    net = M.StatefulNet(jax.random.PRNGKey(1))
    y = net(jnp.ones(4))
'''
NOTEBOOK_CELL = '''import jax
import optax
from cnnproj.model import CNN

opt_state = optax.adam(1e-3).init(CNN(jax.random.PRNGKey(0)))'''
EXPECTED = {
    ("trainer.py", "self.opt_state = self.optim.init(self.model)", "EQX102"),
    ("train.py", "opt_state = optim.init(model)", "EQX102"),
    ("train.py", "@jax.jit", "EQX201"),
    ("train.py", "updates, opt_state = optim.update(grads, opt_state)", "EQX103"),
    ("train.py", "y = net(jnp.ones(4))", "EQX302"),
}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def _notebook(cell: str) -> str:
    return json.dumps({"cells": [{"cell_type": "code", "execution_count": None, "metadata": {},
                                  "outputs": [], "source": cell.splitlines(keepends=True)}],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    _write(root / "pyproject.toml", "[project]\nname = 'cnnproj'\n")
    package = root / "src" / "cnnproj"
    _write(package / "__init__.py", "from .model import CNN\nfrom .optim import build_optimizer\n")
    _write(package / "model.py", MODEL)
    _write(package / "optim.py", OPTIM)
    _write(package / "trainer.py", "from .model import CNN\nfrom .optim import build_optimizer\n"
           + textwrap.dedent(TRAINER))
    _write(root / "scripts" / "train.py",
           "import cnnproj.model as M\nfrom cnnproj import CNN, build_optimizer\n"
           + textwrap.dedent(TRAIN))
    (root / "notebooks").mkdir()
    (root / "notebooks" / "explore.ipynb").write_text(_notebook(NOTEBOOK_CELL), encoding="utf-8")
    return root


def _findings(folder: Path, *paths: str, cache: bool = False) -> list[dict]:
    command = [sys.executable, "-m", "eqxlint", "--output-format", "json", *paths]
    if not cache:
        command.insert(3, "--no-cache")
    completed = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300)
    assert completed.returncode in (0, 1), completed.stderr
    return json.loads(completed.stdout)


def _statements(findings: list[dict], root: Path) -> set[tuple[str, str, str]]:
    found = set()
    for finding in findings:
        path = root / finding["filename"]
        if path.suffix == ".ipynb":
            found.add((path.name, f"cell {finding['cell']}", finding["code"]))
            continue
        line = path.read_text(encoding="utf-8").splitlines()[finding["location"]["row"] - 1]
        found.add((path.name, line.strip(), finding["code"]))
    return found


def test_a_project_of_several_files_gives_the_expected_findings(project: Path) -> None:
    found = _statements(_findings(project, "."), project)
    assert found == EXPECTED | {("explore.ipynb", "cell 1", "EQX102")}


def test_one_staged_file_still_reads_the_modules_it_imports(project: Path) -> None:
    """What pre-commit runs: `eqxlint scripts/train.py` alone."""
    found = _statements(_findings(project, "scripts/train.py"), project)
    assert found == {item for item in EXPECTED if item[0] == "train.py"}


def test_the_single_file_twin_gives_the_same_findings_on_the_same_statements(
        tmp_path: Path, project: Path) -> None:
    twin = tmp_path / "twin"
    body = "\n\n".join(textwrap.dedent(part) for part in (MODEL, OPTIM, TRAINER, TRAIN))
    _write(twin / "train.py", "import cnnproj.model as M\n" + body.replace("M.StatefulNet", "StatefulNet"))
    single = {(line.replace("M.StatefulNet", "StatefulNet"), code)
              for _, line, code in _statements(_findings(twin, "."), twin)}
    several = {(line.replace("M.StatefulNet", "StatefulNet"), code)
               for name, line, code in _statements(_findings(project, "."), project)
               if name != "explore.ipynb"}
    assert single == several


def test_the_cache_rechecks_a_file_when_a_module_it_imports_changes(project: Path) -> None:
    first = _statements(_findings(project, "scripts/train.py", cache=True), project)
    assert ("train.py", "opt_state = optim.init(model)", "EQX102") in first
    again = _statements(_findings(project, "scripts/train.py", cache=True), project)
    assert again == first
    model = project / "src" / "cnnproj" / "model.py"
    # The CNN now holds arrays only: its optimizer may be initialised on it whole.
    model.write_text(model.read_text(encoding="utf-8")
                     .replace("eqx.nn.MaxPool2d(2),\n", "")
                     .replace("jax.nn.relu, jnp.ravel, ", ""), encoding="utf-8")
    after = _statements(_findings(project, "scripts/train.py", cache=True), project)
    assert ("train.py", "opt_state = optim.init(model)", "EQX102") not in after
    assert ("train.py", "updates, opt_state = optim.update(grads, opt_state)", "EQX103") in after


def test_the_cache_rechecks_a_file_when_an_import_now_finds_another_module(
        project: Path) -> None:
    """A warm run reuses the last run's dependency digests only while every folder it
    listed and every file it read are unchanged: a new module beside the script, which
    the script's import now finds first, makes the findings those of a cold run."""
    first = _statements(_findings(project, "scripts/train.py", cache=True), project)
    assert ("train.py", "opt_state = optim.init(model)", "EQX102") in first
    assert list((project / ".eqxlint_cache").rglob("project-layout"))
    shadow = project / "scripts" / "cnnproj"
    shutil.copytree(project / "src" / "cnnproj", shadow)
    model = shadow / "model.py"
    model.write_text(model.read_text(encoding="utf-8").replace("eqx.nn.MaxPool2d(2),\n", "")
                     .replace("jax.nn.relu, jnp.ravel, ", ""), encoding="utf-8")
    warm = _statements(_findings(project, "scripts/train.py", cache=True), project)
    assert warm == _statements(_findings(project, "scripts/train.py"), project)
    assert ("train.py", "opt_state = optim.init(model)", "EQX102") not in warm


def test_relative_imports_above_the_package_and_cycles_do_not_break_the_run(
        tmp_path: Path) -> None:
    root = tmp_path / "cyc"
    _write(root / "setup.cfg", "")
    _write(root / "pkg" / "__init__.py", "from .a import A\n")
    _write(root / "pkg" / "a.py", "from .b import B\nimport optax\nA = B\n"
           "opt = optax.adam(1e-3)\nstate = opt.init(B)\n")
    _write(root / "pkg" / "b.py", "from .a import A\nB = A\n")
    _write(root / "pkg" / "c.py", "from ...outside import X\nimport optax\n"
           "optax.adam(1e-3).init(X)\n")
    assert _findings(root, ".") == []


def test_the_prefilter_reads_the_imported_modules_and_loses_no_finding(project: Path) -> None:
    """A rule that may learn what it needs from an imported module is run on a file when
    that module's text holds the rule's words; parsing every file finds nothing more."""
    with_prefilter = _statements(_findings(project, "."), project)
    command = [sys.executable, "-m", "eqxlint", "--no-cache", "--no-prefilter",
               "--output-format", "json", "."]
    completed = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1, completed.stderr
    assert _statements(json.loads(completed.stdout), project) == with_prefilter


def test_every_import_statement_counts_as_a_dependency(tmp_path: Path) -> None:
    """Consecutive `from` imports, bracketed and continued lists: each module is read."""
    from eqxlint.semantics.project import ProjectIndex

    root = tmp_path / "proj"
    _write(root / "pyproject.toml", "[project]\nname = 'p'\n")
    for name in ("a", "b", "c", "d", "e"):
        _write(root / "pkg" / f"{name}.py", f"X_{name} = 1\n")
    _write(root / "pkg" / "__init__.py", "")
    importer = root / "pkg" / "main.py"
    _write(importer, "from .a import X_a\nfrom .b import X_b\nfrom .c import (\n    X_c,\n)\n"
                     "import pkg.d, \\\n    pkg.e\n")
    found = ProjectIndex().dependencies(importer, importer.read_bytes())
    assert {path.name for path in found} >= {"a.py", "b.py", "c.py", "d.py", "e.py"}


def test_imported_texts_are_searched_one_by_one_even_when_joined(tmp_path: Path) -> None:
    """The pre-filter searches the imported modules' texts joined (once per set of
    texts): a pattern anchored at a line start still matches where each text begins, and
    no match runs from one text into the next."""
    from eqxlint.rules.first_look import IMPORTS_PUBLIC_OPTAX, FirstLook, mentioned_in_project
    from eqxlint.semantics.project import ImportedSources, ProjectIndex

    root = tmp_path / "proj"
    _write(root / "pyproject.toml", "[project]\nname = 'p'\n")
    _write(root / "pkg" / "__init__.py", "")
    _write(root / "pkg" / "a.py", "X = 1\nopt = make()\nopt.  # a trailing comment, no newline")
    _write(root / "pkg" / "b.py", "import optax\ninit(1)\n")
    importer = root / "pkg" / "main.py"
    _write(importer, "from .a import X\nfrom .b import optax\n")
    index = ProjectIndex()
    data = importer.read_bytes()
    look = FirstLook(data, ImportedSources(index, importer, data))
    assert [path.name for path in index.dependencies(importer, data)] == ["a.py", "b.py"]
    assert mentioned_in_project(data, look, IMPORTS_PUBLIC_OPTAX)
    assert not mentioned_in_project(data, look, b".init(")
    assert mentioned_in_project(data, look, b"make")  # asked again: the memo answers
    assert mentioned_in_project(data, look, IMPORTS_PUBLIC_OPTAX)
def test_an_optimizer_built_in_an_imported_module_still_reaches_the_optax_rules(
        tmp_path: Path) -> None:
    """EQX102/103/106's first looks read the optax factory in the module that spells it:
    here a config module, and a bracketed from-import (a comment with brackets inside)
    under another name."""
    root = tmp_path / "proj"
    _write(root / "pyproject.toml", "[project]\nname = 'p'\n")
    _write(root / "pkg" / "__init__.py", "")
    _write(root / "pkg" / "cfg.py", "import optax\n\n"
           "optim = optax.MultiSteps(optax.adamw(1e-3), every_k_schedule=2)\n")
    _write(root / "pkg" / "names.py", "from optax import (  # optimizers (the fast ones)\n"
           "    lion as make_optimizer,\n)\n")
    _write(root / "pkg" / "train.py", '''
        import equinox as eqx
        import jax

        from .cfg import optim
        from .names import make_optimizer

        model = eqx.nn.MLP(2, 2, 8, 2, key=jax.random.PRNGKey(0))
        opt_state = optim.init(model)
        updates, opt_state = optim.update(grads, opt_state, model)
        other = make_optimizer(1e-4)
        updates, state = other.update(grads, state)
    ''')
    with_prefilter = _statements(_findings(root, "."), root)
    assert {code for _, _, code in with_prefilter} >= {"EQX102", "EQX103", "EQX106"}
    command = [sys.executable, "-m", "eqxlint", "--no-cache", "--no-prefilter",
               "--output-format", "json", "."]
    completed = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert _statements(json.loads(completed.stdout), root) == with_prefilter


def test_a_model_filtered_in_an_imported_helper_still_reaches_eqx101(tmp_path: Path) -> None:
    """EQX101's first look reads the helper's filter call: the tree map's target must be
    spelled there as the filter's first argument (or `pytree=`), as the check compares;
    the filter may be imported under another name there."""
    root = tmp_path / "proj"
    _write(root / "pyproject.toml", "[project]\nname = 'p'\n")
    _write(root / "pkg" / "__init__.py", "")
    _write(root / "pkg" / "helpers.py", '''
        import equinox as eqx


        def trainable(model):
            return eqx.filter(model, eqx.is_array)


        def arrays_of(net):
            return eqx.filter(filter_spec=eqx.is_array, pytree=(net))


        class Holder:
            def params(self):
                return eqx.partition(
                    self.model,  # the model, split
                    eqx.is_array)[0]
    ''')
    _write(root / "pkg" / "aliased.py", '''
        import equinox
        from equinox import partition as split


        def weights(tree):
            return split(tree, equinox.is_array)[0]
    ''')
    _write(root / "pkg" / "train.py", '''
        import equinox as eqx
        import jax

        from .helpers import Holder, arrays_of, trainable


        def step(model, updates):
            model = eqx.apply_updates(trainable(model), updates)
            return model


        def sgd(net, grads):
            net = jax.tree_util.tree_map(lambda p, g: p - g, arrays_of(net), grads)
            return net


        class Trainer(Holder):
            def step(self, updates):
                self.model = eqx.apply_updates(self.params(), updates)
    ''')
    _write(root / "pkg" / "by_hand.py", '''
        import jax

        from .aliased import weights


        def by_hand(tree, grads):
            tree = jax.tree_util.tree_map(lambda p, g: p - g, weights(tree), grads)
            return tree
    ''')
    with_prefilter = _statements(_findings(root, "."), root)
    command = [sys.executable, "-m", "eqxlint", "--no-cache", "--no-prefilter",
               "--output-format", "json", "."]
    completed = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert _statements(json.loads(completed.stdout), root) == with_prefilter
    assert {line for _, line, code in with_prefilter if code == "EQX101"} >= {
        "model = eqx.apply_updates(trainable(model), updates)",
        "net = jax.tree_util.tree_map(lambda p, g: p - g, arrays_of(net), grads)",
        "tree = jax.tree_util.tree_map(lambda p, g: p - g, weights(tree), grads)"}
