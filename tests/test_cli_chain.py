"""The CLI as a newcomer uses it, on real images in a folder with train/ and test/: every step's
output is the next step's input (train -> prune -> qat -> export -> validate), and per-epoch
figures mean something."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ARCHIVE

pytestmark = pytest.mark.skipif(not os.path.isfile(ARCHIVE), reason="needs ../shared/data")
ENV = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell
NATIVE_NOISE = ("oneDNN", "cuda", "absl::InitializeLog", "cpu_feature_guard", "fully_quantize", "is deprecated")


def nlpool(*arguments):
    """Runs `nlpool ARGUMENTS` as a user would; returns (status, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "nlpool_keras.cli", *map(str, arguments)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=1800,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Imagenette images as PNG files in train/<class>/ (6 per class) and test/<class>/ (2)."""
    from nlpool_keras.data import read_image_archive

    root = tmp_path_factory.mktemp("images")
    for split, source, count in (("train", "train", 6), ("test", "val", 2)):
        images, labels, classes = read_image_archive(ARCHIVE, source, per_class=count)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            (root / split / classes[label]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / split / classes[label] / f"{i:03d}.png")
    return root


def test_train_prune_qat_export_validate_chain(folder, tmp_path):
    runs = tmp_path
    status, out, err = nlpool(
        "train", "--data", folder, "--image-size", 32, "--epochs", 1, "--batch-size", 16, "--output", runs / "train"
    )
    assert status == 0, err[-3000:]
    assert "60 train / 20 test images" in out  # the held-out split found as test/
    assert {"model.keras", "weights.npz", "config.json"} <= set(os.listdir(runs / "train"))

    status, out, err = nlpool(
        "prune", runs / "train", "--data", folder, "--sparsity", 0.5, "--epochs", 1, "--output", runs / "prune"
    )
    assert status == 0, err[-3000:]
    with open(runs / "prune" / "prune_report.json") as f:
        report = json.load(f)
    # pooling layers stay dense; every kernel TF-MOT prunes reaches the schedule's 50 %
    pruned = [row for row in report["kernels"] if row["zeros"] > 0]
    assert pruned and all(0.45 <= row["zeros"] / row["weights"] <= 0.55 for row in pruned if row["weights"] > 100)

    status, out, err = nlpool("qat", runs / "prune", "--data", folder, "--epochs", 1, "--output", runs / "qat")
    assert status == 0, err[-3000:]
    status, out, err = nlpool(
        "export", runs / "qat", "--data", folder, "--calibration-per-class", 2, "--output", runs / "export"
    )
    assert status == 0, err[-3000:]
    assert not [word for word in NATIVE_NOISE if word in out + err], out + err  # conversion and TFLM, quietly
    status, out, err = nlpool(  # the export folder, as nlpool firmware and validate --target take it
        "validate",
        runs / "export",
        "--float-model",
        runs / "qat",
        "--data",
        folder,
        "--output",
        runs / "validation.json",
    )
    assert status == 0, err[-3000:]
    with open(runs / "validation.json") as f:
        validation = json.load(f)
    assert validation["split"] == "test" and validation["images"] == 20
    assert "top1_float" in validation  # the QAT folder loaded as the float model


def test_a_run_folder_and_its_weights_file_are_the_same_model(folder, tmp_path):
    """`nlpool train` output -> load_model by folder, model.keras and weights.npz + config.json."""
    from nlpool_keras.data import read_image_folder
    from nlpool_keras.loading import load_model

    status, _, err = nlpool(
        "train",
        "--data",
        folder,
        "--image-size",
        32,
        "--epochs",
        1,
        "--batch-size",
        16,
        "--downsample",
        "lip",
        "--output",
        tmp_path / "run",
    )
    assert status == 0, err[-3000:]
    images = read_image_folder(str(folder), "test", per_class=1, image_size=32)[0].astype("float32")
    reference = load_model(str(tmp_path / "run" / "model.keras")).predict(images, verbose=0)
    for spec in (tmp_path / "run", tmp_path / "run" / "weights.npz"):
        np.testing.assert_allclose(load_model(str(spec)).predict(images, verbose=0), reference, atol=1e-5)
    os.remove(tmp_path / "run" / "config.json")
    with pytest.raises(FileNotFoundError, match="need the config.json of their training run"):
        load_model(str(tmp_path / "run" / "weights.npz"))


def test_unknown_model_and_empty_folder_are_clear_errors(tmp_path):
    status, _, err = nlpool("export", "no_such_model")
    assert status == 2 and "model must be a preset" in err and "received: model='no_such_model'" in err
    status, _, err = nlpool("export", tmp_path)
    assert status == 2 and "holds no model" in err
    status, out, err = nlpool("export", "mbv2_sa_035_96_imagenette_e30", "--data", "missing.tar.gz")
    assert status == 2 and "no file or folder at data='missing.tar.gz'" in err and "tensorflow-datasets" not in err
    status, _, err = nlpool("validate", tmp_path, "--target", "cortex-m4", "--per-class", 0)
    assert status == 2 and "--per-class: must be at least 1, received: 0" in err


def test_per_epoch_figure_is_above_chance_and_matches_the_final_evaluation(tmp_path):
    """With BatchNorm statistics re-estimated before each epoch's evaluation, a short run's
    per-epoch val top-1 is what the final (recalibrated) evaluation gives, above chance."""
    status, out, err = nlpool(
        "train",
        "--data",
        ARCHIVE,
        "--per-class",
        100,
        "--val-per-class",
        20,
        "--image-size",
        64,
        "--epochs",
        3,
        "--batch-size",
        32,
        "--downsample",
        "conv",
        "--learning-rate",
        5e-3,
        "--output",
        tmp_path,
    )
    assert status == 0, err[-3000:]
    with open(tmp_path / "history.json") as f:
        history = json.load(f)
    with open(tmp_path / "evaluation.json") as f:
        evaluation = json.load(f)
    assert history[-1]["val_top1"] >= 0.14, history  # 10 classes, 200 images: chance is 0.10
    assert abs(history[-1]["val_top1"] - evaluation["val_top1"]) <= 0.03, (history[-1], evaluation)


def test_cli_prints_only_its_own_output_and_help_needs_no_tensorflow():
    status, out, err = nlpool("export", "no_such_model")  # imports Keras and TensorFlow
    assert status == 2 and not [word for word in NATIVE_NOISE if word in out + err], err
    probe = "import sys; from nlpool_keras.cli import main; main(['--help'])"
    done = subprocess.run([sys.executable, "-c", probe + "\n"], capture_output=True, text=True, env=ENV)
    assert "train" in done.stdout
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, nlpool_keras.cli, nlpool_keras.tflm.child; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        env=ENV,
    ).stdout
    assert "'keras'" not in imported and "'tensorflow'" not in imported and "'jax'" not in imported
