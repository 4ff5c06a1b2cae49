#!/usr/bin/env bash
# The study's runs on a lent GPU machine (JAX, no TensorFlow): the plan, recipe and checkpoints of
# `python benchmarks/comparison.py study --epochs 15`, which finishes what the machine trained.
#
#   bash benchmarks/study_on_gpu.sh prepare              # here: .devdata/ (data), .whl/ (keras wheels)
#   bash benchmarks/study_on_gpu.sh receive              # there, 1st call, carry .devdata/study_1.tar
#   bash benchmarks/study_on_gpu.sh run                  # there, 2nd call at once (the machine still
#                                                        #   warm), carry .devdata/study_2.tar and .whl
#   bash benchmarks/study_on_gpu.sh collect FILES RUNS   # here: the returned runs into RUNS, then
#   python benchmarks/comparison.py study --epochs 15 --runs RUNS   # evaluates them on all val images
#
# The train split's JPEG files travel unchanged (the same images as the CPU runs), in two halves
# because a call carries at most 64 MiB; a warm machine keeps the first half between the calls.
# `run` trains the plan's unfinished runs in order for up to RUN_SECONDS (default 480) with per-epoch
# figures on 10 val images per class, and returns each run it touched (checkpoint, history,
# config) as $OUT/<run>.tar, finished or not (at most 8 files come back: about 4 runs fit the
# time), and `comparison.py study` resumes either. Each history
# row names its backend, and the run's result JSON lists them ("jax+tensorflow" when mixed).
set -euo pipefail
cd "$(dirname "$0")/.."
STEP=${1:-}
KERAS_WHEELS="keras==3.15.1 namex==0.1.0 optree==0.20.0"
VAL_PER_CLASS=10

prepare() {
  local archive=${DATA:-../shared/data/imagenette128_q90.tar.gz}
  mkdir -p .devdata .whl
  python3 - "$archive" "$VAL_PER_CLASS" <<'EOF'
import sys, tarfile
archive, val_per_class = sys.argv[1], int(sys.argv[2])
with tarfile.open(archive, "r:*") as source:
    members = sorted((m for m in source if m.isfile()), key=lambda m: m.name)
    train = [m for m in members if m.name.startswith("train/")]
    val = [m for m in members if m.name.startswith("val/")]
    kept, per_class = [], {}
    for m in val:  # the first images of each class in sorted order, as --val-per-class takes them
        wnid = m.name.split("/")[1]
        per_class[wnid] = per_class.get(wnid, 0) + 1
        if per_class[wnid] <= val_per_class:
            kept.append(m)
    half = len(train) // 2
    for path, part in ((".devdata/study_1.tar", train[:half]), (".devdata/study_2.tar", train[half:] + kept)):
        with tarfile.open(path, "w") as out:
            for m in part:
                out.addfile(m, source.extractfile(m))
        print(f"{path}: {len(part)} images")
EOF
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $KERAS_WHEELS
  du -b .devdata/*.tar .whl/*.whl
}

receive() {
  test -f .devdata/study_1.tar || { echo "no .devdata/study_1.tar: carry it (run prepare first)" >&2; exit 3; }
  echo "received .devdata/study_1.tar: $(du -b .devdata/study_1.tar | cut -f1) bytes"
}

run() {
  for part in 1 2; do
    test -f .devdata/study_$part.tar || {
      echo "no .devdata/study_$part.tar on this machine: carry study_1.tar in a 'receive' call, then at once" \
        "'run' carrying study_2.tar and .whl (a machine cold between the calls starts bare)" >&2
      exit 3
    }
  done
  if ! python3 -c "import keras" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
  fi
  export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
  export XLA_PYTHON_CLIENT_PREALLOCATE=false
  local data=/tmp/study_data runs=/tmp/study_runs out=${OUT:-runs/study_on_gpu}
  mkdir -p "$data" "$runs" "$out"
  for part in 1 2; do tar -xf .devdata/study_$part.tar -C "$data"; done
  local status=0
  timeout "${RUN_SECONDS:-480}" python3 benchmarks/comparison.py study --epochs 15 --runs "$runs" --data "$data" \
    --workers "$(nproc)" --train-only --val-per-class "$VAL_PER_CLASS" "${@:2}" || status=$?
  [ "$status" = 124 ] && echo "stopped after ${RUN_SECONDS:-480} s; the last run resumes from its last epoch"
  for folder in "$runs"/*/; do
    local name
    name=$(basename "$folder")
    test -f "$folder/checkpoint.npz" && test -f "$folder/history.json" || continue  # an epoch finished
    tar -cf "$out/$name.tar" -C "$runs" "$name/checkpoint.npz" "$name/history.json" "$name/config.json"
    echo "$out/$name.tar: $(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" \
      "$folder/history.json") epochs"
  done
  [ "$status" = 0 ] || [ "$status" = 124 ] || exit "$status"
}

collect() {
  local files=${2:?collect FILES RUNS: FILES holds the returned <run>.tar} runs=${3:?collect FILES RUNS}
  if pgrep -f "comparison.py study" >/dev/null; then
    echo "a comparison.py study is running: stop it first (it resumes), so no run changes under it" >&2
    exit 3
  fi
  mkdir -p "$runs"
  for archive in "$files"/*.tar; do
    python3 - "$archive" "$runs" <<'EOF'
import io, json, os, shutil, sys, tarfile, tempfile
archive, runs = sys.argv[1:]
with tempfile.TemporaryDirectory() as tmp:
    with tarfile.open(archive) as source:
        source.extractall(tmp, filter="data")
    (name,) = os.listdir(tmp)
    def epochs(folder):
        try:
            with open(os.path.join(folder, "history.json")) as f:
                return len(json.load(f))
        except FileNotFoundError:
            return 0
    here, there = epochs(os.path.join(runs, name)), epochs(os.path.join(tmp, name))
    if there <= here:
        print(f"{name}: kept the {here} epochs here (the machine's copy has {there})")
    else:
        shutil.rmtree(os.path.join(runs, name), ignore_errors=True)
        shutil.copytree(os.path.join(tmp, name), os.path.join(runs, name))
        print(f"{name}: {there} epochs from the machine (here: {here})")
EOF
  done
  echo "next: python benchmarks/comparison.py study --epochs 15 --runs $runs"
}

case "$STEP" in
  prepare | receive | run | collect) "$STEP" "$@" ;;
  *) echo "usage: bash benchmarks/study_on_gpu.sh prepare|receive|run|collect FILES RUNS" >&2; exit 2 ;;
esac
