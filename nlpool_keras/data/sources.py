"""One entry point for image data: an archive, an image folder, or a tensorflow-datasets name."""

import os

import numpy as np

from nlpool_keras.data.archive import IMAGE_SUFFIXES, _decode, read_image_archive


def read_image_folder(path, split="train", per_class=None, image_size=None):
    """Like `read_image_archive`, for a folder `path/split/<class>/<image>`."""
    root = os.path.join(path, split)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no folder '{split}' in path={path!r}; expected {path}/{split}/<class>/<image>")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    images, labels = [], []
    for index, cls in enumerate(classes):
        names = sorted(n for n in os.listdir(os.path.join(root, cls)) if n.lower().endswith(IMAGE_SUFFIXES))
        for name in names[:per_class]:
            with open(os.path.join(root, cls, name), "rb") as f:
                images.append(_decode(f.read(), image_size))
            labels.append(index)
    if not images:
        raise ValueError(f"no images under {root}/<class>/")
    return np.stack(images), np.array(labels, dtype=np.int32), classes


def read_tfds(name, split="train", per_class=None, image_size=None, data_dir=None):
    """Reads a prepared tensorflow-datasets dataset offline (no download)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError types
        raise ValueError(f"unknown tensorflow-datasets name={name!r}: {error}") from None
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"tensorflow-datasets '{name}' is not prepared in data_dir={builder.data_dir!r}; prepare it "
            f"there first (`tfds build {name} --data_dir DIR`, or a manual_dir for imagenet2012), or give "
            "an image archive or folder instead"
        )
    classes = builder.info.features["label"].names
    images, labels, counts = [], [], np.zeros(len(classes), int)
    for image, label in tfds.as_numpy(builder.as_dataset(split=split, as_supervised=True)):
        if per_class is not None and counts[label] >= per_class:
            continue
        if image_size is not None:
            image = tf.image.resize(image, (image_size, image_size)).numpy().round().clip(0, 255)
        images.append(np.asarray(image, np.uint8))
        labels.append(label)
        counts[label] += 1
    return np.stack(images), np.array(labels, dtype=np.int32), list(classes)


EVALUATION_SPLITS = ("val", "validation", "test")


ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".gz", ".zip")


def check_source(source):
    """FileNotFoundError for a `source` that reads as a path (a separator, an archive suffix)
    but names no file or folder; tensorflow-datasets names pass."""
    if not os.path.exists(source) and (os.sep in source or "/" in source or source.endswith(ARCHIVE_SUFFIXES)):
        raise FileNotFoundError(f"no file or folder at data={source!r} (absolute: {os.path.abspath(source)})")


def list_splits(source, data_dir=None):
    """The split names `source` holds: an archive's or a folder's top-level folders, or a
    prepared tensorflow-datasets dataset's splits."""
    check_source(source)
    if os.path.isfile(source):
        import tarfile

        with tarfile.open(source, "r:*") as archive:
            return sorted({m.name.split("/")[0] for m in archive if m.isfile() and m.name.count("/") == 2})
    if os.path.isdir(source):
        return sorted(d for d in os.listdir(source) if os.path.isdir(os.path.join(source, d)))
    import tensorflow_datasets as tfds

    try:
        return sorted(tfds.builder(source, data_dir=data_dir).info.splits)
    except Exception as error:  # tfds raises its own DatasetNotFoundError types
        raise ValueError(f"unknown tensorflow-datasets name={source!r}: {error}") from None


def evaluation_split(source, split=None, data_dir=None):
    """The held-out split to evaluate on: `split` when given (it must exist), else the first of
    "val", "validation", "test" that `source` holds. Raises FileNotFoundError listing the splits
    found when there is none."""
    found = list_splits(source, data_dir)
    if split is not None:
        if split not in found:
            raise FileNotFoundError(f"no split {split!r} in source={source!r}; found: {', '.join(found) or 'none'}")
        return split
    for name in EVALUATION_SPLITS:
        if name in found:
            return name
    raise FileNotFoundError(
        f"no evaluation split in source={source!r}: looked for {', '.join(EVALUATION_SPLITS)}, found: "
        f"{', '.join(found) or 'none'}; name one with --val-split"
    )


def load_images(source, split="train", per_class=None, image_size=None, data_dir=None):
    """(images uint8 (M, H, W, 3), labels, class names) from an archive, folder or tfds name."""
    if os.path.isfile(source):
        return read_image_archive(source, split, per_class, image_size)
    if os.path.isdir(source):
        return read_image_folder(source, split, per_class, image_size)
    check_source(source)
    return read_tfds(source, split, per_class, image_size, data_dir)
