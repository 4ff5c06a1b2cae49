"""Detection in NumPy: centroid targets and decoding, and their metric."""

from nlpool_keras.detection.centroids import box_centres, centroid_targets, decode_centroids
from nlpool_keras.detection.metrics import centroid_scores, match_centroids

__all__ = ["box_centres", "centroid_scores", "centroid_targets", "decode_centroids", "match_centroids"]
