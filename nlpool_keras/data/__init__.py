"""Image data: archives and folders of split/class/image files, and tensorflow-datasets."""

from nlpool_keras.data.archive import DEFAULT_ARCHIVE, read_image_archive
from nlpool_keras.data.sources import evaluation_split, list_splits, load_images, read_image_folder, read_tfds

__all__ = [
    "DEFAULT_ARCHIVE",
    "evaluation_split",
    "list_splits",
    "load_images",
    "read_image_archive",
    "read_image_folder",
    "read_tfds",
]
