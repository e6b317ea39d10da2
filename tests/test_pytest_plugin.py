"""The pytest plugin, as a project's own test suite uses it: a real pytest subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

STEPS = '''
import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest

optim = optax.adam(1e-3)


def loss(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


@eqx.filter_jit
def good_step(model, opt_state, x, y):
    grads = eqx.filter_grad(loss)(model, x, y)
    updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
    return eqx.apply_updates(model, updates), opt_state


@eqx.filter_jit
def buggy_step(model, opt_state, x, y):
    grads = eqx.filter_grad(loss)(model, x, y)
    updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
    return eqx.apply_updates(eqx.filter(model, eqx.is_array), updates), opt_state


@pytest.fixture
def model():
    return eqx.nn.MLP(2, 1, 8, 1, key=jax.random.PRNGKey(0))


@pytest.fixture
def opt_state(model):
    return optim.init(eqx.filter(model, eqx.is_inexact_array))


@pytest.fixture
def x():
    return jnp.ones((8, 2))


@pytest.fixture
def y():
    return jnp.ones((8, 1))
'''

TESTS = '''
from steps import *


def test_fixture_good(eqxlint_check, model, opt_state, x, y):
    eqxlint_check(good_step, model, opt_state, x, y)


def test_fixture_buggy(eqxlint_check, model, opt_state, x, y):
    eqxlint_check(buggy_step, model, opt_state, x, y)


@pytest.mark.eqxlint_step(good_step, args=["model", "opt_state", "x", "y"])
def test_marker_good():
    pass


@pytest.mark.eqxlint_step(buggy_step, args=["model", "opt_state"], kwargs={"x": "x", "y": "y"})
def test_marker_buggy():
    pass
'''


def test_fixture_and_marker_in_a_real_pytest_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(steps=STEPS, test_training=TESTS)
    pytester.makeconftest("from steps import model, opt_state, x, y  # noqa: F401\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    output = result.stdout.str()
    assert "FAILED test_training.py::test_fixture_buggy" in output
    assert "FAILED test_training.py::test_marker_buggy" in output
    assert "eqxlint found 2 problems with this training step" in output
    assert "EQX101 `model.activation` is a function in the model the step was given" in output
    assert "eqxlint/runtime/step.py" not in output  # the user's line, not eqxlint's frames


def test_the_marker_is_registered_and_loading_the_plugin_imports_no_jax() -> None:
    code = ("import sys, pytest\n"
            "status = pytest.main(['--markers', '-p', 'no:cacheprovider'])\n"
            "print('plugin loaded:', 'eqxlint.pytest_plugin' in sys.modules)\n"
            "print('jax imported:', 'jax' in sys.modules)\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=120)
    assert "@pytest.mark.eqxlint_step(step, args=[...], kwargs={...})" in completed.stdout
    assert "plugin loaded: True" in completed.stdout
    assert "jax imported: False" in completed.stdout, completed.stdout[-2000:]
