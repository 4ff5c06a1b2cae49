"""Image data: archives and folders of split/class/image files, tensorflow-datasets, and
detection sets (Pascal VOC XML or YOLO txt annotations)."""

from nlpool_keras.data.archive import DEFAULT_ARCHIVE, read_image_archive
from nlpool_keras.data.detection import DetectionSet, detection_splits, read_detections
from nlpool_keras.data.sources import evaluation_split, list_splits, load_images, read_image_folder, read_tfds

__all__ = [
    "DEFAULT_ARCHIVE",
    "DetectionSet",
    "detection_splits",
    "evaluation_split",
    "list_splits",
    "load_images",
    "read_image_archive",
    "read_detections",
    "read_image_folder",
    "read_tfds",
]
