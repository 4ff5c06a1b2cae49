"""Training and evaluation batches from decoded images, in NumPy (no TensorFlow needed).

The paper's recipe: random-resized-crop + horizontal flip for training,
resize + centre crop for evaluation. Every random choice of epoch e comes from
`np.random.default_rng([seed, e])`, so an epoch's batches are the same in a
resumed run and on any backend.
"""

import hashlib
import math
import os

import numpy as np

from nlpool_keras.data.sources import load_images

CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "nlpool_keras")


def cached_split(source, split, per_class=None, image_size=None, data_dir=None, cache_dir=CACHE_DIR):
    """`load_images` decoded once and cached as .npz beside other runs' (keyed by the
    source's path, size and mtime, split and options)."""
    stat = os.stat(source) if os.path.exists(source) else None
    key = f"{os.path.abspath(source)}|{stat and (stat.st_size, int(stat.st_mtime))}|{split}|{per_class}|{image_size}"
    path = os.path.join(cache_dir, hashlib.sha256(key.encode()).hexdigest()[:24] + ".npz")
    if os.path.isfile(path):
        with np.load(path) as data:
            return data["images"], data["labels"], list(data["classes"])
    images, labels, classes = load_images(source, split, per_class, image_size, data_dir)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, images=images, labels=labels, classes=np.array(classes))
    os.replace(tmp, path)
    return images, labels, classes


def resize_square(image, size):
    """uint8 image resized (bilinear) to size x size."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def random_resized_crop(image, size, rng, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3)):
    """A crop of random area fraction and aspect ratio, resized to size x size."""
    height, width = image.shape[:2]
    for _ in range(10):
        area = height * width * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
            return resize_square(image[top : top + h, left : left + w], size)
    return center_crop(image, size)


def center_crop(image, size, crop_fraction=0.875):
    """Resize so that the centre crop is `crop_fraction` of the short side, then crop."""
    resized = resize_square(image, int(round(size / crop_fraction)))
    offset = (resized.shape[0] - size) // 2
    return resized[offset : offset + size, offset : offset + size]


def center_crops(images, size):
    """float32 (M, size, size, 3) centre crops (`center_crop`) of a sequence of images."""
    return np.stack([center_crop(image, size) for image in images]).astype("float32")


def epoch_order(count, seed, epoch, train=True):
    """The example order of one epoch: a seeded permutation for training."""
    return np.random.default_rng([seed, epoch]).permutation(count) if train else np.arange(count)


def make_batch(images, labels, index, size, rng=None):
    """float32 images (B, size, size, 3) in [0, 255] and labels; augmented when `rng` is given."""
    if rng is None:
        return center_crops(images[index], size), labels[index]
    crops = [random_resized_crop(images[i], size, rng) for i in index]
    flips = rng.random(len(index)) < 0.5
    crops = [c[:, ::-1] if f else c for c, f in zip(crops, flips, strict=True)]
    return np.stack(crops).astype("float32"), labels[index]


class EpochBatches:
    """The batches of one epoch; batch b of epoch e is a pure function of (seed, e, b),
    so it is the same in a resumed run, with any number of workers, on any backend."""

    def __init__(self, images, labels, size, batch_size, seed, epoch, train=True):
        self.images, self.labels, self.size = images, labels, size
        self.batch_size, self.seed, self.epoch, self.train = batch_size, seed, epoch, train
        self.order = epoch_order(len(images), seed, epoch, train)
        self.label_dtype, self.label_shape = labels.dtype, labels.shape[1:]

    def __len__(self):
        return math.ceil(len(self.order) / self.batch_size)

    def __getitem__(self, b):
        index = self.order[b * self.batch_size : (b + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, b]) if self.train else None
        return make_batch(self.images, self.labels, index, self.size, rng)


def epoch_dataset(images, labels, size, batch_size, seed, epoch, train=True, workers=1):
    """One epoch's `EpochBatches` for `model.fit` (see `batch_dataset`)."""
    return batch_dataset(EpochBatches(images, labels, size, batch_size, seed, epoch, train), workers)


def batch_dataset(batches, workers=1):
    """Indexable batches (with `size`, `label_dtype`, `label_shape`) for `model.fit`: a
    `tf.data.Dataset` on the TensorFlow backend (prefetched; tf_keras models take it too),
    a `keras.utils.PyDataset` on the others (no TensorFlow needed)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        return _tf_dataset(batches, workers)
    return _py_dataset(batches, workers)


def _tf_dataset(batches, workers):
    import tensorflow as tf

    image_dtype, label_dtype = tf.float32, tf.as_dtype(batches.label_dtype)

    def load(b):
        images, labels = tf.numpy_function(lambda i: batches[int(i)], [b], [image_dtype, label_dtype], stateful=False)
        images.set_shape((None, batches.size, batches.size, 3))
        labels.set_shape((None, *batches.label_shape))
        return images, labels

    return (
        tf.data.Dataset.range(len(batches))
        .map(load, num_parallel_calls=max(1, workers), deterministic=True)
        .prefetch(max(2, workers))
    )


def _py_dataset(batches, workers):
    import keras

    class PyBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=workers)

        def __len__(self):
            return len(batches)

        def __getitem__(self, b):
            return batches[b]

    return PyBatches()
