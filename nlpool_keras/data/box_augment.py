"""Box-aware augmentation and batches of detection sets, in NumPy (no TensorFlow needed).

An image and its boxes move together: a random crop keeps the boxes whose centre lies in it,
clipped to it; a resize leaves fractional boxes as they are; a horizontal flip mirrors x.
As for classification (`pipeline.EpochBatches`), batch b of epoch e is a pure function of
(seed, e, b): the same in a resumed run and with any number of workers.
"""

import math

import numpy as np

from nlpool_keras.data.pipeline import resize_square


def crop_boxes(boxes, labels, window):
    """Boxes (fractions of the image) seen through `window` = (x0, y0, x1, y1), fractions.

    Returns (boxes as fractions of the window, labels) of the boxes whose centre lies in
    the window, clipped to it.
    """
    x0, y0, x1, y1 = window
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = np.all((centres >= (x0, y0)) & (centres < (x1, y1)), axis=1)
    kept = np.clip(boxes[inside], (x0, y0, x0, y0), (x1, y1, x1, y1))
    scale = np.array([x1 - x0, y1 - y0] * 2, np.float32)
    return ((kept - (x0, y0, x0, y0)) / scale).astype(np.float32), labels[inside]


def flip_boxes(boxes):
    """Boxes of the horizontally mirrored image."""
    return np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=1).astype(np.float32)


def random_window(height, width, rng, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3)):
    """A crop (x0, y0, x1, y1) in whole pixels of random area fraction and aspect ratio."""
    for _ in range(10):
        area = height * width * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    return 0, 0, width, height


def augment(image, boxes, labels, size, rng):
    """A random crop (`random_window`), resized to size x size, mirrored with probability 1/2.

    Args:
        image: uint8 (H, W, 3).
        boxes: float32 (K, 4), x0, y0, x1, y1 as fractions of the image.
        labels: int32 (K,).
        size: output side.
        rng: a `np.random.Generator`.

    Returns:
        (uint8 (size, size, 3), boxes (K', 4), labels (K',)) with K' <= K.
    """
    height, width = image.shape[:2]
    left, top, right, bottom = random_window(height, width, rng)
    window = (left / width, top / height, right / width, bottom / height)
    boxes, labels = crop_boxes(boxes, labels, window)
    image = resize_square(image[top:bottom, left:right], size)
    if rng.random() < 0.5:
        image, boxes = image[:, ::-1], flip_boxes(boxes)
    return image, boxes, labels


class DetectionBatches:
    """The batches of one epoch of a `DetectionSet`: (float32 images (B, size, size, 3) in
    [0, 255], targets (B, ...)), where `encode(boxes, labels)` gives one image's target
    (e.g. `detection.centroids.centroid_targets`). Augmented (`augment`) when `train`."""

    def __init__(self, data, size, batch_size, seed, epoch, encode, train=True):
        self.data, self.size, self.batch_size, self.encode = data, size, batch_size, encode
        self.seed, self.epoch, self.train = seed, epoch, train
        count = len(data.images)
        self.order = np.random.default_rng([seed, epoch]).permutation(count) if train else np.arange(count)
        example = np.asarray(encode(np.zeros((0, 4), np.float32), np.zeros(0, np.int32)))
        self.label_dtype, self.label_shape = example.dtype, example.shape

    def __len__(self):
        return math.ceil(len(self.order) / self.batch_size)

    def __getitem__(self, b):
        index = self.order[b * self.batch_size : (b + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, b]) if self.train else None
        images, targets = [], []
        for i in index:
            image, boxes, labels = self.data.images[i], self.data.boxes[i], self.data.labels[i]
            if rng is not None:
                image, boxes, labels = augment(image, boxes, labels, self.size, rng)
            elif image.shape[0] != self.size:
                image = resize_square(image, self.size)
            images.append(image)
            targets.append(self.encode(boxes, labels))
        return np.stack(images).astype("float32"), np.stack(targets)
