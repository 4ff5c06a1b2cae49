"""Detection in NumPy: centroid and SSD anchor targets and decoding, their metrics, and pictures."""

from nlpool_keras.detection.anchors import (
    anchor_boxes,
    box_iou,
    box_targets,
    decode_boxes,
    decode_detections,
    non_max_suppression,
    ssdlite_anchors,
)
from nlpool_keras.detection.box_metrics import box_average_precision
from nlpool_keras.detection.centroids import (
    MATCH_CELLS,
    THRESHOLD,
    box_centres,
    centroid_targets,
    decode_centroids,
    int8_threshold,
)
from nlpool_keras.detection.draw import draw_boxes, draw_centroids, save_detection_grid
from nlpool_keras.detection.metrics import centroid_scores, match_centroids

__all__ = [
    "MATCH_CELLS",
    "THRESHOLD",
    "anchor_boxes",
    "box_average_precision",
    "box_centres",
    "box_iou",
    "box_targets",
    "centroid_scores",
    "centroid_targets",
    "decode_boxes",
    "decode_centroids",
    "decode_detections",
    "draw_boxes",
    "draw_centroids",
    "int8_threshold",
    "match_centroids",
    "non_max_suppression",
    "save_detection_grid",
    "ssdlite_anchors",
]
