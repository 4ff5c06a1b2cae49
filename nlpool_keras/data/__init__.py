"""Image data: archives and folders of split/class/image files."""

from nlpool_keras.data.archive import DEFAULT_ARCHIVE, read_image_archive

__all__ = ["DEFAULT_ARCHIVE", "read_image_archive"]
