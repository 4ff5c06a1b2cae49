"""`nlpool validate` of a detector: its detections in TFLM, TFLite and the float model.

A detector's flatbuffer says which head it has by its output: a (1, G, G, C + 1) map is a
centroid detector's, a (1, A, 4 + C + 1) table with one row per `detection.ssdlite_anchors`
anchor an SSD-lite detector's. `decoder_of(flatbuffer)` gives the head's decoder:

    decoder = decoder_of(flatbuffer)
    report = validate_detector(flatbuffer, data.images, data, model)
    print(format_detector_validation(report))
"""

import numpy as np

from nlpool_keras.detection import (
    MATCH_CELLS,
    THRESHOLD,
    decode_centroids,
    int8_threshold,
    non_max_suppression,
    ssdlite_anchors,
)
from nlpool_keras.detection import anchors as anchor_lib
from nlpool_keras.detection.anchors import decode_int8_boxes
from nlpool_keras.detection.heads import HEAD_METRICS, decode_float, score_detections
from nlpool_keras.tflm.child import DEFAULT_ARENA
from nlpool_keras.tflm.validate import format_rows, input_details, output_details, run_int8


def _quantization(details):
    parameters = details["quantization_parameters"]
    return float(parameters["scales"][0]), int(parameters["zero_points"][0])


class Decoder:
    """What both heads' decoders share: the output's quantization and shape, the input size,
    float decoding and scoring (`detection.heads`)."""

    kind = None

    def __init__(self, flatbuffer):
        self.details = output_details(flatbuffer)
        self.shape = tuple(int(v) for v in self.details["shape"][1:])
        self.input_size = int(input_details(flatbuffer)["shape"][1])
        self.metric = HEAD_METRICS[self.kind]

    def decode_float(self, outputs):
        return decode_float(self.kind, outputs, self.input_size)

    def scores(self, found, data):
        """`detection.heads.score_detections` of per-image detections against a `DetectionSet`."""
        return score_detections(self.kind, found, data, grid=self.shape[1], image_size=self.input_size)


class CentroidDecoder(Decoder):
    """Centroids of a (G, G, C + 1) score map: int8 codes decoded against the code of
    `THRESHOLD`; the metric is F1 within `MATCH_CELLS` cells."""

    kind = "centroids"

    @property
    def threshold_code(self):
        return int8_threshold(THRESHOLD, *_quantization(self.details))

    def decode_int8(self, outputs):
        outputs = np.asarray(outputs).reshape(-1, *self.shape)
        return [decode_centroids(output, self.threshold_code) for output in outputs]

    def matching(self):
        return {"cells": MATCH_CELLS, "input_pixels": MATCH_CELLS * self.input_size / self.shape[1]}

    @staticmethod
    def same(a, b):
        """Whether two images' detections are the same (integer sums: exactly)."""
        return a == b

    def decoding(self):
        """What a firmware needs (export.json's "decoding")."""
        return {
            "kind": self.kind,
            "threshold": THRESHOLD,
            "threshold_code": self.threshold_code,
            "grid": list(self.shape[:2]),
            "channels": self.shape[2],
            "match_cells": MATCH_CELLS,
        }


class SSDLiteDecoder(Decoder):
    """Boxes of a (A, 4 + C + 1) table of anchor offsets and logits: int8 codes dequantized,
    decoded against `ssdlite_anchors`, suppressed per class; the metric is COCO AP@0.5."""

    kind = "ssdlite"

    def __init__(self, flatbuffer):
        super().__init__(flatbuffer)
        self.anchors = ssdlite_anchors(self.input_size)

    def decode_int8(self, outputs):
        """`decode_int8_boxes` and `non_max_suppression` of each int8 table, as the firmware
        decodes it (`firmware/programs/ssd_boxes.h`)."""
        scale, zero_point = _quantization(self.details)
        outputs = np.asarray(outputs).reshape(-1, *self.shape)
        return [non_max_suppression(*decode_int8_boxes(rows, scale, zero_point, self.anchors)) for rows in outputs]

    def matching(self):
        return {"iou": "COCO: 0.5 for AP50, 0.5 to 0.95 for mAP"}

    @staticmethod
    def same(a, b, tolerance=1e-9):
        """Whether two images' detections are the same boxes of the same anchors and classes in
        the same order, scores and corners within `tolerance` (the C decoder's exp and log are
        the C library's, not NumPy's)."""
        keys = [(d["label"], d["anchor"]) for d in a] == [(d["label"], d["anchor"]) for d in b]
        values = [[d["score"], *d["box"]] for d in a], [[d["score"], *d["box"]] for d in b]
        return keys and bool(np.allclose(*values, rtol=0, atol=tolerance)) if a else not b

    def decoding(self):
        """What a firmware needs (export.json's "decoding"); the anchors follow from the
        input size (`detection.ssdlite_anchors`)."""
        scale, zero_point = _quantization(self.details)
        return {
            "kind": self.kind,
            "anchors": self.shape[0],
            "channels": self.shape[1],
            "input_size": self.input_size,
            "feature_strides": list(anchor_lib.FEATURE_STRIDES),
            "anchor_scales": list(anchor_lib.ANCHOR_SCALES),
            "aspect_ratios": list(anchor_lib.ASPECT_RATIOS),
            "variances": list(anchor_lib.VARIANCES),
            "score_threshold": anchor_lib.SCORE_THRESHOLD,
            "nms_iou": anchor_lib.NMS_IOU,
            "candidates": anchor_lib.CANDIDATES,
            "max_detections": anchor_lib.MAX_DETECTIONS,
            "scale": scale,
            "zero_point": zero_point,
        }


def decoder_of(flatbuffer):
    """The decoder of a detector's flatbuffer, or None for a classifier."""
    shape = output_details(flatbuffer)["shape"]
    if len(shape) == 4:
        return CentroidDecoder(flatbuffer)
    size = int(input_details(flatbuffer)["shape"][1])
    if len(shape) == 3 and shape[2] >= 6 and shape[1] == len(ssdlite_anchors(size)):
        return SSDLiteDecoder(flatbuffer)
    return None


def is_detector(flatbuffer):
    """Whether a flatbuffer's output is a detector's (`decoder_of`)."""
    return decoder_of(flatbuffer) is not None


def decoding_of(flatbuffer):
    """export.json's "decoding" of a detector, None for a classifier."""
    decoder = decoder_of(flatbuffer)
    return decoder.decoding() if decoder else None


def detection_score(flatbuffer, data):
    """A `score` for schedule validation: int8 outputs (M, K) of a detector -> {its metric
    on `data` (the `DetectionSet` of the images)}."""
    decoder = decoder_of(flatbuffer)
    return lambda outputs: {decoder.metric: decoder.scores(decoder.decode_int8(outputs), data)[decoder.metric]}


def validate_detector(flatbuffer, images, data, float_model=None, arena_size=DEFAULT_ARENA, progress=True, names=None):
    """`run_int8` on a detector's images, with the head's metric (`<metric>_tflm`,
    `_tflite`, `_float`; the full report as `detections_tflm`) and the share of images on
    which TFLM finds exactly what TFLite finds. `data` is the `DetectionSet` of `images`."""
    decoder = decoder_of(flatbuffer)
    tflm, tflite, float_out, report = run_int8(
        flatbuffer, images, float_model, arena_size=arena_size, progress=progress, names=names
    )
    found = {"tflm": decoder.decode_int8(tflm), "tflite": decoder.decode_int8(tflite)}
    if float_out is not None:
        found["float"] = decoder.decode_float(float_out)
    for name, detections in found.items():
        scores = decoder.scores(detections, data)
        report[f"{decoder.metric}_{name}"] = scores[decoder.metric]
        if name == "tflm":
            report["detections_tflm"] = scores
    same = [decoder.same(a, b) for a, b in zip(found["tflm"], found["tflite"], strict=True)]
    report.update(
        head=decoder.kind,
        metric=decoder.metric,
        same_detections_tflm_vs_tflite=float(np.mean(same)),
        match=decoder.matching(),
        classes=list(data.classes),
    )
    if decoder.kind == "centroids":
        report["threshold"] = THRESHOLD
    return report


def _metric_rows(report):
    """The head's metric lines of a `validate_detector` report."""
    tflm = report["detections_tflm"]
    if report["head"] == "centroids":
        name = "centroid F1"
        details = [
            ("  precision, recall (TFLM)", f"{tflm['precision']:.4f}, {tflm['recall']:.4f}"),
            *(
                (f"  {c}: F1 (TFLM)", f"{row['f1']:.4f} ({row['tp']} found, {row['fp']} false, {row['fn']} missed)")
                for c, row in tflm["per_class"].items()
            ),
            ("matched within", f"{report['match']['cells']} cells ({report['match']['input_pixels']:g} input pixels)"),
        ]
    else:
        name = "box AP@0.5"
        details = [
            ("  mAP@[.5:.95] (TFLM)", f"{tflm['map']:.4f}"),
            *(
                (f"  {c}: AP@0.5 (TFLM)", "no objects" if row is None else f"{row['ap50']:.4f}")
                for c, row in tflm["per_class"].items()
            ),
        ]
    metric = report["metric"]
    return [
        (f"{name} float (Keras)", report.get(f"{metric}_float")),
        (f"{name} int8 TFLite interpreter", report[f"{metric}_tflite"]),
        (f"{name} int8 TFLM", report[f"{metric}_tflm"]),
        *details,
    ]


def format_detector_validation(report):
    """The report as aligned lines."""
    rows = [
        ("images", f"{report['images']:,}"),
        *_metric_rows(report),
        ("same detections TFLM vs TFLite", report["same_detections_tflm_vs_tflite"]),
        ("max |TFLM - TFLite| (output LSB)", report["max_lsb_diff_tflm_vs_tflite"]),
        ("TFLM arena (measured)", f"{report['tflm_arena_bytes']:,} bytes"),
        ("flash (TFLM flatbuffer)", f"{report['flash_bytes']:,} bytes"),
        ("ops", ", ".join(report["ops"])),
    ]
    return format_rows(rows)
