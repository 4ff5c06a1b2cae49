"""Activation memory of MobileNetV2 with early down-sampling: the standard network against the
paper's aggressive variants, for each down-sampling kind, measured on the int8 graph.

    .venv/bin/python benchmarks/memory_study.py --alphas 0.35 --sizes 96 --kinds conv max sa
    .venv/bin/python benchmarks/tables.py

One JSON per configuration in benchmarks/results/memory/ (existing ones are skipped): MACs, the
int8 liveness peak of the whole graph, the TFLM arena (measured), flash, and the activation bytes
after the first block (input + output of the first inverted-residual block's last op: the
paper's way of counting, for sensors that compute the first layers themselves) and the largest
liveness of any op after it (the SRAM such a chip still needs for the rest of the network). Memory does not
depend on the weights: untrained models with BatchNorm statistics settled on random pixels
(`settle_batchnorm`), calibrated on random pixels, logits out.

    .venv/bin/python benchmarks/memory_study.py --no-preprocessing --variants 1222121 4222121 prepool8 --kinds conv sa

measures the models built with include_preprocessing=False (results in
benchmarks/results/memory_no_preprocessing/): the [0, 255] -> [-1, 1] rescaling then sits in the
input's quantization and the int8 graph holds no rescaled copy of the input image.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nlpool_keras.quiet import run_quietly  # noqa: E402

VARIANTS = {
    "1222121": {"strides": "1222121"},
    "2222121": {"strides": "2222121"},
    "4222121": {"strides": "4222121"},
    "prepool2": {"prepool": 2},
    "prepool4": {"prepool": 4},
    "prepool6": {"prepool": 6},
    "prepool8": {"prepool": 8},
}
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "memory")
RESULTS_BARE = RESULTS + "_no_preprocessing"


def first_block_bytes(report):
    """(live bytes at the last op writing a tensor of the first block (expanded_conv_*), the
    largest live bytes of any op after it: the SRAM left to a chip whose sensor computes the
    stem and the first block)."""
    last = max((i for i, row in enumerate(report["ops"]) if "/expanded_conv_" in row["tensor"]), default=None)
    if last is None:
        return None, None
    return report["ops"][last]["live_bytes"], max(row["live_bytes"] for row in report["ops"][last + 1 :])


def measure(alpha, size, variant, kind, arena, include_preprocessing=True):
    from nlpool_keras.models import build_mbv2_sa
    from nlpool_keras.profile import profile_model, settle_batchnorm

    model = build_mbv2_sa(
        (size, size, 3),
        alpha=alpha,
        downsample=kind,
        classes=1000,
        classifier_activation=None,
        include_preprocessing=include_preprocessing,
        **VARIANTS[variant],
    )
    value_range = (0.0, 255.0) if include_preprocessing else (-1.0, 1.0)
    settle_batchnorm(model, value_range=value_range)
    report = profile_model(model, arena=arena, value_range=value_range)
    first_block, after_first_block_peak = first_block_bytes(report)
    return {
        "alpha": alpha,
        "input_size": size,
        "variant": variant,
        "downsample": kind,
        "include_preprocessing": include_preprocessing,
        "params": report["params"],
        "macs": report["macs"],
        "peak_activation_bytes": report["peak_activation_bytes"],
        "peak_op": report["ops"][report["peak_op"]]["tensor"],
        "first_block_bytes": first_block,
        "after_first_block_peak_bytes": after_first_block_peak,
        "tflm_arena_bytes": report.get("tflm_arena_bytes"),
        "tflm_ms_per_invoke": report.get("tflm_ms_per_invoke"),
        "flash_bytes": report["flash_bytes"],
        "attention": report["attention"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alphas", nargs="+", type=float, default=[0.35, 1.0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[96, 128, 224])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--kinds", nargs="+", default=["conv", "max", "avg", "sa", "lip", "gaussian", "softpool"])
    parser.add_argument("--no-arena", action="store_true")
    parser.add_argument(
        "--no-preprocessing",
        action="store_true",
        help=f"models built with include_preprocessing=False (input in [-1, 1]); results in {RESULTS_BARE}",
    )
    args = parser.parse_args()
    folder = RESULTS_BARE if args.no_preprocessing else RESULTS
    os.makedirs(folder, exist_ok=True)
    command = "python benchmarks/memory_study.py " + " ".join(sys.argv[1:])
    for alpha in args.alphas:
        for size in args.sizes:
            for variant in args.variants:
                for kind in args.kinds:
                    path = os.path.join(folder, f"mbv2_{alpha:g}_{size}_{variant}_{kind}.json")
                    if os.path.exists(path):
                        continue
                    try:
                        result = measure(alpha, size, variant, kind, not args.no_arena, not args.no_preprocessing)
                    except Exception as error:  # recorded: a configuration that cannot deploy is a result too
                        result = {"alpha": alpha, "input_size": size, "variant": variant, "downsample": kind}
                        result["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                    result["command"] = command
                    with open(path + ".tmp", "w") as f:
                        json.dump(result, f, indent=1)
                    os.replace(path + ".tmp", path)
                    print(os.path.basename(path), {k: result.get(k) for k in ("peak_activation_bytes", "error")})


if __name__ == "__main__":
    run_quietly(main)
