#!/usr/bin/env bash
# The linters eqxlint is compared with, in a venv of their own (TorchFix pins an old libcst).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python3 -m venv "$here/.venv-tools"
"$here/.venv-tools/bin/pip" install --quiet fixit torchfix flake8 ruff
"$here/.venv-tools/bin/pip" list 2>/dev/null | grep -iE '^(fixit|torchfix|flake8|ruff|libcst) '
