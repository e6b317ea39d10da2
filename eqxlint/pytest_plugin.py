"""eqxlint's pytest plugin: guard a project's training step in its own test suite.

Loaded by pytest through the `pytest11` entry point; importing it imports neither jax
nor equinox (a test session that never uses it pays nothing).

    def test_train_step(eqxlint_check, model, opt_state, batch):
        eqxlint_check(train_step, model, opt_state, *batch)   # fails listing every problem

    @pytest.mark.eqxlint_step(train_step, args=["model", "opt_state", "x", "y"])
    def test_training(model, opt_state, x, y):
        ...                        # check_step runs on train_step(model, opt_state, x, y) first

The marker's `args` (and `kwargs`, a mapping from the step's keyword to a fixture name)
name fixtures whose values are passed to the step; the step itself may also be given as
the name of a fixture.
"""

from __future__ import annotations

from typing import Any, Callable, Generator

import pytest

MARKER = "eqxlint_step"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(step, args=[...], kwargs={{...}}): before the test, run eqxlint.check_step "
        "on `step` with the named fixtures as its arguments; the test fails listing every "
        "problem (EQX101, EQX103, EQX106, EQX503, ...)")


@pytest.fixture
def eqxlint_check() -> Callable[..., None]:
    """`eqxlint_check(step, *args, **kwargs)`: a dry run of the step; fails the test on findings."""
    from eqxlint import assert_step

    return assert_step


def _fixture_value(item: pytest.Function, name: str) -> Any:
    if name in item.funcargs:
        return item.funcargs[name]
    return item._request.getfixturevalue(name)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, Any]:
    marker = pyfuncitem.get_closest_marker(MARKER)
    if marker is not None:
        __tracebackhide__ = True
        _check_marked(pyfuncitem, marker)
    return (yield)


def _check_marked(item: pytest.Function, marker: pytest.Mark) -> None:
    __tracebackhide__ = True
    from eqxlint import assert_step

    if not marker.args:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} needs the step: "
                                f"@pytest.mark.{MARKER}(train_step, args=['model', ...])")
    step = marker.args[0]
    if isinstance(step, str):
        step = _fixture_value(item, step)
    args = [_fixture_value(item, name) for name in marker.kwargs.get("args", ())]
    kwargs = {keyword: _fixture_value(item, name)
              for keyword, name in dict(marker.kwargs.get("kwargs", {})).items()}
    assert_step(step, *args, **kwargs)
