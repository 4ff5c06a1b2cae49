"""Patch-based schedules against the whole graph: MobileNetV2 presets and zoo configurations.

    .venv/bin/python benchmarks/schedule_study.py      # one JSON per configuration in results/schedule/

For each configuration: the whole graph's int8 liveness peak, TFLM arena (measured) and flash
(`profile_model`), and from `choose_schedule` the schedule with the lowest peak under 1.3x the
MACs and the lowest peak under any MACs, with their figures (int8 liveness estimates of the
patch stage's tiles and persistent buffers and of the suffix, `nlpool_keras.schedule.cost`).
A configuration whose JSON exists is skipped; untrained models have settled BatchNorm statistics.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nlpool_keras.quiet import run_quietly  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "schedule")
PRESETS = ("mbv2_sa_035_96_imagenette", "mbv2_sa_035_96_4222121_imagenette")
ZOO = [
    (alpha, size, strides, kind)
    for alpha, sizes in ((0.35, (96, 128, 224)), (1.0, (224, 96, 128)))
    for size in sizes
    for strides in ("1222121", "2222121", "4222121")
    for kind in ("sa", "lip", "conv")
]


def configuration_model(name):
    from nlpool_keras.loading import load_model
    from nlpool_keras.models import build_mbv2_sa
    from nlpool_keras.profile import settle_batchnorm

    if name in PRESETS:
        return load_model(name)
    alpha, size, strides, kind = name.split("_")[1:]
    model = build_mbv2_sa((int(size), int(size), 3), alpha=float(alpha), downsample=kind, strides=strides, classes=1000)
    return settle_batchnorm(model)


def measure(name, max_mac_overhead):
    from nlpool_keras.profile import profile_model
    from nlpool_keras.schedule import choose_schedule

    model = configuration_model(name)
    started = time.time()
    choice, candidates = choose_schedule(model, max_mac_overhead)
    lowest = min(candidates, key=lambda c: (c["peak_bytes_image_streamed"], c["macs"]))
    whole = profile_model(model)
    keep = ("peak_activation_bytes", "tflm_arena_bytes", "flash_bytes", "macs")
    return {
        "configuration": name,
        "whole_graph": {key: whole[key] for key in keep},
        "max_mac_overhead": max_mac_overhead,
        "choice": choice,
        "lowest_peak": lowest,
        "candidates": len(candidates),
        "seconds": round(time.time() - started, 1),
        "command": "python benchmarks/schedule_study.py",
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-mac-overhead", type=float, default=1.3)
    parser.add_argument("--only", nargs="*", default=None, help="configuration names")
    args = parser.parse_args(argv)
    names = list(PRESETS) + [f"mbv2_{a:g}_{s}_{p}_{k}" for a, s, p, k in ZOO]
    os.makedirs(RESULTS, exist_ok=True)
    for name in args.only or names:
        path = os.path.join(RESULTS, name + ".json")
        if os.path.isfile(path):
            continue
        result = measure(name, args.max_mac_overhead)
        with open(path + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(path + ".tmp", path)
        choice = result["choice"] or {}
        print(
            name,
            result["whole_graph"],
            choice.get("cut"),
            choice.get("tiles"),
            choice.get("peak_bytes_image_streamed"),
            result["lowest_peak"]["peak_bytes_image_streamed"],
            flush=True,
        )


if __name__ == "__main__":
    run_quietly(main)
