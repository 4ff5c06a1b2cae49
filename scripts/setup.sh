#!/usr/bin/env bash
# Creates a virtual environment (Python >= 3.10; VENV, default .venv) and installs the package
# with the given extras, e.g. `test`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".${1:+[$1]}"
