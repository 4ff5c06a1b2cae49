#!/usr/bin/env bash
# Sets up .venv with the test extras and runs the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
export TF_CPP_MIN_LOG_LEVEL=3
# two workers, one test file each at a time (module fixtures stay in one process)
.venv/bin/python -m pytest -q -n 2 --dist loadfile --durations=25 "$@"
