"""Centroid detection (FOMO-style): a per-cell class map, and objects as its blobs' centres.

The target of an image is a (G, G) grid of class indices: 0 for background, c + 1 in the
cell holding the centre of a box of class c. A detector's output is a (G, G, C + 1) map of
class scores (probabilities, or their int8 codes: only their order and the threshold matter).
Decoding marks a cell positive when its best object class scores at least the threshold,
joins 4-connected positive cells of one class, and reports each group's mean cell centre.
Every step is a comparison or an integer sum, so a decoder in C can follow it exactly.
"""

import math

import numpy as np

THRESHOLD = 0.5  # the least probability of a positive cell
MATCH_CELLS = 1.5  # a centroid matches a box centre of its class within this many cells


def centroid_targets(boxes, labels, grid, core=0.0):
    """int32 (grid, grid) class map of one image: 0 background, label + 1 at each box centre
    and, with `core` > 0, at every cell whose centre lies in the box's core (the box shrunk
    to `core` times its width and height around its centre): a large object then gives a
    blob of cells, whose mean is still its centre. Later boxes overwrite earlier ones.

    Args:
        boxes: (K, 4) x0, y0, x1, y1 as fractions of the image.
        labels: (K,) class indices.
        grid: cells per side.
        core: the marked share of a box's width and height, in [0, 1].

    Example:
        >>> centroid_targets(np.array([[0.0, 0.0, 0.5, 0.5]]), np.array([2]), 4)[1, 1]
        3
    """
    if not 0.0 <= core <= 1.0:
        raise ValueError(f"core must be in [0, 1], received: core={core!r}")
    target = np.zeros((grid, grid), np.int32)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    cells = np.clip(np.floor(centres * grid).astype(int), 0, grid - 1)
    middles = (np.arange(grid) + 0.5) / grid
    for box, centre, (col, row), label in zip(boxes, centres, cells, labels, strict=True):
        if core > 0:
            half = core * (box[2:] - box[:2]) / 2
            cols = np.abs(middles - centre[0]) <= half[0]
            rows = np.abs(middles - centre[1]) <= half[1]
            target[np.ix_(rows, cols)] = int(label) + 1
        target[row, col] = int(label) + 1
    return target


def box_centres(boxes):
    """(K, 2) x, y centres of (K, 4) boxes."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def decode_centroids(scores, threshold):
    """The objects of one (G, G, C + 1) score map, background at channel 0.

    Args:
        scores: (G, G, C + 1) probabilities, or their int8 codes.
        threshold: the least score of a positive cell, in the same units as `scores`.

    Returns:
        A list of dicts, in the order their first cell comes in row-major order:
        `label` (class index, without background), `x`, `y` (the centre as a fraction of
        the image: the mean of the group's cell centres), `cells` (how many), `score` (the
        group's best cell score).
    """
    scores = np.asarray(scores)
    grid_h, grid_w = scores.shape[:2]
    best = np.argmax(scores[..., 1:], axis=-1)  # first of equal scores, as the C decoder
    best_score = np.take_along_axis(scores[..., 1:], best[..., None], axis=-1)[..., 0]
    positive = best_score >= threshold
    seen = np.zeros((grid_h, grid_w), bool)
    objects = []
    for row in range(grid_h):
        for col in range(grid_w):
            if not positive[row, col] or seen[row, col]:
                continue
            label, stack, cells = best[row, col], [(row, col)], []
            seen[row, col] = True
            while stack:
                r, c = stack.pop()
                cells.append((r, c))
                for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                    if 0 <= rr < grid_h and 0 <= cc < grid_w and not seen[rr, cc]:
                        if positive[rr, cc] and best[rr, cc] == label:
                            seen[rr, cc] = True
                            stack.append((rr, cc))
            rows, cols = np.array(cells).T
            objects.append(
                {
                    "label": int(label),
                    "x": float((2 * cols + 1).sum() / (2 * grid_w * len(cells))),
                    "y": float((2 * rows + 1).sum() / (2 * grid_h * len(cells))),
                    "cells": len(cells),
                    "score": best_score[rows, cols].max().item(),
                }
            )
    return objects


def int8_threshold(threshold, scale, zero_point):
    """The int8 code q at and above which a dequantized score (q - zero_point) * scale
    reaches `threshold`: decoding int8 codes against it finds what decoding the dequantized
    scores would."""
    return int(min(128, max(-128, math.ceil(zero_point + threshold / scale - 1e-9))))
