"""Per detector head ("centroids", "ssdlite"): its metric, the decoding of its float outputs and
the scoring of decoded detections against a `DetectionSet`."""

from nlpool_keras.detection.anchors import decode_detections, ssdlite_anchors
from nlpool_keras.detection.box_metrics import box_average_precision
from nlpool_keras.detection.centroids import MATCH_CELLS, THRESHOLD, decode_centroids
from nlpool_keras.detection.metrics import centroid_scores

HEAD_METRICS = {"centroids": "f1", "ssdlite": "ap50"}  # each head's headline metric, a key of its report


def decode_float(head, outputs, image_size):
    """Per image, the detections of a head's float outputs (M, ...) on image_size-pixel inputs."""
    if head == "centroids":
        return [decode_centroids(scores, THRESHOLD) for scores in outputs]
    anchors = ssdlite_anchors(image_size)
    return [decode_detections(rows, anchors) for rows in outputs]


def score_detections(head, found, data, grid=None, image_size=None):
    """The metric report of per-image detections on a `DetectionSet`: centroid F1 within
    `MATCH_CELLS` cells of a `grid`-cell map ("f1"), or COCO box AP on image_size-pixel
    images ("ap50", "map")."""
    if head == "centroids":
        return centroid_scores(found, data.boxes, data.labels, data.classes, MATCH_CELLS / grid)
    return box_average_precision(found, data.boxes, data.labels, data.classes, image_size)
