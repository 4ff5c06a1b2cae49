"""Forward and forward+backward time of each pooling layer, as ratios to MaxPooling2D.

    .venv/bin/python benchmarks/layer_speed.py   # writes benchmarks/results/layer_speed.json

All layers are timed in the same run (TensorFlow backend, CPU, float32,
`tf.function`-compiled, median of repeats after warm-up). Times vary between
machines; the ratios are the comparable figures.
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import nlpool_keras as nk  # noqa: E402
from nlpool_keras.layers.cost import attention_tokens, pooling_macs  # noqa: E402
from nlpool_keras.quiet import run_quietly  # noqa: E402

SHAPES = [(1, 96, 96, 16), (32, 48, 48, 24), (32, 24, 24, 32), (32, 12, 12, 96)]
LAYERS = {
    "max": lambda: keras.layers.MaxPooling2D(2),
    "avg": lambda: keras.layers.AveragePooling2D(2),
    "softpool": lambda: nk.SoftPooling2D(2),
    "lip": lambda: nk.LocalImportancePooling2D(2),
    "gaussian": lambda: nk.GaussianPooling2D(2),
    "sa_p1": lambda: nk.SelfAttentivePooling2D(2, patch_size=1, num_heads=2),
    "sa_p3": lambda: nk.SelfAttentivePooling2D(2, patch_size=3, num_heads=2),
    "sa_p5": lambda: nk.SelfAttentivePooling2D(2, patch_size=5, num_heads=2),
}


def _median_seconds(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(shape, name, repeats):
    layer = LAYERS[name]()
    layer.build(shape)
    x = tf.random.normal(shape)
    forward = tf.function(lambda: layer(x, training=True))

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True))
        return tape.gradient(loss, [x] + [w.value for w in layer.trainable_weights])

    return {
        "layer": name,
        "input_shape": list(shape),
        "params": int(sum(np.prod(w.shape) for w in layer.weights)),
        "macs_per_image": int(pooling_macs(layer, shape)),
        "tokens": attention_tokens(layer, shape),
        "forward_ms": 1e3 * _median_seconds(lambda: forward().numpy(), repeats),
        "forward_backward_ms": 1e3 * _median_seconds(lambda: [g.numpy() for g in forward_backward()], repeats),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "layer_speed.json"))
    args = parser.parse_args()
    rows = []
    for shape in SHAPES:
        baseline = None
        for name in LAYERS:
            row = measure(shape, name, args.repeats)
            if name == "max":
                baseline = row
            row["forward_ratio_to_max"] = row["forward_ms"] / baseline["forward_ms"]
            row["forward_backward_ratio_to_max"] = row["forward_backward_ms"] / baseline["forward_backward_ms"]
            rows.append(row)
            print(
                f"{str(shape):18} {name:9} fwd {row['forward_ms']:9.2f} ms ({row['forward_ratio_to_max']:7.1f}x)  "
                f"fwd+bwd {row['forward_backward_ms']:9.2f} ms ({row['forward_backward_ratio_to_max']:7.1f}x)  "
                f"params {row['params']:7d}  MACs/img {row['macs_per_image']:>12,}",
                flush=True,
            )
    result = {
        "command": "python benchmarks/layer_speed.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}, TF {tf.__version__}",
        "repeats": args.repeats,
        "rows": rows,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    run_quietly(main)
