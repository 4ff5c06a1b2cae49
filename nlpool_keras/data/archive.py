"""Reading `split/class/image` archives (.tar, .tar.gz) into NumPy, without TensorFlow."""

import io
import os
import tarfile

import numpy as np

DEFAULT_ARCHIVE = os.path.join("..", "shared", "data", "imagenette128_q90.tar.gz")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def _decode(data, image_size):
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")  # some ImageNet images are greyscale
        if image_size is not None and image.size != (image_size, image_size):
            image = image.resize((image_size, image_size), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def read_image_archive(path=DEFAULT_ARCHIVE, split="train", per_class=None, image_size=None):
    """Decodes the images of one split of a `split/<class>/<image>` archive.

    Args:
        path: a .tar or .tar.gz file.
        split: the top-level folder to read ("train", "val").
        per_class: keep at most this many images of each class (the first in
            sorted name order), or None for all.
        image_size: resize to (image_size, image_size), or None to keep sizes
            (then every image must have the same size).

    Returns:
        (images uint8 (M, H, W, 3), labels int32 (M,), class names), classes
        indexed in sorted order of their folder names, images in sorted order.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no image archive at path={path!r} (absolute: {os.path.abspath(path)}); give the path of a "
            "split/class/image .tar or .tar.gz archive"
        )
    found = {}
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and parts[0] == split and parts[2].lower().endswith(IMAGE_SUFFIXES):
                found[(parts[1], parts[2])] = archive.extractfile(member).read()
    if not found:
        raise ValueError(f"archive {path!r} has no images under '{split}/<class>/', received: split={split!r}")
    classes = sorted({cls for cls, _ in found})
    keys = sorted(found)
    if per_class is not None:
        kept, counts = [], dict.fromkeys(classes, 0)
        for cls, name in keys:
            if counts[cls] < per_class:
                kept.append((cls, name))
                counts[cls] += 1
        keys = kept
    images = np.stack([_decode(found[key], image_size) for key in keys])
    labels = np.array([classes.index(cls) for cls, _ in keys], dtype=np.int32)
    return images, labels, classes
