"""The first looks of EQX201 and EQX203 (ModuleFlow, on `ast`) refuse a file only where
the check cannot fire: shapes where the module comes from the project's other modules,
a renamed import, a method, a parameter, a re-export under another name."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from eqxlint.parse import lint_text
from eqxlint.rules import rules_by_code
from eqxlint.rules.first_look import FirstLook, prefilter_view
from eqxlint.semantics.project import ImportedSources, ProjectIndex

RULES = [rules_by_code()[code] for code in ("EQX201", "EQX203")]

PACKAGE = {
    "pkg/__init__.py": """
        from .model import Net as Renamed
        from .model import make_model
    """,
    "pkg/model.py": """
        from typing import Callable
        import equinox as eqx
        import jax

        class Net(eqx.Module):
            act: Callable

            def __init__(self):
                self.act = jax.nn.relu

        def make_model():
            return eqx.nn.MLP(2, 2, 8, 1, key=jax.random.PRNGKey(0))

        DEFAULT = eqx.nn.MLP(2, 2, 8, 1, key=jax.random.PRNGKey(0))
    """,
}

# (file, the rules it must fire) -- none of these files spells `equinox` itself.
SCRIPTS = {
    "factory.py": ("""
        import jax
        from pkg.model import make_model

        model = make_model()
        jax.lax.scan(body, (model, 1), None, length=3)
    """, {"EQX203"}),
    "reexported.py": ("""
        from jax import lax as L
        from pkg import Renamed

        def run(h):
            net = Renamed()
            carry = (net, h)
            a, b = carry
            return L.while_loop(lambda s: True, lambda s: s, (a, 0))
    """, {"EQX203"}),
    "value.py": ("""
        import jax
        from pkg.model import DEFAULT

        out = jax.lax.fori_loop(0, 3, lambda i, m: m, DEFAULT)
    """, {"EQX203"}),
    "module_alias.py": ("""
        import jax
        import pkg.model as M

        jax.jit(M.DEFAULT)
    """, {"EQX203"}),
    "annotated.py": ("""
        import jax
        import pkg

        def loss(model: pkg.model.Net, x):
            return x

        step = jax.jit(loss)
    """, {"EQX201"}),
    "trainer.py": ("""
        import jax
        from pkg import make_model

        @jax.jit
        def loss(model, x):
            return model(x)

        class Trainer:
            def __init__(self, model):
                self.model = model

            def step(self, x):
                return jax.lax.cond(True, f, g, self.model, x)

        t = Trainer(make_model())
        loss(make_model(), 1)
    """, {"EQX201", "EQX203"}),
    "renamed_consumers.py": ("""
        from jax.lax import scan as S
        from jax import jit as J
        from jax import grad
        from pkg import make_model

        model = make_model()
        S(body, model, None)
        J(model, donate_argnums=0)

        def  step (m, x):
            return m(x)

        g = grad(step)(model, 1)
    """, {"EQX201", "EQX203"}),
    "unrelated.py": ("""
        import jax
        from pkg import make_model

        def body(c, x):
            return c + x, None

        model = make_model()
        total, _ = jax.lax.scan(body, 0.0, xs)
        f = jax.jit(lambda x: x + 1)
    """, set()),
}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_the_first_look_keeps_every_finding_that_comes_from_the_project(
        tmp_path: Path, name: str) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    _write(tmp_path, PACKAGE)
    source, expected = SCRIPTS[name]
    _write(tmp_path, {name: source})
    path = (tmp_path / name).resolve()
    text = path.read_text()
    found = {}
    for prefilter in (False, True):
        diagnostics = lint_text(text, str(path), RULES, use_prefilter=prefilter, path=path,
                                project=ProjectIndex())
        found[prefilter] = sorted((d.code, d.location.row) for d in diagnostics)
    assert found[True] == found[False]
    assert {code for code, _ in found[False]} == expected
    if not expected:  # and the first look does refuse it
        data = prefilter_view(text.encode())
        look = FirstLook(data, ImportedSources(ProjectIndex(), path, data))
        assert not any(rule.may_fire(data, look) for rule in RULES)


def test_a_file_python_cannot_parse_goes_to_the_check() -> None:
    # A PEP 701 f-string (Python 3.12): no rewrite makes it Python 3.11.
    source = b"import equinox as eqx\nimport jax\ns = f\"{d[\"k\"]}\"\n" \
             b"jax.lax.scan(f, model, xs)\n@jax.jit\ndef f(m: eqx.nn.MLP): ...\n"
    if FirstLook(source).tree() is not None:
        pytest.skip("this Python parses PEP 701 syntax")
    assert all(rule.may_fire(source, FirstLook(source)) for rule in RULES)
