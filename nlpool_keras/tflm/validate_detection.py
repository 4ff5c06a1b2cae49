"""`nlpool validate` of a centroid detector: its detections in TFLM, TFLite and the float model.

report = validate_detector(flatbuffer, data.images, data.boxes, data.labels, data.classes, model)
print(format_detector_validation(report))
"""

import numpy as np

from nlpool_keras.detection import MATCH_CELLS, THRESHOLD, centroid_scores, decode_centroids, int8_threshold
from nlpool_keras.tflm.child import DEFAULT_ARENA
from nlpool_keras.tflm.validate import format_rows, output_details, run_int8


def is_detector(flatbuffer):
    """Whether a flatbuffer's output is a (1, G, G, C + 1) map (a centroid detector's)."""
    return len(output_details(flatbuffer)["shape"]) == 4


def threshold_code(details, threshold=THRESHOLD):
    """The int8 code of `threshold` in an output's quantization (`int8_threshold`)."""
    scale = details["quantization_parameters"]["scales"][0]
    zero_point = details["quantization_parameters"]["zero_points"][0]
    return int8_threshold(threshold, scale, zero_point)


def decode_int8(outputs, details, threshold=THRESHOLD):
    """`decode_centroids` of each int8 (G, G, C + 1) output, against the code of `threshold`."""
    code = threshold_code(details, threshold)
    return [decode_centroids(output, code) for output in outputs]


def decoding_of(flatbuffer):
    """What a firmware needs to decode a detector's output (export.json's "decoding"), or None
    for a classifier: the kind, the threshold and its int8 code, the grid and channels."""
    if not is_detector(flatbuffer):
        return None
    details = output_details(flatbuffer)
    _, grid_h, grid_w, channels = (int(v) for v in details["shape"])
    return {
        "kind": "centroids",
        "threshold": THRESHOLD,
        "threshold_code": threshold_code(details),
        "grid": [grid_h, grid_w],
        "channels": channels,
        "match_cells": MATCH_CELLS,
    }


def centroid_f1(flatbuffer, data):
    """A `score` for schedule validation: int8 outputs (M, K) of a detector -> {"f1": centroid
    F1 on `data` (the `DetectionSet` of the images)}."""
    details = output_details(flatbuffer)
    shape = tuple(int(v) for v in details["shape"][1:])

    def score(outputs):
        found = decode_int8(np.asarray(outputs).reshape(-1, *shape), details)
        distance = MATCH_CELLS / shape[1]
        return {"f1": centroid_scores(found, data.boxes, data.labels, data.classes, distance)["f1"]}

    return score


def validate_detector(
    flatbuffer, images, boxes, labels, classes, float_model=None, arena_size=DEFAULT_ARENA, progress=True, names=None
):
    """`run_int8` on a detector's images, with the centroid F1 (precision, recall, per class)
    of TFLM, TFLite and the float model, matched within `MATCH_CELLS` cells, and the share of
    images on which TFLM finds exactly what TFLite finds."""
    tflm, tflite, float_out, report = run_int8(
        flatbuffer, images, float_model, arena_size=arena_size, progress=progress, names=names
    )
    details, grid = output_details(flatbuffer), tflm.shape[1]
    distance = MATCH_CELLS / grid
    found = {"tflm": decode_int8(tflm, details), "tflite": decode_int8(tflite, details)}
    if float_out is not None:
        found["float"] = [decode_centroids(scores, THRESHOLD) for scores in float_out]
    for name, detections in found.items():
        scores = centroid_scores(detections, boxes, labels, classes, distance)
        report[f"f1_{name}"] = scores["f1"]
        if name == "tflm":
            report["centroids_tflm"] = scores
    same = [a == b for a, b in zip(found["tflm"], found["tflite"], strict=True)]
    report.update(
        same_detections_tflm_vs_tflite=float(np.mean(same)),
        threshold=THRESHOLD,
        match_distance={"cells": MATCH_CELLS, "input_pixels": MATCH_CELLS * images.shape[1] / grid},
        classes=list(classes),
    )
    return report


def format_detector_validation(report):
    """The report as aligned lines."""
    tflm = report["centroids_tflm"]
    distance = report["match_distance"]
    rows = [
        ("images", f"{report['images']:,}"),
        ("centroid F1 float (Keras)", report.get("f1_float")),
        ("centroid F1 int8 TFLite interpreter", report["f1_tflite"]),
        ("centroid F1 int8 TFLM", report["f1_tflm"]),
        ("  precision, recall (TFLM)", f"{tflm['precision']:.4f}, {tflm['recall']:.4f}"),
        *(
            (f"  {name}: F1 (TFLM)", f"{row['f1']:.4f} ({row['tp']} found, {row['fp']} false, {row['fn']} missed)")
            for name, row in tflm["per_class"].items()
        ),
        ("matched within", f"{distance['cells']} cells ({distance['input_pixels']:g} input pixels)"),
        ("same detections TFLM vs TFLite", report["same_detections_tflm_vs_tflite"]),
        ("max |TFLM - TFLite| (output LSB)", report["max_lsb_diff_tflm_vs_tflite"]),
        ("TFLM arena (measured)", f"{report['tflm_arena_bytes']:,} bytes"),
        ("flash (TFLM flatbuffer)", f"{report['flash_bytes']:,} bytes"),
        ("ops", ", ".join(report["ops"])),
    ]
    return format_rows(rows)
