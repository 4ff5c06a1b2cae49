"""Centroid detection: targets, decoding and the metric by hand, the loss against NumPy, the
detector builder, and `nlpool train --task detection` on a tiny VOC set."""

import json
import os

import numpy as np
import pytest

from nlpool_keras.detection import centroid_scores, centroid_targets, decode_centroids, match_centroids
from tests.conftest import write_tiny_voc


def test_targets_mark_the_cell_of_each_box_centre():
    boxes = np.array([[0.0, 0.0, 0.5, 0.5], [0.7, 0.1, 0.9, 0.3], [0.9, 0.9, 1.0, 1.0]])
    target = centroid_targets(boxes, np.array([0, 2, 1]), 4)
    expected = np.zeros((4, 4), int)
    expected[1, 1], expected[0, 3], expected[3, 3] = 1, 3, 2  # centres (.25,.25), (.8,.2), (.95,.95)
    np.testing.assert_array_equal(target, expected)


def test_targets_with_a_core_mark_the_cells_whose_centres_lie_in_it():
    # box x 0.1-0.9, y 0.1-0.7; core 0.5: x within 0.5 +- 0.2, y within 0.4 +- 0.15; cell centres (k + .5) / 8
    target = centroid_targets(np.array([[0.1, 0.1, 0.9, 0.7]]), np.array([0]), 8, core=0.5)
    expected = np.zeros((8, 8), int)
    expected[2:4, 2:6] = 1
    np.testing.assert_array_equal(target, expected)
    small = centroid_targets(np.array([[0.0, 0.0, 0.05, 0.05]]), np.array([1]), 8, core=0.5)
    assert small[0, 0] == 2 and small.sum() == 2  # a core without cell centres keeps the centre cell
    with pytest.raises(ValueError, match="core must be in"):
        centroid_targets(np.zeros((0, 4)), np.zeros(0), 4, core=1.5)


def test_decoding_joins_4_connected_cells_of_one_class():
    scores = np.zeros((4, 4, 3))
    scores[..., 0] = 1.0  # background everywhere ...
    for row, col in ((0, 0), (0, 1), (1, 1)):  # ... but an L of class 0 (channel 1)
        scores[row, col] = (0.1, 0.8, 0.1)
    scores[2, 2] = (0.2, 0.1, 0.7)  # a diagonal neighbour of class 1: its own object
    scores[3, 3] = (0.6, 0.3, 0.1)  # below the threshold
    found = decode_centroids(scores, 0.5)
    assert [(d["label"], d["cells"]) for d in found] == [(0, 3), (1, 1)]
    # cell centres (x, y) in eighths: (1,1), (3,1), (3,3) -> mean (7/3, 5/3) / 8
    assert found[0]["x"] == pytest.approx(7 / 24) and found[0]["y"] == pytest.approx(5 / 24)
    assert (found[1]["x"], found[1]["y"], found[1]["score"]) == (0.625, 0.625, 0.7)


def test_decoding_int8_codes_compares_codes():
    codes = np.full((2, 2, 2), -128, np.int8)
    codes[1, 0, 1] = 10
    assert [(d["label"], d["x"], d["y"]) for d in decode_centroids(codes, 10)] == [(0, 0.25, 0.75)]
    assert decode_centroids(codes, 11) == []


def test_matching_is_greedy_nearest_first_within_the_distance():
    assert match_centroids([(0.1, 0.1), (0.5, 0.5), (0.9, 0.9)], [(0.12, 0.1), (0.55, 0.5)], 0.1) == (2, 1, 0)
    # B-T1 (0.04) is taken first; A-T2 (0.14) is too far: one match, not the two an optimum would find
    assert match_centroids([(0.0, 0.0), (0.09, 0.0)], [(0.05, 0.0), (0.14, 0.0)], 0.1) == (1, 1, 1)
    assert match_centroids([], [(0.5, 0.5)], 0.1) == (0, 0, 1)


def test_scores_per_class_and_in_all():
    detections = [[{"label": 0, "x": 0.25, "y": 0.25}, {"label": 1, "x": 0.25, "y": 0.25}], []]
    boxes = [np.array([[0.2, 0.2, 0.3, 0.3]]), np.array([[0.5, 0.5, 0.7, 0.7]])]
    labels = [np.array([0]), np.array([1])]
    report = centroid_scores(detections, boxes, labels, ["a", "b"], 0.05)
    assert (report["tp"], report["fp"], report["fn"]) == (1, 1, 1)
    assert report["precision"] == 0.5 and report["recall"] == 0.5 and report["f1"] == 0.5
    assert report["per_class"]["a"]["f1"] == 1.0
    assert report["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 1, "fn": 1}


def test_centroid_loss_is_weighted_cross_entropy():
    from nlpool_keras.train.losses import CentroidLoss

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=(2, 4, 4)).astype("float32")
    target = rng.integers(0, 3, size=(2, 4, 4))
    picked = np.take_along_axis(probabilities, target[..., None], -1)[..., 0]
    weights = np.where(target > 0, 7.0, 1.0)
    expected = np.mean(-np.log(picked) * weights)
    assert float(CentroidLoss(7.0)(target, probabilities)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="object_weight must be positive, received: object_weight=0"):
        CentroidLoss(0)


def test_detector_cuts_the_backbone_at_stride_8_with_the_presets_weights():
    from nlpool_keras.models import build_centroid_detector, build_mbv2_sa

    preset = "mbv2_sa_035_96_imagenette_e30"
    detector = build_centroid_detector((96, 96, 3), classes=3, backbone_weights=preset)
    assert detector.output.shape == (None, 12, 12, 4)
    classifier = build_mbv2_sa(weights=preset)
    for name in ("Conv1", "block_3_pool", "block_6_project"):
        for ours, theirs in zip(
            detector.get_layer(name).get_weights(), classifier.get_layer(name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(ours, theirs)
    assert all(layer.output.shape[1] >= 12 for layer in detector.layers if len(layer.output.shape) == 4)
    probabilities = detector(np.zeros((1, 96, 96, 3), "float32")).numpy()
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="has downsample='sa', received: downsample='lip'"):
        build_centroid_detector(downsample="lip", backbone_weights=preset)
    with pytest.raises(ValueError, match="head_filters must be a positive int, received: head_filters=0"):
        build_centroid_detector(head_filters=0)


def test_train_detection_from_the_command_line_and_reload_the_run(tmp_path):
    from nlpool_keras.cli import main
    from nlpool_keras.loading import load_model

    write_tiny_voc(str(tmp_path / "voc"))
    output = str(tmp_path / "run")
    argv = ["train", "--task", "detection", "--data", str(tmp_path / "voc"), "--image-size", "32", "--epochs", "1"]
    argv += ["--batch-size", "4", "--downsample", "avg", "--output", output]
    assert main(argv) == 0
    evaluation = json.load(open(os.path.join(output, "evaluation.json")))
    assert evaluation["task"] == "detection" and evaluation["val_images"] == 2
    assert 0.0 <= evaluation["val_f1"] <= 1.0
    assert main(argv + ["--resume"]) == 0  # a finished run resumes to the same end
    model = load_model(output)
    assert model.output.shape == (None, 4, 4, 2)
    assert json.load(open(os.path.join(output, "config.json")))["class_names"] == ["spot"]
