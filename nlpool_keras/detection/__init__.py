"""Detection in NumPy: centroid targets and decoding, their metric, and pictures of them."""

from nlpool_keras.detection.centroids import (
    MATCH_CELLS,
    THRESHOLD,
    box_centres,
    centroid_targets,
    decode_centroids,
    int8_threshold,
)
from nlpool_keras.detection.draw import draw_centroids, save_detection_grid
from nlpool_keras.detection.metrics import centroid_scores, match_centroids

__all__ = [
    "MATCH_CELLS",
    "THRESHOLD",
    "box_centres",
    "centroid_scores",
    "centroid_targets",
    "decode_centroids",
    "draw_centroids",
    "int8_threshold",
    "match_centroids",
    "save_detection_grid",
]
