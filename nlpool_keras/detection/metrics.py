"""Precision, recall and F1 of detected centroids against ground-truth box centres."""

import numpy as np

from nlpool_keras.detection.centroids import box_centres


def match_centroids(predicted, truth, max_distance):
    """Greedy one-to-one matching of one image's points of one class, nearest pairs first.

    Args:
        predicted: (P, 2) x, y.
        truth: (T, 2) x, y, in the same units.
        max_distance: pairs farther apart than this never match.

    Returns:
        (true positives, false positives, false negatives).
    """
    predicted, truth = np.asarray(predicted, float).reshape(-1, 2), np.asarray(truth, float).reshape(-1, 2)
    distances = np.linalg.norm(predicted[:, None] - truth[None], axis=-1)
    pairs = sorted((d, p, t) for (p, t), d in np.ndenumerate(distances) if d <= max_distance)
    used_p, used_t = set(), set()
    for _, p, t in pairs:
        if p not in used_p and t not in used_t:
            used_p.add(p)
            used_t.add(t)
    matched = len(used_p)
    return matched, len(predicted) - matched, len(truth) - matched


def centroid_scores(detections, boxes, labels, classes, max_distance):
    """Precision, recall and F1 over a set of images, in all and per class.

    Args:
        detections: per image, a list of `decode_centroids` dicts (x, y as fractions).
        boxes: per image, (K, 4) ground-truth boxes as fractions of the image.
        labels: per image, (K,) their classes.
        classes: class names.
        max_distance: a centroid matches a box centre of its class within this distance,
            as a fraction of the image side.

    Returns:
        {"precision", "recall", "f1", "tp", "fp", "fn", "max_distance", "per_class": {name:
        {...}}}; precision (recall) is 0 when nothing was predicted (present).
    """
    counts = np.zeros((len(classes), 3), int)
    for found, image_boxes, image_labels in zip(detections, boxes, labels, strict=True):
        centres = box_centres(image_boxes)
        for index in range(len(classes)):
            points = [(d["x"], d["y"]) for d in found if d["label"] == index]
            counts[index] += match_centroids(points, centres[np.asarray(image_labels) == index], max_distance)
    report = _scores(counts.sum(axis=0))
    report["max_distance"] = max_distance
    report["per_class"] = {name: _scores(row) for name, row in zip(classes, counts, strict=True)}
    return report


def _scores(counts):
    tp, fp, fn = (int(v) for v in counts)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}
