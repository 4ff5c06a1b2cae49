"""Training throughput (images/s) of the zoo MobileNetV2 per down-sampling kind, side by side.

    .venv/bin/python benchmarks/train_speed.py      # writes benchmarks/results/train_speed.json

Every kind trains the same compiled `fit` step (the study's: AdamW, label smoothing, batch 64,
alpha 0.35, 96 px) on one synthetic batch held in memory, so the figure is the model's step and
not the input pipeline. The kinds run in interleaved rounds (one timed block of steps per kind per
round) and each kind's figure is its median over rounds: the ratios to "conv" are the comparable
figures, measured in one process on one machine.
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from nlpool_keras.quiet import run_quietly  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "train_speed.json")


# "KIND:VARIANT": the study's variants (benchmarks/comparison.py VARIANTS)
VARIANTS = {"before": {"placement": "before"}, "paper": {"pool_kwargs": "paper"}}


def compiled_model(kind, strides, batch_size):
    import keras

    from nlpool_keras.models import build_mbv2_sa
    from nlpool_keras.train.recipes import make_optimizer

    keras.utils.set_random_seed(0)
    downsample, _, variant = kind.partition(":")
    if variant and variant not in VARIANTS:
        raise ValueError(f"a kind's variant must be one of {sorted(VARIANTS)}, received: {kind!r}")
    model = build_mbv2_sa(
        (96, 96, 3),
        alpha=0.35,
        downsample=downsample,
        strides=strides,
        classes=10,
        classifier_activation=None,
        **VARIANTS.get(variant, {}),
    )
    model.compile(
        make_optimizer("adamw", 148, 15, batch_size),
        keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    )
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--kinds", nargs="+", default=["conv", "max", "lip", "sa"], help='e.g. "sa:paper" or "lip:before" too'
    )
    parser.add_argument("--strides", default="2222121")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per kind per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch_size, 96, 96, 3)).astype("float32")
    labels = np.eye(10, dtype="float32")[rng.integers(0, 10, args.batch_size)]
    models = {kind: compiled_model(kind, args.strides, args.batch_size) for kind in args.kinds}
    for model in models.values():  # compile and warm up outside the timed rounds
        model.fit(images, labels, batch_size=args.batch_size, epochs=1, verbose=0)
    seconds = {kind: [] for kind in args.kinds}
    for _ in range(args.rounds):
        for kind, model in models.items():
            started = time.perf_counter()
            model.fit(images, labels, batch_size=args.batch_size, epochs=args.steps, verbose=0)
            seconds[kind].append((time.perf_counter() - started) / args.steps)
    rows = {
        kind: {
            "images_per_second": round(args.batch_size / float(np.median(times)), 1),
            "seconds_per_step_by_round": [round(t, 4) for t in times],
        }
        for kind, times in seconds.items()
    }
    for kind, row in rows.items():
        row["ratio_to_conv"] = round(row["images_per_second"] / rows["conv"]["images_per_second"], 3)
        print(f"{kind:<10}{row['images_per_second']:>8.1f} images/s   {row['ratio_to_conv']:.3f}x conv", flush=True)
    import keras

    result = {
        "strides": args.strides,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "backend": keras.backend.backend(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "command": "python benchmarks/train_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "kinds": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(f"written: {args.output}")


if __name__ == "__main__":
    run_quietly(main)
