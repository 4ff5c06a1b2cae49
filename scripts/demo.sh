#!/usr/bin/env bash
# Sets up .venv and runs the end-to-end demo on the Imagenette archive in ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/nlpool demo "$@"
