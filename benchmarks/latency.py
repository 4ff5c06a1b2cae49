"""Latency side by side in one run: each pooling layer's float time on TensorFlow and its int8
invoke time in the TFLM interpreter, as ratios to MaxPooling2D; then whole MobileNetV2 models
(alpha 0.35, 96 px, every down-sampling kind, standard and aggressive pattern) in TFLM.

    .venv/bin/python benchmarks/latency.py     # ~15 min on 2 CPU cores; writes benchmarks/results/latency.json
    .venv/bin/python benchmarks/tables.py

TFLM runs its portable reference kernels on this host (no CMSIS-NN, no microcontroller): the
milliseconds are relative figures, the ratios between layers and models are what carries over.
Each TFLM time is the median of `--invokes` inferences of random int8 inputs in one child process;
a whole network's figure is the median over `--rounds` such processes, interleaved with the other
networks' (the spread between processes is larger than within one).
"""

import argparse
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.layer_speed import LAYERS, SHAPES  # noqa: E402
from benchmarks.layer_speed import measure as measure_float  # noqa: E402
from nlpool_keras.export import to_int8_tflite  # noqa: E402
from nlpool_keras.models import build_mbv2_sa  # noqa: E402
from nlpool_keras.models.downsampling import DOWNSAMPLE_KINDS  # noqa: E402
from nlpool_keras.profile import settle_batchnorm  # noqa: E402
from nlpool_keras.quiet import run_quietly  # noqa: E402
from nlpool_keras.tflm.child import run_tflm  # noqa: E402
from nlpool_keras.tflm.interpreter import TFLMError, quantize  # noqa: E402
from nlpool_keras.tflm.validate import input_details  # noqa: E402

PATTERNS = {"standard": "1222121", "aggressive": "4222121"}


def int8_model(model, invokes, low, high, seed=0):
    """(int8 flatbuffer of `model` calibrated on uniform [low, high], `invokes` quantized inputs)."""
    rng = np.random.default_rng(seed)
    shape = model.inputs[0].shape[1:]
    flatbuffer = to_int8_tflite(model, rng.uniform(low, high, (16, *shape)).astype("float32"))
    inputs = quantize(rng.uniform(low, high, (invokes, *shape)).astype("float32"), input_details(flatbuffer))
    return flatbuffer, inputs


def tflm_ms(flatbuffer, inputs):
    """(median TFLM milliseconds of one invoke over `inputs`, arena bytes), in one child process."""
    run = run_tflm(flatbuffer, inputs)
    return 1e3 * run.seconds_per_invoke, run.arena_bytes


def layer_rows(repeats, invokes):
    rows = []
    for shape in SHAPES:
        baseline = None
        for name in LAYERS:
            row = measure_float(shape, name, repeats)
            model = keras.Sequential([keras.Input(shape[1:]), LAYERS[name]()])
            try:
                row["tflm_int8_ms"], row["tflm_arena_bytes"] = tflm_ms(*int8_model(model, invokes, -1.0, 1.0))
            except TFLMError as error:  # e.g. attention over 48 x 48 tokens: hundreds of MB
                row["tflm_error"] = str(error).splitlines()[0]
            baseline = baseline or row
            row["forward_ratio_to_max"] = row["forward_ms"] / baseline["forward_ms"]
            if "tflm_int8_ms" in row:
                row["tflm_int8_ratio_to_max"] = row["tflm_int8_ms"] / baseline["tflm_int8_ms"]
            rows.append(row)
            tflm = row.get("tflm_error") or f"{row['tflm_int8_ms']:8.2f} ms ({row['tflm_int8_ratio_to_max']:6.1f}x)"
            print(
                f"{str(shape):18} {name:9} TF fwd {row['forward_ms']:8.2f} ms ({row['forward_ratio_to_max']:6.1f}x)  "
                f"TFLM int8 {tflm}",
                flush=True,
            )
    return rows


def model_rows(invokes, rounds):
    """Whole networks: every model converted first, then `rounds` interleaved rounds of one child
    process per model (drift and per-process noise spread over all kinds); median over rounds."""
    prepared = []
    for pattern, strides in PATTERNS.items():
        for kind in ("max", *sorted(set(DOWNSAMPLE_KINDS) - {"max"})):
            model = settle_batchnorm(
                build_mbv2_sa(
                    (96, 96, 3), alpha=0.35, downsample=kind, strides=strides, classes=10, classifier_activation=None
                )
            )
            row = {"pattern": pattern, "strides": strides, "downsample": kind, "params": int(model.count_params())}
            prepared.append((row, int8_model(model, invokes, 0.0, 255.0)))
    for _ in range(rounds):
        for row, (flatbuffer, inputs) in prepared:
            ms, row["tflm_arena_bytes"] = tflm_ms(flatbuffer, inputs)
            row.setdefault("tflm_int8_ms_per_round", []).append(round(ms, 2))
    rows = [row for row, _ in prepared]
    for row in rows:
        row["tflm_int8_ms"] = float(np.median(row["tflm_int8_ms_per_round"]))
    for row in rows:
        baseline = next(r for r in rows if r["pattern"] == row["pattern"] and r["downsample"] == "max")
        row["tflm_int8_ratio_to_max"] = row["tflm_int8_ms"] / baseline["tflm_int8_ms"]
        print(
            f"mbv2 0.35/96 {row['pattern']:10} {row['downsample']:9} TFLM int8 {row['tflm_int8_ms']:8.1f} ms "
            f"({row['tflm_int8_ratio_to_max']:5.2f}x) rounds {row['tflm_int8_ms_per_round']}"
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="TensorFlow timing repeats (median)")
    parser.add_argument("--invokes", type=int, default=11, help="TFLM inferences per figure (median)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the whole networks (median)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "latency.json"))
    args = parser.parse_args()
    result = {
        "command": "python benchmarks/latency.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}, TF {tf.__version__}",
        "layers": layer_rows(args.repeats, args.invokes),
        "models": model_rows(args.invokes, args.rounds),
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(args.output + ".tmp", args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    run_quietly(main)
