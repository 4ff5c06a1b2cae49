"""Registers a trained run as a zoo preset: BatchNorm recalibration, the held-out metric,
weights file, sha256 and manifest (zoo/<name>.json).

    .venv/bin/python zoo/make_preset.py NAME RUN_FOLDER --train-command "..." [--note "..."]
    .venv/bin/python zoo/make_preset.py NAME CHECKPOINT --strides 1222121 [--downsample lip] \\
        --train-command "..."

RUN_FOLDER is an `nlpool train` output (its config.json says the task, the data and the
model: a classifier or a detector). A bare CHECKPOINT must come from the default
`nlpool train` configuration apart from --strides and --downsample (MobileNetV2 alpha 0.35,
96 px, Imagenette, seed 0). The deployment figures (int8 in TFLM, peak SRAM of the best patch
schedule) are added by zoo/deployment.py.
"""

import argparse
import dataclasses
import json
import os

import numpy as np

from nlpool_keras.models import save_weights
from nlpool_keras.quiet import run_quietly
from nlpool_keras.train import TrainConfig, checkpoint
from nlpool_keras.train.batchnorm import recalibrate_batchnorm
from nlpool_keras.train.recipes import make_optimizer
from nlpool_keras.train.tasks import make_task
from nlpool_keras.train.trainer import FINAL_CALIBRATION_IMAGES

ZOO = os.path.dirname(os.path.abspath(__file__))
BUILDERS = {
    "classification": "build_mbv2_sa",
    "centroids": "build_centroid_detector",
    "ssdlite": "build_ssdlite_detector",
}
CLASSIFICATION_PREPROCESSING = (
    "RGB pixels in [0, 255] (rescaled inside the model); eval: resize to 110 px, centre crop 96"
)
DETECTION_PREPROCESSING = "RGB pixels in [0, 255] (rescaled inside the model); the whole image resized to {0}x{0}"


def run_config(args):
    """(TrainConfig, checkpoint path) of a run folder or of a bare checkpoint of the default run."""
    if os.path.isdir(args.run):
        with open(os.path.join(args.run, "config.json")) as f:
            stored = json.load(f)
        fields = {field.name for field in dataclasses.fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in stored.items() if k in fields}), os.path.join(args.run, "checkpoint.npz")
    return TrainConfig(strides=args.strides, downsample=args.downsample), args.run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("run", help="an nlpool train output folder, or a checkpoint.npz of a default run")
    parser.add_argument("--strides", default="1222121", help="with a bare checkpoint")
    parser.add_argument("--downsample", default="sa", help="with a bare checkpoint: sa, lip, ... or conv")
    parser.add_argument("--train-command", required=True)
    parser.add_argument("--note", default="")
    args = parser.parse_args()

    config, checkpoint_path = run_config(args)
    task = make_task(config)
    model = task.build()
    steps = int(np.ceil(len(task.x_train) / config.batch_size))
    optimizer = make_optimizer(config.recipe, steps, config.epochs, config.batch_size)
    model.compile(optimizer, "mse")
    state = checkpoint.load(checkpoint_path, model, optimizer)
    before = task.evaluate(model)
    recalibrate_batchnorm(model, task.calibration(FINAL_CALIBRATION_IMAGES))
    metric = task.evaluate(model)
    weights_file = f"{args.name}.weights.npz"
    digest = save_weights(model, os.path.join(ZOO, weights_file))
    arguments = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.builder_arguments().items()}
    arguments = {k: v for k, v in arguments.items() if v is not None}
    detection = config.task == "detection"
    metrics = {
        task.metric: metric,
        "val_images": int(len(task.x_val)),
        f"{task.metric}_before_bn_recalibration": before,
        "params": int(model.count_params()),
    }
    if detection:
        metrics["val_split"] = task.val_split
        metrics["centroids" if config.head == "centroids" else "boxes"] = task.scores(task.predict(model))
    manifest = {
        "name": args.name,
        "builder": BUILDERS[config.head if detection else config.task],
        "arguments": arguments,
        "classes": len(task.classes),
        "class_names": list(task.classes),
        "dataset": config.data if detection else "Imagenette (../shared/data/imagenette128_q90.tar.gz), 10 classes",
        "train_split": f"train ({len(task.x_train)} images)",
        "input_size": config.image_size,
        "preprocessing": DETECTION_PREPROCESSING.format(config.image_size)
        if detection
        else CLASSIFICATION_PREPROCESSING,
        "training": {
            "command": args.train_command,
            "backbone_weights": config.backbone_weights,
            "epochs_completed": state["epochs_done"],
            "history": state["history"],
            "note": args.note,
        },
        "metrics": metrics,
        "metrics_command": f"python zoo/make_preset.py {args.name} <the run's output folder> --train-command ...",
        "weights_file": weights_file,
        "sha256": digest,
    }
    with open(os.path.join(ZOO, f"{args.name}.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("centroids", "boxes")}, indent=2))


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    run_quietly(main)
