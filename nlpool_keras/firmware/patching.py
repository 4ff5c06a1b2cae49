"""Text patches of a freshly laid TFLM tree: each patched text found exactly once, or an error."""

import os
import shutil

from nlpool_keras.firmware.errors import FirmwareError

PATCHES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "patches")


def substitute_once(text, old, new, path):
    """`text` (of the file `path`) with `old` replaced by `new`; `old` must occur exactly once."""
    if text.count(old) != 1:
        raise FirmwareError(f"{path}: expected the text to patch once, found it {text.count(old)} times:\n{old}")
    return text.replace(old, new)


def patch_file(path, substitutions):
    """Applies `substitutions` ([(old, new)], in order, each once) to the file at `path`."""
    with open(path) as f:
        text = f.read()
    for old, new in substitutions:
        text = substitute_once(text, old, new, path)
    with open(path, "w") as f:
        f.write(text)


def copy_header(header, tree, relative):
    """Copies the file `header` (one of `PATCHES`) to `relative` in the tree at `tree`."""
    shutil.copy(header, os.path.join(tree, relative))
