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
