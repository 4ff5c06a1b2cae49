#!/usr/bin/env bash
# Creates .venv (Python >= 3.10) and installs the package with the given extras, e.g. `test`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${1:+[$1]}"
