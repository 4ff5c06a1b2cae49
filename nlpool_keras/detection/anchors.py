"""SSD anchors: boxes tiled over a detector's feature maps, box targets against them, and
decoding of a detector's raw outputs into scored boxes with non-maximum suppression.

Boxes are (x0, y0, x1, y1) fractions of the image. An SSD-lite output row of anchor a is
(dx, dy, dw, dh, logit of background, logits of the C classes): the box is the anchor moved
by (dx * VARIANCES[0] * anchor width, dy * ...) and scaled by exp(dw * VARIANCES[1]), ...
"""

import math

import numpy as np

VARIANCES = (0.1, 0.2)  # SSD's: offsets of the centre and of the log size, in anchor units
MATCH_IOU = 0.5  # an anchor learns a box it overlaps at least this much (and each box its best anchor)
SCORE_THRESHOLD = 0.05  # the least class probability a decoded box keeps (COCO-style evaluation)
NMS_IOU = 0.45  # boxes of one class overlapping a better one more than this are suppressed
MAX_DETECTIONS = 100  # per image, best first (COCO's maxDets)
CANDIDATES = 200  # per class, the best boxes that enter suppression (SSD's top_k)
FEATURE_STRIDES = (8, 16)  # the backbone maps an SSD-lite head reads, finest first
ANCHOR_SCALES = (0.1, 0.3, 0.6)  # anchor sides per map (and the last map's neighbour), fractions of the image
ASPECT_RATIOS = (2.0,)


def anchor_boxes(grids, scales, aspect_ratios=(2.0,)):
    """The (A, 4) anchors of feature maps with `grids` cells per side, finest first.

    Each cell of level k has a square of side scales[k], a square of side
    sqrt(scales[k] * scales[k + 1]), and for each ratio r in `aspect_ratios` a box of
    scales[k] * sqrt(r) by scales[k] / sqrt(r) and its transpose; all centred on the cell.
    Anchors run cell by cell in row-major order, level after level, as the model's rows do.

    Args:
        grids: cells per side of each level, e.g. (12, 6) for strides 8 and 16 at 96 pixels.
        scales: len(grids) + 1 sides, fractions of the image.
        aspect_ratios: ratios > 1 (each adds two anchors per cell).

    Example:
        >>> anchor_boxes((2,), (0.5, 1.0), ()).shape
        (8, 4)
    """
    if len(scales) != len(grids) + 1:
        raise ValueError(f"scales needs len(grids) + 1 = {len(grids) + 1} values, received: scales={scales!r}")
    rows = []
    for level, grid in enumerate(grids):
        scale, following = scales[level], scales[level + 1]
        sizes = [(scale, scale), (math.sqrt(scale * following),) * 2]
        for ratio in aspect_ratios:
            sizes += [
                (scale * math.sqrt(ratio), scale / math.sqrt(ratio)),
                (scale / math.sqrt(ratio), scale * math.sqrt(ratio)),
            ]
        for row in range(grid):
            for col in range(grid):
                cx, cy = (col + 0.5) / grid, (row + 0.5) / grid
                rows += [(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2) for w, h in sizes]
    return np.array(rows, np.float32)


def ssdlite_anchors(input_size):
    """The (A, 4) anchors of `build_ssdlite_detector` on (input_size, input_size) images, in
    the order of its output rows."""
    return anchor_boxes([input_size // s for s in FEATURE_STRIDES], ANCHOR_SCALES, ASPECT_RATIOS)


def anchors_per_cell(aspect_ratios=(2.0,)):
    """Anchors of one cell under `anchor_boxes`."""
    return 2 + 2 * len(aspect_ratios)


def box_iou(a, b):
    """(N, M) intersection over union of (N, 4) and (M, 4) boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    area_a, area_b = np.prod(a[:, 2:] - a[:, :2], axis=1), np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _centre_size(boxes):
    return (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]


def box_targets(boxes, labels, anchors, match_iou=MATCH_IOU):
    """float32 (A, 5) targets of one image: class index (0 background, label + 1 for an
    anchor matched to a box) and the matched box's (dx, dy, dw, dh) offsets from the anchor.

    An anchor matches the box it overlaps most when that IoU reaches `match_iou`; every box
    also takes its own best anchor, so that none goes unlearned.
    """
    targets = np.zeros((len(anchors), 5), np.float32)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return targets
    iou = box_iou(anchors, boxes)
    best_box, best_iou = iou.argmax(axis=1), iou.max(axis=1)
    best_anchor = iou.argmax(axis=0)
    best_box[best_anchor] = np.arange(len(boxes))
    best_iou[best_anchor] = 1.0
    matched = best_iou >= match_iou
    anchor_centre, anchor_size = _centre_size(np.asarray(anchors, np.float64))
    centre, size = _centre_size(boxes[best_box])
    size = np.maximum(size, 1e-6)
    targets[:, 0] = np.where(matched, np.asarray(labels)[best_box] + 1, 0)
    targets[:, 1:3] = (centre - anchor_centre) / anchor_size / VARIANCES[0]
    targets[:, 3:5] = np.log(size / anchor_size) / VARIANCES[1]
    targets[~matched, 1:] = 0
    return targets


def decode_boxes(outputs, anchors):
    """(A, 4) boxes and (A, C + 1) class probabilities (background first) of one image's
    float (A, 4 + C + 1) outputs."""
    outputs = np.asarray(outputs, np.float64)
    anchor_centre, anchor_size = _centre_size(np.asarray(anchors, np.float64))
    centre = anchor_centre + outputs[:, 0:2] * VARIANCES[0] * anchor_size
    size = anchor_size * np.exp(outputs[:, 2:4] * VARIANCES[1])
    logits = outputs[:, 4:]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1), exp / exp.sum(axis=1, keepdims=True)


def decode_int8_boxes(codes, scale, zero_point, anchors):
    """`decode_boxes` of one image's int8 (A, 4 + C + 1) codes, value = (code - zero_point) *
    scale, computed as a firmware does it without an exponential per element: the softmax from
    the code differences to each row's largest logit code, exp((d) * scale) for d in -255..0,
    and the sizes from exp(value * VARIANCES[1]) of the 256 codes (tables of 256 entries).
    Equal to `decode_boxes` of the values up to rounding (1e-15)."""
    codes = np.asarray(codes).astype(np.int64)
    values = (codes - zero_point) * float(scale)
    anchor_centre, anchor_size = _centre_size(np.asarray(anchors, np.float64))
    size_table = np.exp((np.arange(-128, 128) - zero_point) * float(scale) * VARIANCES[1])
    centre = anchor_centre + values[:, 0:2] * VARIANCES[0] * anchor_size
    size = anchor_size * size_table[codes[:, 2:4] + 128]
    logits = codes[:, 4:]
    weights = np.exp(np.arange(-255, 1) * float(scale))[logits - logits.max(axis=1, keepdims=True) + 255]
    probabilities = weights / weights.sum(axis=1, keepdims=True)
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1), probabilities


def non_max_suppression(
    boxes,
    scores,
    score_threshold=SCORE_THRESHOLD,
    iou_threshold=NMS_IOU,
    max_detections=MAX_DETECTIONS,
    candidates=CANDIDATES,
):
    """The detections of one image, class by class, best first.

    Args:
        boxes: (A, 4).
        scores: (A, C + 1) probabilities, background first.
        score_threshold: the least probability of a kept box.
        iou_threshold: a box overlapping a kept box of its class more than this is dropped.
        max_detections: the best this many over all classes are returned.
        candidates: per class, the best this many boxes above the threshold are suppressed
            among themselves; the rest are dropped.

    Returns:
        A list of dicts `label` (class index without background), `box` (x0, y0, x1, y1),
        `score`, `anchor` (the row it comes from), sorted by score (ties: lower class, then
        lower anchor first).
    """
    found = []
    for label in range(scores.shape[1] - 1):
        class_scores = scores[:, label + 1]
        order = np.flatnonzero(class_scores >= score_threshold)
        order = order[np.argsort(-class_scores[order], kind="stable")][:candidates]
        overlaps = box_iou(boxes[order], boxes[order]) > iou_threshold
        suppressed = np.zeros(len(order), bool)
        for i in range(len(order)):
            if not suppressed[i]:
                suppressed[i + 1 :] |= overlaps[i, i + 1 :]
                found.append((-class_scores[order[i]], label, int(order[i])))
    found.sort()
    return [
        {"label": label, "box": [float(v) for v in boxes[index]], "score": float(-negative), "anchor": int(index)}
        for negative, label, index in found[:max_detections]
    ]


def decode_detections(outputs, anchors, **nms):
    """`non_max_suppression` of `decode_boxes` of one image's float outputs."""
    return non_max_suppression(*decode_boxes(outputs, anchors), **nms)
