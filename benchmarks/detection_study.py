"""Centroid detection on BCCD: does self-attentive pooling help a detector at this scale?

One recipe for every arm (`nlpool train --task detection`, 96 px, batch 32, AdamW, EPOCHS
epochs, 3 seeds), F1 of centroids on BCCD's 87 val images (matched within 1.5 cells of a box
centre of their class, decoded at 0.5):
- from scratch: self-attentive pooling, LIP, strided convolutions (standard pattern
  "1222121") and self-attentive pooling at the paper's aggressive pattern "4222121";
- from the Imagenette presets that share one recipe (30 epochs): self-attentive pooling
  (`mbv2_sa_035_96_imagenette_e30`) and LIP (`mbv2_lip_035_96_imagenette`).

    .venv/bin/python benchmarks/detection_study.py          # ~1 h on 2 CPU cores; resumable
    .venv/bin/python benchmarks/detection_study.py --table  # the table of what is done
    .venv/bin/python benchmarks/detection_study.py --coco128  # the YOLO path: COCO128, the paper's 8 classes

Each run trains in runs/detection_study/<arm>_s<seed>/ (an interrupted run resumes) and writes
benchmarks/results/detection/<arm>_s<seed>.json; the arms' means and spreads go to
benchmarks/results/detection/study_bccd.json and study_bccd.md.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nlpool_keras.quiet import run_quietly  # noqa: E402
from nlpool_keras.train.trainer import TrainConfig, train  # noqa: E402

DATA = os.path.join("..", "shared", "data", "bccd.tar.gz")
EPOCHS = 40
SEEDS = (0, 1, 2)
ARMS = {  # name: (TrainConfig settings, what it is)
    "sa": ({"downsample": "sa"}, "self-attentive, 1222121, from scratch"),
    "lip": ({"downsample": "lip"}, "LIP, 1222121, from scratch"),
    "conv": ({"downsample": "conv"}, "strided convolutions, 1222121, from scratch"),
    "sa_4222121": ({"downsample": "sa", "strides": "4222121"}, "self-attentive, 4222121, from scratch"),
    "sa_pretrained": (
        {"downsample": "sa", "backbone_weights": "mbv2_sa_035_96_imagenette_e30"},
        "self-attentive, 1222121, Imagenette preset (30 epochs)",
    ),
    "lip_pretrained": (
        {"downsample": "lip", "backbone_weights": "mbv2_lip_035_96_imagenette"},
        "LIP, 1222121, Imagenette preset (30 epochs)",
    ),
}
RUNS = os.path.join("runs", "detection_study")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "detection")
PAPER = (
    "The paper reports COCO box mAP gains for self-attentive pooling in SSD-lite and YOLOv3 detectors on "
    "MobileNetV2 (8 COCO classes), largest at aggressive early down-sampling."
)


def run(arm, seed, epochs, log=print):
    """Trains one arm and seed (resuming), writes and returns its result dict."""
    path = os.path.join(RESULTS, f"{arm}_s{seed}.json")
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    settings, _ = ARMS[arm]
    output = os.path.join(RUNS, f"{arm}_s{seed}")
    config = TrainConfig(
        task="detection", data=DATA, epochs=epochs, batch_size=32, seed=seed, output=output, **settings
    )
    log(f"{arm} seed {seed}: training {epochs} epochs in {output}")
    evaluation = run_quietly(train, config, resume=True, log=None)
    with open(os.path.join(output, "history.json")) as f:
        history = json.load(f)
    result = {
        "arm": arm,
        "seed": seed,
        "val_f1": evaluation["val_f1"],
        "params": evaluation["params"],
        "history_val_f1": [row["val_f1"] for row in history],
        "config": evaluation["config"],
        "command": f"python benchmarks/detection_study.py --epochs {epochs}",
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)
    log(f"{arm} seed {seed}: val F1 {result['val_f1']:.4f}")
    return result


COCO_CLASSES = "person,bicycle,car,motorcycle,bus,train,truck,traffic light"


def coco128(epochs, log=print):
    """A self-attentive centroid detector on COCO128's 128 train images, the paper's 8 classes
    (YOLO labels), F1 on its 128 val images: small-sample and noisy. Writes coco128_sa.json."""
    output = os.path.join("runs", "det", "coco128_sa")
    config = TrainConfig(
        task="detection", data=os.path.join("..", "shared", "data", "coco128.tar.gz"), only_classes=COCO_CLASSES,
        epochs=epochs, batch_size=32, box_core=0.5, backbone_weights="mbv2_sa_035_96_imagenette_e30", output=output,
    )  # fmt: skip
    log(f"coco128: training {epochs} epochs in {output}")
    evaluation = run_quietly(train, config, resume=True, log=None)
    from nlpool_keras.loading import load_model
    from nlpool_keras.train.tasks import make_task

    task = make_task(config)
    scores = task.scores(task.predict(load_model(output)))
    result = {
        "val_f1": evaluation["val_f1"],
        "centroids": scores,
        "val_images": evaluation["val_images"],
        "classes": COCO_CLASSES.split(","),
        "config": evaluation["config"],
        "command": f"python benchmarks/detection_study.py --coco128 --epochs {epochs}",
        "note": "128 train and 128 val images: a small-sample, noisy figure",
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "coco128_sa.json"), "w") as f:
        json.dump(result, f, indent=1)
    log(f"coco128: val F1 {result['val_f1']:.4f}")
    return result


def summary(epochs):
    """{arm: mean, std, seeds, values} of the finished runs; writes study_bccd.json and .md."""
    arms = {}
    for arm, (_, what) in ARMS.items():
        values = []
        for seed in SEEDS:
            path = os.path.join(RESULTS, f"{arm}_s{seed}.json")
            if os.path.isfile(path):
                with open(path) as f:
                    values.append(json.load(f)["val_f1"])
        if values:
            arms[arm] = {
                "what": what,
                "seeds": len(values),
                "values": values,
                "mean": float(np.mean(values)),
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            }
    report = {"data": DATA, "epochs": epochs, "metric": "val F1 (87 BCCD val images)", "paper": PAPER, "arms": arms}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "study_bccd.json"), "w") as f:
        json.dump(report, f, indent=1)
    lines = ["| arm | seeds | val F1 mean | std | per seed |", "|---|---:|---:|---:|---|"]
    for row in arms.values():
        std = "—" if row["std"] is None else f"{row['std']:.3f}"
        per_seed = ", ".join(f"{v:.3f}" for v in row["values"])
        lines.append(f"| {row['what']} | {row['seeds']} | {row['mean']:.3f} | {std} | {per_seed} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(RESULTS, "study_bccd.md"), "w") as f:
        f.write(table)
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms to train")
    parser.add_argument("--table", action="store_true", help="only print the table of the finished runs")
    parser.add_argument("--coco128", action="store_true", help="only the COCO128 run (YOLO labels, 8 classes)")
    args = parser.parse_args()
    if args.coco128:
        coco128(args.epochs)
        return
    if not args.table:
        for seed in SEEDS:  # seed by seed: every finished seed compares all arms
            for arm in args.arms.split(","):
                run(arm, seed, args.epochs)
    print(summary(args.epochs))


if __name__ == "__main__":
    main()
