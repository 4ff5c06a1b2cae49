"""Registers a trained checkpoint as a zoo preset: BatchNorm recalibration, full val
top-1, weights file, sha256 and manifest (zoo/<name>.json).

    .venv/bin/python zoo/make_preset.py NAME CHECKPOINT --strides 1222121 [--downsample lip] \\
        --train-command "..." [--note "..."]

The checkpoint's run must be the default `nlpool train` configuration apart from
--strides and --downsample (MobileNetV2 alpha 0.35, 96 px, seed 0). The deployment figures
(int8 in TFLM, peak SRAM of the best patch schedule) are added by zoo/deployment.py.
"""

import argparse
import json
import os

import numpy as np

from nlpool_keras.data.pipeline import cached_split
from nlpool_keras.models import save_weights
from nlpool_keras.quiet import run_quietly
from nlpool_keras.train import TrainConfig, checkpoint
from nlpool_keras.train.batchnorm import calibration_batches, recalibrate_batchnorm
from nlpool_keras.train.recipes import make_optimizer
from nlpool_keras.train.trainer import build_model, evaluate

ZOO = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("checkpoint")
    parser.add_argument("--strides", default="1222121")
    parser.add_argument("--downsample", default="sa", help="sa, lip, gaussian, softpool, max, avg or conv")
    parser.add_argument("--train-command", required=True)
    parser.add_argument("--note", default="")
    args = parser.parse_args()

    config = TrainConfig(strides=args.strides, downsample=args.downsample)
    x_train, _, classes = cached_split(config.data, "train")
    x_val, y_val, _ = cached_split(config.data, "val")
    model = build_model(config, len(classes))
    optimizer = make_optimizer(config.recipe, 148, config.epochs, config.batch_size)
    model.compile(optimizer, "mse")
    state = checkpoint.load(args.checkpoint, model, optimizer)
    before = evaluate(model, x_val, y_val, config)
    recalibrate_batchnorm(model, calibration_batches(x_train, config.image_size, config.seed))
    top1 = evaluate(model, x_val, y_val, config)
    weights_file = f"{args.name}.weights.npz"
    digest = save_weights(model, os.path.join(ZOO, weights_file))
    arguments = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.builder_arguments().items()}
    arguments = {k: v for k, v in arguments.items() if v is not None}
    manifest = {
        "name": args.name,
        "builder": "build_mbv2_sa",
        "arguments": arguments,
        "classes": len(classes),
        "class_names": classes,
        "dataset": "Imagenette (../shared/data/imagenette128_q90.tar.gz), 10 classes",
        "train_split": f"train ({len(x_train)} images)",
        "input_size": config.image_size,
        "preprocessing": "RGB pixels in [0, 255] (rescaled inside the model); eval: resize to 110 px, centre crop 96",
        "training": {
            "command": args.train_command,
            "epochs_completed": state["epochs_done"],
            "history": state["history"],
            "note": args.note,
        },
        "metrics": {
            "val_top1": top1,
            "val_images": int(len(x_val)),
            "val_top1_before_bn_recalibration": before,
            "params": int(model.count_params()),
        },
        "metrics_command": (
            f"python zoo/make_preset.py {args.name} <checkpoint.npz of the run> --strides {args.strides} "
            f"--downsample {args.downsample} "
            "--train-command ..."
        ),
        "weights_file": weights_file,
        "sha256": digest,
    }
    with open(os.path.join(ZOO, f"{args.name}.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    print(json.dumps(manifest["metrics"], indent=2))


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    run_quietly(main)
