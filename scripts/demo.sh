#!/usr/bin/env bash
# Sets up the virtual environment (VENV, default .venv; main install, no test extras) and runs
# the end-to-end demo on the Imagenette archive in ../shared/data. Arguments go to `nlpool demo`
# (e.g. --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
bash scripts/setup.sh
"$VENV/bin/nlpool" demo "$@"
