"""The picture of detections in docs/results.md: the detector presets' centroids on their first
val (or test) images, the annotated boxes beside them.

    .venv/bin/python benchmarks/detection_figure.py     # writes docs/detections.png
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nlpool_keras.quiet import run_quietly  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = ("centroids_sa_035_96_bccd", "centroids_sa_035_96_raccoon")
PER_PRESET = 4


def main():
    from nlpool_keras import build_centroid_detector, get_preset, read_detections
    from nlpool_keras.detection import THRESHOLD, decode_centroids, save_detection_grid

    images, found, boxes, labels, titles, classes = [], [], [], [], [], []
    for name in PRESETS:
        manifest = get_preset(name)
        data = read_detections(
            os.path.join(ROOT, manifest["dataset"]), manifest["metrics"]["val_split"], manifest["input_size"]
        ).head(PER_PRESET)
        scores = build_centroid_detector(weights=name).predict(data.images.astype("float32"), verbose=0)
        offset = len(classes)
        classes += data.classes
        images += list(data.images)
        found += [[{**d, "label": d["label"] + offset} for d in decode_centroids(s, THRESHOLD)] for s in scores]
        boxes += data.boxes
        labels += [label + offset for label in data.labels]
        titles += [os.path.basename(path) for path in data.names]
    path = save_detection_grid(os.path.join(ROOT, "docs", "detections.png"), images, found, boxes, labels, classes,
                               titles, columns=PER_PRESET)  # fmt: skip
    print(f"written: {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    run_quietly(main)
