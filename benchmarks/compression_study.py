"""Compression of a preset for a microcontroller: structured channel pruning (fewer channels:
smaller arena and flash), magnitude pruning and weight clustering (smaller flash under
gzip and TFLM's LUT compression), each fine-tuned on Imagenette and measured in TFLM on
the whole val split, beside the uncompressed preset.

    .venv/bin/python benchmarks/compression_study.py                  # ~1 h on 2 CPU cores; resumable
    .venv/bin/python benchmarks/tables.py                             # README table

One JSON per variant in benchmarks/results/compression/ (a finished variant is skipped):
  dense        the preset, post-training int8
  channels30   30 % of every block's hidden channels removed (BatchNorm-gamma criterion),
               fine-tuned, BatchNorm statistics re-estimated, post-training int8
  sparse50     kernels pruned to 50 % zeros (TF-MOT's polynomial schedule over the first half)
  clustered16  kernels clustered to 16 values each (TF-MOT, k-means++)
The last two are fine-tuned, their BatchNorm statistics re-estimated, converted to int8 and
LUT-compressed (TFLM's compressor; the compressed model is run in TFLM on the whole val split).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from nlpool_keras.data import DEFAULT_ARCHIVE  # noqa: E402
from nlpool_keras.quiet import run_quietly  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "compression")
VARIANTS = ("dense", "channels30", "sparse50", "clustered16")


def _int8_report(model, calibration, val, output_dir, recalibrate=True):
    """Re-estimate `model`'s BatchNorm statistics on the calibration crops (after fine-tuning),
    export it to int8 and validate it in TFLM over `val`; (report, flatbuffer)."""
    from nlpool_keras.tflm.deploy import export_for_tflm
    from nlpool_keras.tflm.validate import validate
    from nlpool_keras.train.batchnorm import recalibrate_batchnorm

    if recalibrate:
        recalibrate_batchnorm(model, [calibration[i : i + 64] for i in range(0, len(calibration), 64)])
    exported = export_for_tflm(model, calibration, output_dir)
    with open(exported["tflite"], "rb") as f:
        flatbuffer = f.read()
    return validate(flatbuffer, val[0], val[1], model), flatbuffer


def channels(model, train, calibration, val, args, output_dir):
    from nlpool_keras.optimize import prune_channels, to_tf_keras
    from nlpool_keras.optimize.finetune import finetune

    thinner, kept = prune_channels(model, 0.3, criterion="bn_gamma")
    before = float(np.mean(thinner.predict(val[0], verbose=0, batch_size=64).argmax(1) == val[1]))
    legacy = to_tf_keras(thinner)
    finetune(legacy, train, args.epochs, args.batch_size, args.learning_rate, args.seed)
    report, _ = _int8_report(legacy, calibration, val, output_dir)
    report.update(
        params=int(legacy.count_params()),
        top1_float_before_finetune=before,
        hidden_channels={prefix: int(len(keep)) for prefix, keep in kept.items()},
    )
    return report


def weight_sharing(model, train, calibration, val, args, output_dir, method):
    """`method` "prune": kernels to 50 % zeros on TF-MOT's schedule; "cluster": 16 values per
    kernel. Fine-tuned, BatchNorm re-estimated, int8, then LUT-compressed and run in TFLM."""
    from nlpool_keras.export import compressed_sizes, lut_compress, to_int8_tflite
    from nlpool_keras.optimize import (
        cluster_weights,
        prune_magnitude,
        pruning_callbacks,
        sparsity_report,
        strip_clustering,
        strip_pruning,
    )
    from nlpool_keras.optimize.finetune import finetune
    from nlpool_keras.tflm.child import run_tflm
    from nlpool_keras.tflm.interpreter import quantize
    from nlpool_keras.tflm.validate import input_details

    if method == "prune":
        steps = args.epochs * (len(train[0]) // args.batch_size)
        wrapped = prune_magnitude(model, final_sparsity=0.5, end_step=max(1, steps // 2), frequency=max(1, steps // 20))
        callbacks, strip = pruning_callbacks(), strip_pruning
    else:
        wrapped, callbacks, strip = cluster_weights(model, clusters=16), None, strip_clustering
    finetune(wrapped, train, args.epochs, args.batch_size, args.learning_rate, args.seed, callbacks)
    stripped = strip(wrapped)
    report, flatbuffer = _int8_report(stripped, calibration, val, output_dir)
    lut = lut_compress(flatbuffer)
    report["compression"] = {
        **sparsity_report(stripped),
        **{f"pruned_{key}": value for key, value in compressed_sizes(flatbuffer, lut).items()},
        **{f"dense_{key}": value for key, value in compressed_sizes(to_int8_tflite(model, calibration)).items()},
    }
    compressed = lut[0]
    if compressed == flatbuffer:
        return report
    quantized = quantize(val[0], input_details(flatbuffer))
    packed = [run_tflm(compressed, quantized[start : start + 250]) for start in range(0, len(quantized), 250)]
    outputs = np.concatenate([run.outputs for run in packed])
    report["lut"] = {
        "flash_bytes": len(compressed),
        "tflm_arena_bytes": packed[0].arena_bytes,
        "top1_tflm": float(np.mean(outputs.argmax(1) == val[1])),
        "outputs_equal_uncompressed_first_250": bool(
            np.array_equal(run_tflm(flatbuffer, quantized[:250]).outputs, outputs[:250])
        ),
    }
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="mbv2_sa_035_96_imagenette")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per step")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=DEFAULT_ARCHIVE)
    parser.add_argument("--per-class", type=int, help="images per class of each split (default: all)")
    parser.add_argument("--runs", default=os.path.join("runs", "compression"))
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)

    from nlpool_keras.data.pipeline import cached_split, center_crops
    from nlpool_keras.loading import load_model
    from nlpool_keras.train.checkpoint import write_json

    model = load_model(args.preset)
    size = model.inputs[0].shape[1]
    train = cached_split(args.data, "train", args.per_class)[:2]
    val_images, val_labels, _ = cached_split(args.data, "val", args.per_class)
    val = (center_crops(val_images, size), val_labels)
    calibration = center_crops(train[0][:: max(1, len(train[0]) // 200)], size)
    steps = {"dense": lambda *a: _int8_report(model, calibration, val, a[-1], recalibrate=False)[0]}
    steps.update(
        channels30=channels,
        sparse50=lambda *a: weight_sharing(*a, method="prune"),
        clustered16=lambda *a: weight_sharing(*a, method="cluster"),
    )
    for variant in args.variants:
        path = os.path.join(args.results, f"{args.preset}_{variant}.json")
        if os.path.isfile(path):
            continue
        print(f"== {variant}", flush=True)
        started = time.time()
        report = steps[variant](model, train, calibration, val, args, os.path.join(args.runs, variant))
        report.update(
            preset=args.preset,
            variant=variant,
            seconds=round(time.time() - started),
            seed=args.seed,
            finetune_epochs=args.epochs,
            command="python benchmarks/compression_study.py " + " ".join(argv or sys.argv[1:]),
        )
        os.makedirs(args.results, exist_ok=True)
        write_json(path, report)
        print(json.dumps({k: v for k, v in report.items() if k.startswith(("top1", "tflm_arena", "flash"))}))


if __name__ == "__main__":
    run_quietly(main)
