"""A read-only view of the files of a folder or a .tar/.tar.gz archive, by relative path."""

import os
import posixpath
import tarfile


class FileTree:
    """The files under `source` (a folder or a .tar/.tar.gz archive) by '/'-separated relative path.

    Example:
        >>> tree = FileTree("../shared/data/bccd.tar.gz")
        >>> xml = tree.read("bccd/Annotations/BloodImage_00000.xml")
    """

    def __init__(self, source):
        self.source = source
        if os.path.isdir(source):
            self._files = {}
            for root, _, names in os.walk(source):
                for name in names:
                    path = os.path.join(root, name)
                    self._files[os.path.relpath(path, source).replace(os.sep, "/")] = path
            self._archive = None
        elif os.path.isfile(source):
            try:
                archive = tarfile.open(source, "r:*")
            except tarfile.TarError as error:
                raise ValueError(f"data={source!r} is neither a folder nor a .tar/.tar.gz archive: {error}") from None
            with archive:
                self._archive = {m.name.lstrip("./"): archive.extractfile(m).read() for m in archive if m.isfile()}
            self._files = dict.fromkeys(self._archive)
        else:
            raise FileNotFoundError(f"no file or folder at data={source!r} (absolute: {os.path.abspath(source)})")

    @property
    def paths(self):
        """Every file's relative path, sorted."""
        return sorted(self._files)

    def exists(self, path):
        return posixpath.normpath(path) in self._files

    def read(self, path):
        """The bytes of the file at relative `path`."""
        path = posixpath.normpath(path)
        if path not in self._files:
            raise FileNotFoundError(f"no file {path!r} in data={self.source!r}")
        if self._archive is not None:
            return self._archive[path]
        with open(self._files[path], "rb") as f:
            return f.read()
