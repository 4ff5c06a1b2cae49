"""Box average precision through pycocotools (COCO's own evaluation): AP@0.5 and mAP@[.5:.95]."""

import contextlib
import io

import numpy as np


def box_average_precision(detections, boxes, labels, classes, image_size=1.0):
    """COCO box AP of a set of images, in all and per class (all object sizes, 100 detections).

    Args:
        detections: per image, a list of dicts `label`, `box` (x0, y0, x1, y1 fractions),
            `score` (as `anchors.non_max_suppression` gives).
        boxes: per image, (K, 4) ground-truth boxes as fractions of the image.
        labels: per image, (K,) their classes.
        classes: class names.
        image_size: pixels per side the fractions are scaled by (COCO's area ranges are in
            pixels; the reported all-sizes APs do not depend on it).

    Returns:
        {"ap50", "map" (mAP@[.5:.95]), "ap75", "per_class": {name: {"ap50", "map"}},
        "detections", "objects"}; a class without objects has AP None, a set without
        detections AP 0.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def coco_box(box):
        x0, y0, x1, y1 = (float(v) * image_size for v in box)
        return [x0, y0, x1 - x0, y1 - y0]

    truth = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}
    results = []
    for image_id, (found, image_boxes, image_labels) in enumerate(zip(detections, boxes, labels, strict=True), 1):
        truth["images"].append({"id": image_id, "width": image_size, "height": image_size})
        for box, label in zip(np.asarray(image_boxes).reshape(-1, 4), image_labels, strict=True):
            xywh = coco_box(box)
            truth["annotations"].append(
                {"id": len(truth["annotations"]) + 1, "image_id": image_id, "category_id": int(label) + 1,
                 "bbox": xywh, "area": xywh[2] * xywh[3], "iscrowd": 0}
            )  # fmt: skip
        results += [
            {"image_id": image_id, "category_id": d["label"] + 1, "bbox": coco_box(d["box"]), "score": d["score"]}
            for d in found
        ]
    report = {"detections": len(results), "objects": len(truth["annotations"])}
    present = {a["category_id"] for a in truth["annotations"]}
    if not results:
        per_class = {n: ({"ap50": 0.0, "map": 0.0} if i + 1 in present else None) for i, n in enumerate(classes)}
        return {**report, "ap50": 0.0, "map": 0.0, "ap75": 0.0, "per_class": per_class}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ground = COCO()
        ground.dataset = truth
        ground.createIndex()
        evaluation = COCOeval(ground, ground.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"][:, :, :, 0, -1]  # (IoU, recall, class): all areas, 100 dets

    def mean(values):
        values = values[values > -1]
        return float(values.mean()) if values.size else None

    per_class = {
        name: ({"ap50": mean(precision[0, :, k]), "map": mean(precision[:, :, k])} if k + 1 in present else None)
        for k, name in enumerate(classes)
    }
    stats = evaluation.stats
    return {**report, "map": float(stats[0]), "ap50": float(stats[1]), "ap75": float(stats[2]), "per_class": per_class}
