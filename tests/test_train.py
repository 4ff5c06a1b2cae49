"""Training: exact resume after SIGKILL (a classifier and a detector), and MirroredStrategy against
one device."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nlpool_keras.train.trainer import HALT_VARIABLE
from tests.conftest import ARCHIVE, write_tiny_voc

TINY = [
    "--data",
    ARCHIVE,
    "--per-class",
    "3",
    "--val-per-class",
    "1",
    "--image-size",
    "32",
    "--epochs",
    "3",
    "--batch-size",
    "8",
    "--seed",
    "7",
]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _train(output, *extra, env=ENV, options=TINY):
    command = [sys.executable, "-m", "nlpool_keras.cli", "train", *options, "--output", str(output), *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _tiny_detection(root):
    """Options of a tiny centroid-detector run on a VOC set written into `root`: 8 train
    images in 4 batches, 2 val images."""
    write_tiny_voc(str(root), count=10, size=32)
    return ["--task", "detection", "--data", str(root), "--image-size", "32", "--epochs", "3", "--batch-size", "2",
            "--downsample", "avg", "--seed", "7"]  # fmt: skip


def _epochs_done(output):
    try:
        with open(os.path.join(output, "history.json")) as f:
            return len(json.load(f))
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


@pytest.mark.parametrize("task", ["classification", "detection"])
def test_sigkill_then_resume_ends_with_the_same_weights(tmp_path, task):
    options = TINY if task == "classification" else _tiny_detection(tmp_path / "voc")
    metric, val_images = ("val_top1", 10) if task == "classification" else ("val_f1", 2)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    run = _train(straight, options=options)
    assert run.wait(timeout=900) == 0, run.stdout.read()[-3000:]

    # the trainer halts when batch 2 of epoch 2 starts (epoch 1's checkpoint written, epoch 2
    # under way) and says so; the kill lands there, whatever the machine's speed
    run = _train(interrupted, env={**ENV, HALT_VARIABLE: "2:2"}, options=options)
    for line in run.stdout:
        if line.startswith("halted at epoch 2 batch 2"):
            break
    else:
        raise AssertionError(f"the run ended without reaching epoch 2 batch 2 (status {run.wait()})")
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert _epochs_done(interrupted) == 1
    assert not os.path.exists(interrupted / "weights.npz")

    refused = _train(interrupted, options=options)  # the same command without --resume must not overwrite
    assert refused.wait(timeout=300) == 2 and "--resume" in refused.stdout.read()
    resumed = _train(interrupted, "--resume", options=options)
    output = resumed.stdout.read()
    assert resumed.wait(timeout=900) == 0, output[-3000:]
    assert "resumed from" in output

    with np.load(straight / "weights.npz") as a, np.load(interrupted / "weights.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    with open(straight / "history.json") as f, open(interrupted / "history.json") as g:
        straight_rows, interrupted_rows = json.load(f), json.load(g)
    assert [r[metric] for r in straight_rows] == [r[metric] for r in interrupted_rows]
    # each epoch says what measured it: 1 val image per class of the archive's 10 (2 val images of
    # the detection set), TensorFlow
    assert all(r["val_images"] == val_images and r["backend"] == "tensorflow" for r in interrupted_rows)


MIRRORED = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from nlpool_keras.train import TrainConfig, train
    from nlpool_keras.train.tasks import build_model
    from nlpool_keras.models import save_weights
    config = TrainConfig(per_class=2, val_per_class=1, image_size=32, epochs=1, batch_size=8, seed=3,
                         learning_rate=1e-3, strategy=sys.argv[1], output=sys.argv[2], data=sys.argv[3])
    keras.utils.set_random_seed(config.seed)
    save_weights(build_model(config, 10), sys.argv[2] + "/initial.npz")
    train(config, log=None)
    """
)


def test_mirrored_strategy_over_two_devices_matches_one_device(tmp_path):
    """3 steps of batch 8: BatchNorm normalises each replica's 4 images by their own
    statistics, so the runs are not bit-equal; the weight updates must agree in
    direction (cosine > 0.9) and size (norm ratio within 0.8-1.25)."""
    updates = {}
    for strategy in ("one", "mirrored"):
        output = tmp_path / strategy
        result = subprocess.run(
            [sys.executable, "-c", MIRRORED, strategy, str(output), ARCHIVE],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        with np.load(output / "initial.npz") as start, np.load(output / "weights.npz") as end:
            trainable = [k for k in start.files if not k.endswith(("/2", "/3")) or "bn" not in k.lower()]
            updates[strategy] = np.concatenate([(end[k] - start[k]).ravel() for k in sorted(trainable)])
    one, mirrored = updates["one"], updates["mirrored"]
    cosine = one @ mirrored / (np.linalg.norm(one) * np.linalg.norm(mirrored))
    ratio = np.linalg.norm(mirrored) / np.linalg.norm(one)
    assert cosine > 0.9 and 0.8 < ratio < 1.25, (cosine, ratio)
