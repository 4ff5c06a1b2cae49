"""SSD-lite detection: anchors, box targets, decoding and suppression by hand, COCO AP of
hand-made cases, the loss against NumPy, the builder, and the command line on a tiny VOC set
(train -> export -> validate in TFLM, with box AP)."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from nlpool_keras.detection import (
    anchor_boxes,
    box_average_precision,
    box_iou,
    box_targets,
    decode_boxes,
    decode_detections,
    non_max_suppression,
    ssdlite_anchors,
)
from nlpool_keras.detection.anchors import VARIANCES, decode_int8_boxes
from tests.conftest import write_tiny_voc


def test_anchors_run_cell_by_cell_with_two_squares_and_two_oblongs_each():
    anchors = anchor_boxes((2,), (0.5, 1.0), aspect_ratios=(4.0,))
    assert anchors.shape == (2 * 2 * 4, 4)
    side = np.sqrt(0.5)
    expected_first_cell = [
        (0.0, 0.0, 0.5, 0.5),  # square of side 0.5 centred on (0.25, 0.25)
        (0.25 - side / 2, 0.25 - side / 2, 0.25 + side / 2, 0.25 + side / 2),  # side sqrt(0.5 * 1.0)
        (-0.25, 0.125, 0.75, 0.375),  # 1.0 wide, 0.25 high
        (0.125, -0.25, 0.375, 0.75),
    ]
    np.testing.assert_allclose(anchors[:4], expected_first_cell, atol=1e-6)
    np.testing.assert_allclose(anchors[4, :2], (0.5, 0.0))  # the next cell is to the right (row-major)
    assert ssdlite_anchors(96).shape == ((12 * 12 + 6 * 6) * 4, 4)
    with pytest.raises(ValueError, match="scales needs len\\(grids\\) \\+ 1 = 3 values"):
        anchor_boxes((4, 2), (0.1, 0.2))


def test_iou_by_hand():
    a = np.array([[0.0, 0.0, 1.0, 1.0]])
    b = np.array([[0.5, 0.0, 1.5, 1.0], [2.0, 2.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.2, 0.5]])
    np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 0.0, 1.0, 0.0]])


def test_targets_match_each_box_and_decode_back_to_it():
    anchors = ssdlite_anchors(96)
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.5, 0.4, 0.9, 0.95], [0.02, 0.8, 0.06, 0.84]])  # the last: tiny
    labels = np.array([1, 0, 2])
    targets = box_targets(boxes, labels, anchors)
    iou = box_iou(anchors, boxes)
    for k in range(3):  # each box is learned by its best anchor, whatever the overlap
        assert targets[iou[:, k].argmax(), 0] == labels[k] + 1
    positive = targets[:, 0] > 0
    best_anchors = set(iou.argmax(axis=0).tolist())
    assert all(iou[a].max() >= 0.5 or a in best_anchors for a in np.flatnonzero(positive))
    assert positive.sum() > 3  # the larger boxes also overlap other anchors by 0.5
    assert np.all(targets[~positive, 1:] == 0)
    # outputs = the targets' offsets and a confident logit of their class decode to the boxes
    outputs = np.zeros((len(anchors), 4 + 3 + 1))
    outputs[:, :4] = targets[:, 1:]
    outputs[np.arange(len(anchors)), 4 + targets[:, 0].astype(int)] = 12.0
    found = decode_detections(outputs, anchors, iou_threshold=0.45)
    assert sorted(d["label"] for d in found) == [0, 1, 2]  # overlapping copies of one box suppressed
    for d in found:
        k = list(labels).index(d["label"])
        np.testing.assert_allclose(d["box"], boxes[k], atol=1e-6)
    # one offset by hand: the centre moves dx * 0.1 * anchor width
    anchor = np.array([[0.4, 0.4, 0.6, 0.6]])
    row = np.array([[1.0, 0.0, np.log(2) / VARIANCES[1], 0.0, 0.0, 5.0]])
    (d,) = decode_detections(row, anchor)
    np.testing.assert_allclose(d["box"], [0.32, 0.4, 0.72, 0.6], atol=1e-9)  # centre 0.52, width 0.4


def test_suppression_keeps_the_best_of_overlapping_boxes_per_class():
    boxes = np.array([[0, 0, 0.4, 0.4], [0.02, 0, 0.42, 0.4], [0.5, 0.5, 0.9, 0.9], [0, 0, 0.4, 0.4]])
    scores = np.array([[0.3, 0.7, 0.0], [0.1, 0.9, 0.0], [0.4, 0.6, 0.0], [0.2, 0.0, 0.8]])
    found = non_max_suppression(boxes, scores, score_threshold=0.5)
    assert [(d["label"], d["score"]) for d in found] == [(0, 0.9), (1, 0.8), (0, 0.6)]  # box 0 suppressed by 1
    assert len(non_max_suppression(boxes, scores, score_threshold=0.5, iou_threshold=0.95)) == 4
    assert non_max_suppression(boxes, scores, score_threshold=0.5, max_detections=1)[0]["score"] == 0.9


def test_average_precision_of_hand_made_cases():
    truth, labels = [np.array([[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9]])], [np.array([0, 0])]
    hit_1 = {"label": 0, "box": [0.1, 0.1, 0.3, 0.3], "score": 0.9}
    false = {"label": 0, "box": [0.4, 0.0, 0.5, 0.1], "score": 0.8}
    hit_2 = {"label": 0, "box": [0.6, 0.6, 0.9, 0.88], "score": 0.7}  # IoU 0.933
    report = box_average_precision([[hit_1, false, hit_2]], truth, labels, ["cell", "other"], 96)
    # precision 1 up to recall 0.5 (51 of COCO's 101 recall points), then 2/3
    assert report["ap50"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert report["per_class"]["other"] is None and report["objects"] == 2 and report["detections"] == 3
    # mAP over IoU 0.5:0.95: hit_2 counts up to 0.9 (9 of 10 thresholds), hit_1 at all of them
    assert report["map"] == pytest.approx((9 * (51 + 50 * 2 / 3) + 51) / 101 / 10)
    assert box_average_precision([[]], truth, labels, ["cell"])["ap50"] == 0.0


def test_ssd_loss_is_mined_cross_entropy_plus_huber():
    from nlpool_keras.train.losses import SSDLoss

    rng = np.random.default_rng(0)
    classes, anchors = 3, 12
    y_pred = rng.normal(size=(2, anchors, 4 + classes + 1)).astype("float32")
    y_true = np.zeros((2, anchors, 5), "float32")
    y_true[0, [1, 5], 0] = (2, 1)  # image 0: two positives, so the 6 hardest negatives count
    y_true[:, :, 1:] = rng.normal(size=(2, anchors, 4))
    logits = y_pred[..., 4:]
    log_probabilities = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = []
    for n in range(2):
        labels = y_true[n, :, 0].astype(int)
        cross_entropy = -log_probabilities[n, np.arange(anchors), labels]
        positive = labels > 0
        negatives = np.sort(cross_entropy[~positive])[::-1][: 3 * max(positive.sum(), 1)]
        error = np.abs(y_true[n, positive, 1:] - y_pred[n, positive, :4])
        huber = np.where(error < 1, 0.5 * error**2, error - 0.5).sum()
        expected.append((cross_entropy[positive].sum() + negatives.sum() + 2.0 * huber) / max(positive.sum(), 1))
    assert float(SSDLoss(box_weight=2.0)(y_true, y_pred)) == pytest.approx(np.mean(expected), rel=1e-5)
    with pytest.raises(ValueError, match="negative_ratio must be positive, received: negative_ratio=0"):
        SSDLoss(negative_ratio=0)


def test_builder_reads_two_strides_from_the_presets_backbone():
    from nlpool_keras.models import build_mbv2_sa, build_ssdlite_detector

    preset = "mbv2_sa_035_96_imagenette_e30"
    detector = build_ssdlite_detector((96, 96, 3), classes=2, backbone_weights=preset)
    assert detector.output.shape == (None, len(ssdlite_anchors(96)), 4 + 2 + 1)
    assert detector.get_layer("ssd_head8_depthwise").input.shape[1:3] == (12, 12)
    assert detector.get_layer("ssd_head16_depthwise").input.shape[1:3] == (6, 6)
    classifier = build_mbv2_sa(weights=preset)
    conv1 = detector.get_layer("Conv1").get_weights(), classifier.get_layer("Conv1").get_weights()
    for ours, theirs in zip(*conv1, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="input_shape must be square"):
        build_ssdlite_detector((96, 64, 3))
    with pytest.raises(ValueError, match="classes must be a positive int, received: classes=0"):
        build_ssdlite_detector(classes=0)


HARNESS = r"""
#include <cstdio>
#include <vector>
#include "ssd_boxes.h"
// stdin: count, then per table: anchors channels scale zero_point candidates max_detections,
// the anchors' corners and the int8 codes; stdout: per table its box count and one line per box
int main() {
  int count;
  if (scanf("%d", &count) != 1) return 1;
  for (int t = 0; t < count; ++t) {
    NlpoolSsd p{};
    if (scanf("%d %d %lf %d %d %d", &p.anchor_count, &p.channels, &p.scale, &p.zero_point, &p.candidates,
              &p.max_detections) != 6) return 1;
    std::vector<float> corners(4 * p.anchor_count);
    for (auto& v : corners) if (scanf("%f", &v) != 1) return 1;
    std::vector<int8_t> codes(p.anchor_count * p.channels);
    for (auto& v : codes) { int x; if (scanf("%d", &x) != 1) return 1; v = (int8_t)x; }
    p.anchors = reinterpret_cast<const float (*)[4]>(corners.data());
    p.variance_centre = 0.1; p.variance_size = 0.2; p.score_threshold = 0.05; p.nms_iou = 0.45;
    std::vector<NlpoolBox> found(p.max_detections), scratch(p.candidates);
    std::vector<int32_t> bounds(4 * p.candidates);
    std::vector<uint8_t> suppressed(p.candidates);
    NlpoolSsdTables tables;
    nlpool_ssd_tables(p, &tables);
    int n = nlpool_decode_ssd(p, tables, codes.data(), found.data(), scratch.data(), bounds.data(), suppressed.data());
    printf("%d\n", n);
    for (int k = 0; k < n; ++k)
      printf("%d %d %a %a %a %a %a\n", (int)found[k].label, (int)found[k].anchor, found[k].score, found[k].box[0],
             found[k].box[1], found[k].box[2], found[k].box[3]);
  }
  return 0;
}
"""


def test_c_decoder_finds_the_boxes_the_python_decoder_finds(tmp_path):
    from nlpool_keras.detection.anchors import NMS_IOU, SCORE_THRESHOLD
    from nlpool_keras.firmware.build import PROGRAMS

    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler on this machine")
    assert (SCORE_THRESHOLD, NMS_IOU, VARIANCES) == (0.05, 0.45, (0.1, 0.2))  # as the harness sets them
    (tmp_path / "harness.cc").write_text(HARNESS)
    binary = str(tmp_path / "harness")
    subprocess.run([compiler, "-std=c++17", "-O1", f"-I{PROGRAMS}", str(tmp_path / "harness.cc"), "-o", binary],
                   check=True)  # fmt: skip
    rng, tables, lines = np.random.default_rng(0), [], []
    for _ in range(60):
        anchors = ssdlite_anchors(int(rng.choice([32, 64])))
        channels = 4 + int(rng.integers(2, 5))
        codes = rng.integers(-128, 128, size=(len(anchors), channels))
        codes[rng.random(len(anchors)) < 0.7, 4] = 127  # most anchors: background
        scale, zero_point = float(np.float32(rng.uniform(0.02, 0.2))), int(rng.integers(-20, 20))
        candidates, max_detections = int(rng.choice([5, 200])), int(rng.choice([3, 100]))
        tables.append((anchors, codes, scale, zero_point, candidates, max_detections))
        lines.append(f"{len(anchors)} {channels} {scale!r} {zero_point} {candidates} {max_detections}")
        lines += [" ".join(repr(float(v)) for v in anchors.ravel()), " ".join(map(str, codes.ravel()))]
    result = subprocess.run([binary], input=f"{len(tables)}\n" + "\n".join(lines), capture_output=True, text=True)
    out, position, total = result.stdout.split("\n"), 0, 0
    for anchors, codes, scale, zero_point, candidates, max_detections in tables:
        count = int(out[position])
        rows = [out[position + 1 + k].split() for k in range(count)]
        position += 1 + count
        c_boxes = [
            {
                "label": int(r[0]),
                "anchor": int(r[1]),
                "score": float.fromhex(r[2]),
                "box": [float.fromhex(v) for v in r[3:]],
            }
            for r in rows
        ]
        boxes, scores = decode_int8_boxes(codes, scale, zero_point, anchors)
        python = non_max_suppression(boxes, scores, candidates=candidates, max_detections=max_detections)
        # the tables' softmax is the softmax of the values, up to rounding
        np.testing.assert_allclose(decode_boxes((codes - zero_point) * scale, anchors)[1], scores, rtol=1e-12)
        assert [(b["label"], b["anchor"]) for b in c_boxes] == [(b["label"], b["anchor"]) for b in python]
        for ours, theirs in zip(c_boxes, python, strict=True):
            np.testing.assert_allclose([ours["score"], *ours["box"]], [theirs["score"], *theirs["box"]], atol=1e-12)
        total += count
    assert total > 500  # the tables exercise suppression and the caps, not only empty outputs


def test_drawn_boxes_are_the_truth_and_the_detections_above_the_score(tmp_path):
    from matplotlib.figure import Figure

    from nlpool_keras.detection import draw_boxes, save_detection_grid

    image = np.zeros((50, 100, 3), np.uint8)
    found = [{"label": 1, "box": [0.1, 0.2, 0.5, 0.6], "score": 0.9}, {"label": 0, "box": [0, 0, 1, 1], "score": 0.2}]
    ax = Figure().subplots()
    draw_boxes(ax, image, found, np.array([[0.5, 0.5, 1.0, 1.0]]), np.array([0]), ["a", "b"], min_score=0.5)
    corners = [(p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in ax.patches]
    np.testing.assert_allclose(corners, [(50, 25, 50, 25), (10, 10, 40, 20)])  # truth, then the 0.9 box
    assert [p.get_linestyle() for p in ax.patches] == ["solid", "--"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    path = save_detection_grid(str(tmp_path / "grid.png"), [image], [found], [np.zeros((0, 4))], [np.zeros(0)],
                               ["a", "b"], draw=draw_boxes)  # fmt: skip
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def nlpool(*arguments):
    from nlpool_keras.cli import main

    return main([str(a) for a in arguments])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """(tiny VOC set, a 1-epoch SSD-lite run on it at 32 px) shared by the command-line tests."""
    root = tmp_path_factory.mktemp("ssdlite")
    data, run = root / "voc", root / "run"
    write_tiny_voc(str(data), count=8, size=64)
    assert nlpool("train", "--task", "detection", "--head", "ssdlite", "--data", data, "--image-size", 32,
                  "--epochs", 1, "--batch-size", 4, "--downsample", "avg", "--output", run) == 0  # fmt: skip
    return data, run


def test_ssdlite_from_training_to_tflm(tiny_run, tmp_path, capsys):
    from nlpool_keras.loading import load_model

    (data, run), export = tiny_run, tmp_path / "export"
    evaluation = json.load(open(run / "evaluation.json"))
    assert evaluation["metric"] == "val_ap50" and 0.0 <= evaluation["val_ap50"] <= 1.0
    assert load_model(str(run)).output.shape == (None, len(ssdlite_anchors(32)), 6)
    schedule = ["--schedule", "block_3_pool:2", "--suffix", "blocks"]
    assert nlpool("export", run, "--data", data, *schedule, "--output", export) == 0
    decoding = json.load(open(export / "export.json"))["decoding"]
    assert decoding["kind"] == "ssdlite" and decoding["anchors"] == len(ssdlite_anchors(32))
    assert nlpool("validate", export, "--data", data, "--float-model", run, "--output", tmp_path / "host.json") == 0
    host = json.load(open(tmp_path / "host.json"))
    assert host["head"] == "ssdlite" and host["images"] == 2 and host["max_lsb_diff_tflm_vs_tflite"] == 0
    assert host["same_detections_tflm_vs_tflite"] == 1.0 and host["ap50_tflm"] == host["ap50_tflite"]
    assert 0.0 <= host["ap50_float"] <= 1.0 and "box AP@0.5 int8 TFLM" in capsys.readouterr().out
    # the schedule's suffix splits while the stride-8 map waits for its head: a phase reads it and another map
    manifest = json.load(open(export / "schedule" / "schedule.json"))
    assert any(step["label"].startswith("suffix") and len(step["reads"]) == 2 for step in manifest["steps"])
    scheduled_json = tmp_path / "schedule.json"
    assert nlpool("validate", export / "schedule" / "schedule.json", "--data", data, "--output", scheduled_json) == 0
    scheduled = json.load(open(scheduled_json))
    assert scheduled["max_lsb_diff_schedule_vs_whole_graph"] == 0
    assert scheduled["ap50_schedule_tflm"] == scheduled["ap50_whole_graph_tflm"] == host["ap50_tflm"]
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs the Arm toolchain and QEMU: bash scripts/setup_firmware.sh")
    assert nlpool("firmware", export) == 0
    target_json = tmp_path / "target.json"
    assert nlpool("validate", export, "--target", "cortex-m4", "--data", data, "--output", target_json) == 0
    target = json.load(open(target_json))
    assert target["max_lsb_diff_target_vs_host"] == 0 and target["same_detections_target_vs_host"] == 1.0
    assert target["ap50_target"] == target["ap50_host_tflm"] == host["ap50_tflm"]
    assert target["objects_target"] > 0 and target["decode_instructions_per_image"] > 0
    # the schedule's firmware decodes in its SRAM block what the whole graph's decodes, in a block
    # fitted to the target (its steps' arenas, or the decoder's output and scratch if they take more)
    schedule_json = tmp_path / "schedule_target.json"
    assert nlpool("validate", export / "schedule" / "schedule.json", "--target", "cortex-m4", "--data", data,
                  "--fit-block", "--output", schedule_json) == 0  # fmt: skip
    on_target = json.load(open(schedule_json))
    assert on_target["block_bytes"] <= on_target["export_block_bytes"]
    assert on_target["max_lsb_diff_target_vs_host"] == 0 and on_target["same_detections_target_vs_host"] == 1.0
    assert on_target["ap50_target"] == host["ap50_tflm"] and on_target["objects_target"] == target["objects_target"]


def test_ssdlite_pruned_and_quantization_aware_through_the_command_line(tiny_run, tmp_path):
    (data, run), pruned = tiny_run, tmp_path / "prune"
    assert nlpool("prune", run, "--data", data, "--sparsity", 0.5, "--epochs", 1, "--batch-size", 2,
                  "--output", pruned) == 0  # fmt: skip
    report = json.load(open(pruned / "prune_report.json"))
    assert report["metric"] == "ap50" and report["val_images"] == 2
    assert all(0.0 <= v <= 1.0 for v in report["ap50_float"].values())
    sparse = [row for row in report["kernels"] if row["zeros"] > 0 and row["weights"] > 100]
    assert any(row["layer"].startswith("ssd_head") for row in sparse)  # the heads are pruned too
    assert all(0.45 <= row["zeros"] / row["weights"] <= 0.55 for row in sparse)
    qat = tmp_path / "qat"
    assert nlpool("qat", pruned, "--data", data, "--epochs", 1, "--batch-size", 2, "--output", qat) == 0
    report = json.load(open(qat / "qat_report.json"))
    assert report["metric"] == "ap50" and 0.0 <= report["ap50_float"] <= 1.0
    for kind in ("ptq", "qat"):
        assert report[kind]["head"] == "ssdlite" and report[kind]["max_lsb_diff_tflm_vs_tflite"] == 0
        assert report[kind]["same_detections_tflm_vs_tflite"] == 1.0
        assert json.load(open(qat / kind / "export.json"))["decoding"]["kind"] == "ssdlite"
    from nlpool_keras.loading import load_model

    assert load_model(str(qat)).output_names == ["quant_ssd_outputs"]  # the QAT model nlpool export takes
