"""The README's figure: live int8 activation memory per op of the standard self-attentive preset
against the plain MobileNetV2 (strided convolutions, the same width and input size), each with
its measured TFLM arena.

    .venv/bin/python benchmarks/readme_figure.py    # docs/memory_per_op.png, results/readme_figure.json
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nlpool_keras.quiet import run_quietly  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURE = os.path.join(ROOT, "docs", "memory_per_op.png")
RESULT = os.path.join(ROOT, "benchmarks", "results", "readme_figure.json")
PRESET = "mbv2_sa_035_96_imagenette"


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nlpool_keras.data import DEFAULT_ARCHIVE
    from nlpool_keras.data.pipeline import cached_split, center_crops
    from nlpool_keras.loading import load_model
    from nlpool_keras.models import build_mbv2_sa
    from nlpool_keras.profile import profile_model, settle_batchnorm

    calibration = center_crops(cached_split(DEFAULT_ARCHIVE, "train", 10)[0], 96)
    plain = settle_batchnorm(build_mbv2_sa((96, 96, 3), alpha=0.35, downsample="conv", classes=10))
    reports = {
        "plain MobileNetV2 α 0.35, 96 px (strided convs)": profile_model(plain, calibration),
        f"{PRESET} (self-attentive pooling)": profile_model(load_model(PRESET), calibration),
    }
    figure, axis = plt.subplots(figsize=(9, 3.4), dpi=110)
    summary = {}
    for (label, report), color in zip(reports.items(), ("#7f8c8d", "#c0392b"), strict=True):
        live = [row["live_bytes"] / 1024 for row in report["ops"]]
        axis.step(range(len(live)), live, where="mid", color=color, label=label, linewidth=1.4)
        axis.axhline(report["tflm_arena_bytes"] / 1024, color=color, linestyle="--", linewidth=0.9)
        summary[label] = {key: report[key] for key in ("peak_activation_bytes", "tflm_arena_bytes", "macs")}
        summary[label]["ops"] = len(live)
    axis.set_xlabel("op (execution order)")
    axis.set_ylabel("live int8 activations (KiB)")
    axis.set_title("SRAM per op; dashed: TFLM arena, measured", fontsize=10)
    axis.legend(fontsize=8, frameon=False)
    axis.margins(x=0.01)
    figure.tight_layout()
    os.makedirs(os.path.dirname(FIGURE), exist_ok=True)
    figure.savefig(FIGURE)
    result = {"command": "python benchmarks/readme_figure.py", "figure": os.path.relpath(FIGURE, ROOT), **summary}
    with open(RESULT, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    run_quietly(main)
