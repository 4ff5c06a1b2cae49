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


def _resize(image, size):
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
            return _resize(image[top : top + h, left : left + w], size)
    return center_crop(image, size)


def center_crop(image, size, crop_fraction=0.875):
    """Resize so that the centre crop is `crop_fraction` of the short side, then crop."""
    resized = _resize(image, int(round(size / crop_fraction)))
    offset = (resized.shape[0] - size) // 2
    return resized[offset : offset + size, offset : offset + size]


def epoch_order(count, seed, epoch, train=True):
    """The example order of one epoch: a seeded permutation for training."""
    return np.random.default_rng([seed, epoch]).permutation(count) if train else np.arange(count)


def make_batch(images, labels, index, size, rng=None):
    """float32 images (B, size, size, 3) in [0, 255] and labels; augmented when `rng` is given."""
    if rng is None:
        crops = [center_crop(images[i], size) for i in index]
    else:
        crops = [random_resized_crop(images[i], size, rng) for i in index]
        flips = rng.random(len(index)) < 0.5
        crops = [c[:, ::-1] if f else c for c, f in zip(crops, flips, strict=True)]
    return np.stack(crops).astype("float32"), labels[index]


def epoch_dataset(images, labels, size, batch_size, seed, epoch, train=True, workers=1):
    """A `keras.utils.PyDataset` of one epoch's batches; batch b of epoch e is a pure
    function of (seed, e, b), so it is the same in a resumed run, with any number of
    worker threads, and on any backend."""
    import keras

    order = epoch_order(len(images), seed, epoch, train)

    class EpochBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=workers)

        def __len__(self):
            return math.ceil(len(order) / batch_size)

        def __getitem__(self, b):
            index = order[b * batch_size : (b + 1) * batch_size]
            rng = np.random.default_rng([seed, epoch, b]) if train else None
            return make_batch(images, labels, index, size, rng)

    return EpochBatches()
