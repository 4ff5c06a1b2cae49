#!/usr/bin/env bash
# How mbv2_sa_035_96_imagenette and mbv2_sa_035_96_4222121_imagenette were trained: on a GPU
# machine that has JAX but no TensorFlow, with the Keras 3 JAX backend (the layers use keras.ops
# only). mbv2_sa_035_96_imagenette_e30 and mbv2_lip_035_96_imagenette were trained on CPU with
# `nlpool train --downsample sa|lip --epochs 30 --batch-size 64 --seed 0` (see their manifests).
#
# Prepare on a machine with the project installed (the tar must stay small enough to copy):
#   - .whl/: cp312 wheels of keras==3.15.1, namex==0.1.0 and optree==0.20.0
#   - .devdata/train.tar: the Imagenette train split (JPEG re-encoded at quality 80) and
#     5 val images per class (a smoke check only; presets are measured by zoo/make_preset.py)
# Then on the GPU machine, from the repository root: bash zoo/train_presets_on_gpu.sh
# and register the results: zoo/make_preset.py NAME CHECKPOINT --strides ... (see its help).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
OUT=${OUT:-runs/presets}
run() {  # name, extra args...
  name=$1; shift
  timeout 255 python3 -m nlpool_keras.cli train --data .devdata/train.tar --image-size 96 --epochs 30 \
    --batch-size 64 --workers 12 --seed 0 --output /tmp/$name "$@"
  mkdir -p $OUT/$name
  cp /tmp/$name/history.json /tmp/$name/evaluation.json $OUT/$name/ 2>/dev/null
  if [ -f /tmp/$name/weights.npz ]; then cp /tmp/$name/weights.npz $OUT/$name/; else cp /tmp/$name/checkpoint.npz $OUT/$name/; fi
}
run std
run agg --strides 4222121
