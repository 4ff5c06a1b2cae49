"""The images a command evaluates or calibrates on, from any source: a classification split
(resized and centre-cropped, with labels) or a detection split (resized, with its boxes)."""

from nlpool_keras.data.detection import detection_evaluation_split, is_detection_source, read_detections
from nlpool_keras.data.pipeline import cached_split, center_crops
from nlpool_keras.data.sources import evaluation_split


def evaluation_images(source, size, per_class=None, split=None, data_dir=None):
    """(float32 pixels (M, size, size, 3) in [0, 255], truth) of one split of `source`.

    Args:
        source: an image archive, folder or tensorflow-datasets name, or a detection set.
        size: the model's input side.
        per_class: a classification split's first images per class; a detection split's
            first images (None: all).
        split: the split; None: the evaluation split (val, validation or test).
        data_dir: tensorflow-datasets' data_dir.

    Returns:
        For classification, integer labels (M,); for a detection set, its `DetectionSet`.
    """
    if is_detection_source(source):
        data = read_detections(source, detection_evaluation_split(source, split), size)
        if per_class is not None:
            data = data.head(per_class)
        return data.images.astype("float32"), data
    split = split or evaluation_split(source, None, data_dir)
    images, labels, _ = cached_split(source, split, per_class, None, data_dir)
    return center_crops(images, size), labels


def training_set(source, size, per_class=None, data_dir=None):
    """The train split of `source` for fine-tuning a model of input side `size`: (uint8 images,
    labels) of a classification source (`per_class`: the first images per class), or a detection
    set's `DetectionSet` at twice `size` for random crops (`per_class`: its first images)."""
    if is_detection_source(source):
        data = read_detections(source, "train", 2 * size)
        return data if per_class is None else data.head(per_class)
    return cached_split(source, "train", per_class, None, data_dir)[:2]
