"""`nlpool train`: a zoo model on an image dataset, with per-epoch exact-resume checkpoints."""

import csv
import dataclasses
import os
import threading
import time

import numpy as np

from nlpool_keras.data import DEFAULT_ARCHIVE
from nlpool_keras.train import checkpoint
from nlpool_keras.train.batchnorm import recalibrate_batchnorm
from nlpool_keras.train.recipes import make_optimizer
from nlpool_keras.train.strategies import make_strategy
from nlpool_keras.train.tasks import make_task

EPOCH_CALIBRATION_IMAGES = 512
FINAL_CALIBRATION_IMAGES = 2048
HALT_VARIABLE = "NLPOOL_TRAIN_HALT_AT"


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on; written to config.json beside its results."""

    task: str = "classification"
    model: str = "mbv2"
    downsample: str = "sa"
    strides: str | None = None
    prepool: int | None = None
    alpha: float = 0.35
    pool_kwargs: dict | str | None = None
    placement: str = "after"
    image_size: int = 96
    data: str = DEFAULT_ARCHIVE
    data_dir: str | None = None
    val_split: str | None = None
    per_class: int | None = None
    val_per_class: int | None = None
    epochs: int = 15
    batch_size: int = 64
    recipe: str = "adamw"
    learning_rate: float | None = None
    label_smoothing: float = 0.1
    seed: int = 0
    strategy: str = "one"
    workers: int = 1
    output: str = "runs/train"
    backbone_weights: str | None = None
    head: str = "centroids"
    object_weight: float = 10.0
    box_core: float = 0.0
    only_classes: str | None = None

    def builder_arguments(self):
        arguments = {
            "input_shape": (self.image_size, self.image_size, 3),
            "downsample": self.downsample,
            "prepool": self.prepool,
            "pool_kwargs": self.pool_kwargs,
        }
        if self.strides is not None:
            arguments["strides"] = self.strides
        if self.model == "mbv2":
            arguments["alpha"] = self.alpha
            arguments["placement"] = self.placement
        elif self.placement != "after":
            raise ValueError(f"placement applies to model='mbv2', received: placement={self.placement!r}")
        return arguments


def train(config, resume=False, log=print):
    """Runs (or resumes) training; returns the final evaluation dict. `log=None`: silent.

    `config.task` picks the data, model, loss and metric (`tasks.make_task`): classification
    (val top-1, "val_top1") or centroid detection (val F1, "val_f1"). Each epoch's metric is
    measured with BatchNorm statistics re-estimated on `EPOCH_CALIBRATION_IMAGES` training
    images (the moving averages are restored afterwards, so the run itself does not change):
    MobileNetV2's momentum of 0.999 leaves moving averages that give chance-level figures for many epochs.

    Writes under `config.output`: config.json (the config, classes), checkpoint.npz (after every
    epoch), history.csv and history.json, and at the end weights.npz (loadable
    with `load_weights` into either framework, BatchNorm statistics re-estimated
    on `FINAL_CALIBRATION_IMAGES` training images), model.keras (the same model,
    for `nlpool export/qat/prune/profile/validate`) and evaluation.json.
    """
    import keras

    verbose = 2 if log else 0
    log = log or (lambda message: None)
    paths = {
        name: os.path.join(config.output, name)
        for name in (
            "config.json",
            "checkpoint.npz",
            "history.csv",
            "history.json",
            "weights.npz",
            "model.keras",
            "evaluation.json",
        )
    }
    if os.path.exists(paths["checkpoint.npz"]) and not resume:
        raise FileExistsError(
            f"{paths['checkpoint.npz']} exists: pass resume=True (--resume) to continue it, or choose another output"
        )
    keras.utils.set_random_seed(config.seed)
    _deterministic_ops()
    task = make_task(config)
    classes, x_train, val_split, val_images = task.classes, task.x_train, task.val_split, len(task.x_val)
    steps = int(np.ceil(len(x_train) / config.batch_size))

    with make_strategy(config.strategy).scope():
        model = task.build()
        optimizer = make_optimizer(config.recipe, steps, config.epochs, config.batch_size, config.learning_rate)
        model.compile(optimizer, task.loss(), metrics=list(task.metrics))
    state = {"epochs_done": 0, "history": []}
    if resume and os.path.exists(paths["checkpoint.npz"]):
        state = checkpoint.load(paths["checkpoint.npz"], model, optimizer)
        log(f"resumed from {paths['checkpoint.npz']} after epoch {state['epochs_done']}")
    # the run's arguments and its classes: `nlpool_keras.loading` rebuilds the model from them
    checkpoint.write_json(
        paths["config.json"], {**dataclasses.asdict(config), "classes": len(classes), "class_names": list(classes)}
    )
    log(f"{model.name}: {model.count_params():,} params, {len(x_train)} train / {val_images} {val_split} images")

    for epoch in range(state["epochs_done"], config.epochs):
        started = time.time()
        data = task.batches(epoch)
        # shuffle=False: the epoch's order is ours (seeded by epoch); Keras would
        # reshuffle the batches from its global RNG, which a resumed run cannot replay
        fit = model.fit(
            data,
            initial_epoch=epoch,
            epochs=epoch + 1,
            shuffle=False,
            verbose=verbose,
            callbacks=halt_callbacks(),
        )
        fit_seconds = time.time() - started
        metric = evaluate_recalibrated(model, task)
        row = {
            "epoch": epoch + 1,
            "loss": float(fit.history["loss"][-1]),
            **({"train_accuracy": float(fit.history["accuracy"][-1])} if "accuracy" in fit.history else {}),
            task.metric: metric,
            "val_images": val_images,
            "train_images_per_second": round(len(x_train) / fit_seconds, 1),
            "seconds": round(time.time() - started, 1),
            "backend": keras.backend.backend(),
        }
        state["history"].append(row)
        state["epochs_done"] = epoch + 1
        checkpoint.save(paths["checkpoint.npz"], model, optimizer, state)
        _write_history(paths, state["history"])
        log(f"epoch {epoch + 1}/{config.epochs}: {task.metric} {metric:.4f}")

    from nlpool_keras.models import save_weights

    metric_moving_statistics = task.evaluate(model)
    recalibrate_batchnorm(model, task.calibration(FINAL_CALIBRATION_IMAGES))
    digest = save_weights(model, paths["weights.npz"])
    model.save(paths["model.keras"])
    evaluation = {
        "task": config.task,
        "metric": task.metric,
        task.metric: task.evaluate(model),
        f"{task.metric}_before_bn_recalibration": metric_moving_statistics,
        "val_split": val_split,
        "val_images": val_images,
        "params": int(model.count_params()),
        "epochs": config.epochs,
        "seed": config.seed,
        "weights_sha256": digest,
        "backend": keras.backend.backend(),
        "config": dataclasses.asdict(config),
    }
    checkpoint.write_json(paths["evaluation.json"], evaluation)
    return evaluation


def evaluate_recalibrated(model, task):
    """The task's held-out metric with BatchNorm statistics re-estimated on
    `EPOCH_CALIBRATION_IMAGES` training images; every non-trainable variable (moving
    statistics, random-generator states) is restored afterwards, so training goes on exactly
    as without this evaluation."""
    saved = [np.array(variable) for variable in model.non_trainable_variables]
    try:
        recalibrate_batchnorm(model, task.calibration(EPOCH_CALIBRATION_IMAGES))
        return task.evaluate(model)
    finally:
        for variable, value in zip(model.non_trainable_variables, saved, strict=True):
            variable.assign(value)


def halt_callbacks():
    """With `NLPOOL_TRAIN_HALT_AT="E:B"` in the environment (for interruption tests), a callback
    that prints `halted at epoch E batch B` when batch B (1-based) of epoch E starts and then
    blocks until the process is killed; otherwise none."""
    import keras

    where = os.environ.get(HALT_VARIABLE)
    if not where:
        return []
    epoch, batch = (int(part) for part in where.split(":"))

    class Halt(keras.callbacks.Callback):
        def on_epoch_begin(self, index, logs=None):
            self.epoch = index + 1

        def on_train_batch_begin(self, index, logs=None):
            if (self.epoch, index + 1) == (epoch, batch):
                print(f"halted at epoch {epoch} batch {batch}", flush=True)
                threading.Event().wait()

    return [Halt()]


def _write_history(paths, history):
    checkpoint.write_json(paths["history.json"], history)
    tmp = paths["history.csv"] + ".tmp"
    with open(tmp, "w", newline="") as f:
        fields = list(dict.fromkeys(key for row in history for key in row))  # a resumed run may add fields
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, paths["history.csv"])


def _deterministic_ops():
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
