"""The picture of detections in docs/results.md: the detector presets' centroids (and the
SSD-lite preset's boxes scoring at least 0.3) on their first val (or test) images, the annotated
boxes beside them.

    .venv/bin/python benchmarks/detection_figure.py     # writes docs/detections.png
"""

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nlpool_keras.quiet import run_quietly  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = ("centroids_sa_035_96_bccd", "centroids_sa_035_96_raccoon", "ssdlite_sa_035_96_bccd")
PER_PRESET = 4
MIN_SCORE = 0.3  # the SSD-lite boxes drawn


def main():
    from nlpool_keras import get_preset, models, read_detections
    from nlpool_keras.detection import (
        THRESHOLD,
        decode_centroids,
        decode_detections,
        draw_boxes,
        draw_centroids,
        save_detection_grid,
        ssdlite_anchors,
    )

    images, found, boxes, labels, titles, classes, draws = [], [], [], [], [], [], []
    for name in PRESETS:
        manifest = get_preset(name)
        size = manifest["input_size"]
        data = read_detections(os.path.join(ROOT, manifest["dataset"]), manifest["metrics"]["val_split"], size)
        data = data.head(PER_PRESET)
        outputs = getattr(models, manifest["builder"])(weights=name).predict(data.images.astype("float32"), verbose=0)
        if manifest["builder"] == "build_ssdlite_detector":
            decoded = [decode_detections(rows, ssdlite_anchors(size)) for rows in outputs]
            draw = functools.partial(draw_boxes, min_score=MIN_SCORE)
        else:
            decoded, draw = [decode_centroids(scores, THRESHOLD) for scores in outputs], draw_centroids
        offset = len(classes)
        classes += data.classes
        images += list(data.images)
        found += [[{**d, "label": d["label"] + offset} for d in image] for image in decoded]
        boxes += data.boxes
        labels += [label + offset for label in data.labels]
        titles += [os.path.basename(path) for path in data.names]
        draws += [draw] * len(data)
    path = save_detection_grid(os.path.join(ROOT, "docs", "detections.png"), images, found, boxes, labels, classes,
                               titles, columns=PER_PRESET, draw=draws)  # fmt: skip
    print(f"written: {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    run_quietly(main)
