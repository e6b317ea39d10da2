"""Generated files stay true to their sources: rule pages, README table, library knowledge."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

from eqxlint.docs import generated


def test_rule_pages_and_readme_table_are_current() -> None:
    stale = [str(path.relative_to(REPO)) for path, text in generated().items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    assert stale == [], f"run `python -m eqxlint.docs` to regenerate: {stale}"


def test_every_rule_page_exists_and_no_page_is_orphaned() -> None:
    from eqxlint.rules import all_rules

    pages = {path.stem for path in (REPO / "rules").glob("*.md")}
    assert pages == {rule.code for rule in all_rules()}


def test_knowledge_matches_the_installed_libraries() -> None:
    """Re-measure equinox.nn and optax, as the generator does, and compare."""
    completed = subprocess.run([sys.executable, str(REPO / "scripts" / "generate_knowledge.py"),
                                "--check"], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_knowledge_says_what_rules_md_says() -> None:
    """Spot checks of the measured facts against RULES.md's own list."""
    from eqxlint.knowledge import equinox_nn, optax_transforms

    for holds in ("MLP", "Lambda", "MaxPool2d", "AvgPool2d", "Dropout", "MultiheadAttention",
                  "BatchNorm"):
        assert holds in equinox_nn.NON_ARRAY_LEAVES, holds
    for arrays in ("Linear", "Conv2d", "LayerNorm", "Embedding", "GRUCell"):
        assert arrays in equinox_nn.ARRAYS_ONLY, arrays
    transformations = optax_transforms.TRANSFORMATIONS
    assert transformations["sgd"]["accepts_module"] is True
    assert transformations["adam"]["accepts_module"] is False
    for reads in ("adamw", "lion", "lamb", "lars", "adafactor", "add_decayed_weights",
                  "contrib.muon"):
        assert transformations[reads]["reads_params"] is True, reads
    assert transformations["adam"]["reads_params"] is False


def test_jax_transform_tables_say_what_rules_md_says() -> None:
    """EQX201's measured facts (RULES.md), checked against the generated tables."""
    from eqxlint.knowledge import jax_transforms

    accepts = jax_transforms.ACCEPTS
    assert set(accepts["jax.jit"]) == set(jax_transforms.LEAF_KINDS)
    for scalar in ("python_int", "python_float", "python_bool"):
        assert accepts["jax.jit"][scalar] is True, scalar
        assert accepts["jax.vmap(in_axes=0)"][scalar] is False, scalar
    for rejected in ("str", "function", "python_function", "lambda", "object"):
        assert accepts["jax.jit"][rejected] is False, rejected
        assert accepts["jax.grad"][rejected] is False, rejected
    for kind in ("python_int", "python_bool", "integer_array"):
        assert accepts["jax.grad"][kind] is False, kind
        assert accepts["jax.value_and_grad"][kind] is False, kind
    assert accepts["jax.grad"]["python_float"] is True
    assert all(accepts["jax.vmap(in_axes=None)"].values())
    for filtered in ("eqx.filter_jit", "eqx.filter_grad", "eqx.filter_vmap"):
        assert all(accepts[filtered].values()), filtered
    assert not any(accepts["jax.jit(static_argnums)"].values())
    errors = jax_transforms.ERRORS
    assert set(errors) == {(consumer, kind) for consumer, row in accepts.items()
                           for kind, works in row.items() if not works}
    assert errors[("jax.jit", "str")].startswith(
        "TypeError: Error interpreting argument to <function")
    assert "is only 0" in errors[("jax.vmap(in_axes=0)", "python_float")]
    assert "grad requires real- or complex-valued inputs" in errors[("jax.grad", "python_int")]
    assert errors[("jax.jit(static_argnums)", "python_int")].startswith(
        "ValueError: Non-hashable static arguments are not supported")
    assert all(" at 0x" not in line for line in errors.values())
    # A changing step counter: jit keeps it traced, filter_jit makes it static.
    retraces = jax_transforms.RETRACES_ON_CHANGE
    assert retraces["jax.jit"]["python_int"] is False
    assert retraces["eqx.filter_jit"]["python_int"] is True
    assert retraces["eqx.filter_jit"]["inexact_array"] is False


def test_optax_module_params_tables_say_what_rules_md_says() -> None:
    """EQX106's measured facts: MultiSteps rejects module params, bare adamw takes them."""
    from eqxlint.knowledge import optax_transforms

    transformations = optax_transforms.TRANSFORMATIONS
    assert transformations["adamw"]["accepts_module_params"] is True
    assert transformations["sgd"]["accepts_module_params"] is True
    multi_steps = optax_transforms.WRAPPED["MultiSteps(adam)"]
    assert multi_steps["accepts_module_params"] is False
    assert multi_steps["accepts_module_params_jit"] is False
    assert "is not a valid JAX type" in optax_transforms.ERRORS[("MultiSteps(adam)",
                                                                  "module_params")]
    # is_array_like keeps Dropout's Python float and bool: init passes, update fails.
    assert transformations["adam"]["array_like_init"] is True
    assert transformations["adam"]["array_like_update"] is False
    assert optax_transforms.ERRORS[("adam", "array_like_update")].startswith(
        "ValueError: pytree structure error")
    for facts in (*transformations.values(), *optax_transforms.WRAPPED.values()):
        assert {"accepts_module_params", "accepts_module_params_jit", "array_like_init",
                "array_like_update"} <= set(facts)


def test_equinox_nn_field_kinds_are_measured_per_field() -> None:
    from eqxlint.knowledge import equinox_nn, jax_transforms

    kinds = equinox_nn.FIELD_KINDS
    assert kinds["Dropout"] == {"p": "python_float", "inference": "python_bool"}
    assert kinds["Linear"]["weight"] == kinds["Linear"]["bias"] == "inexact_array"
    assert kinds["Linear"]["in_features"] == "static"
    assert kinds["MLP"]["activation"] == "function" and kinds["MLP"]["layers"] == "modules"
    assert kinds["BatchNorm"]["ema_state_index"] == "state_index"
    assert kinds["SpectralNorm"]["layer"] == "module"
    vocabulary = {*jax_transforms.LEAF_KINDS, "static", "module", "modules", "state_index"}
    assert {kind for fields in kinds.values() for kind in fields.values()} <= vocabulary
    assert equinox_nn.CONSTRUCTOR_DEPENDENT_FIELDS["Linear"] == {"bias": ["inexact_array", "none"]}
    assert set(equinox_nn.NON_ARRAY_LEAVES) | set(equinox_nn.ARRAYS_ONLY) <= set(kinds)
