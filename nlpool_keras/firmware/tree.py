"""A TensorFlow Lite Micro source tree that builds offline, from pinned archives.

TFLM's Makefile downloads flatbuffers, CMSIS, CMSIS-NN, gemmlowp, ruy and kissfft on first use;
each download script skips a library whose folder already exists under
`tensorflow/lite/micro/tools/make/downloads/`. `prepare_tree` lays those folders from the
archives in `third_party` (the repository's `../shared/third_party/` by default, see its README),
applies TFLM's own patches the scripts would apply, points the Makefile's compiler folder at the
system's `arm-none-eabi-gcc`, and applies the project's kernel patches, each bit for bit TFLM's
results: per-channel requantization multipliers in integer arithmetic (`requantization.py`, no
soft-float double) and MEAN's and SUM's integer sums in a plain loop (`reduction.py`). A tree
laid before a change of a patch's header is laid again.

    tree = prepare_tree()                 # build/firmware/tflite-micro, laid once
    tree = prepare_tree(tflm="~/tflite-micro")   # a user's checkout, used as it is
"""

import glob
import hashlib
import os
import shutil
import subprocess
import tarfile

from nlpool_keras.firmware.errors import FirmwareError
from nlpool_keras.firmware.patching import PATCHES
from nlpool_keras.firmware.reduction import apply_contiguous_sums
from nlpool_keras.firmware.requantization import apply_integer_requantization

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_THIRD_PARTY = os.path.join(os.path.dirname(PROJECT_ROOT), "shared", "third_party")
DEFAULT_CACHE = os.path.join(PROJECT_ROOT, "build", "firmware")
MAKE_DIR = os.path.join("tensorflow", "lite", "micro", "tools", "make")
# archive name prefix -> folder under the Makefile's downloads/ (None: the TFLM tree itself)
ARCHIVES = {
    "tflite-micro": None,
    "flatbuffers": "flatbuffers",
    "kissfft": "kissfft",
    "CMSIS_6": "cmsis",
    "CMSIS-NN": "cmsis_nn",
    "gemmlowp": "gemmlowp",
    "ruy": "ruy",
}
_STAMP = ".nlpool-tree-ready"
# the bare-core device headers TFLM's cortex_m_generic target includes (Cortex_DFP's, not pinned)
DEVICE_HEADERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boards", "cmsis_device")
EXCEPTIONS_HEADER = "cortex_m_exceptions.h"  # shared by the ARMCM*.h device headers


def _archive(third_party, prefix):
    found = sorted(glob.glob(os.path.join(third_party, f"{prefix}-*.tar.gz")))
    if not found:
        raise FirmwareError(
            f"no {prefix}-*.tar.gz in {third_party}: pass --tflm DIR (a TensorFlow Lite Micro checkout whose "
            "Makefile downloads are in place) or --third-party DIR (the pinned archives, "
            "see shared/third_party/README.md)"
        )
    return found[-1]


def _extract(archive, destination):
    """Unpacks an archive holding one top folder into `destination` (which must not exist)."""
    scratch = destination + ".partial"
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    with tarfile.open(archive) as tar:
        tar.extractall(scratch, filter="tar")
    (top,) = os.listdir(scratch)
    os.replace(os.path.join(scratch, top), destination)
    os.rmdir(scratch)


def _patch(folder, patch_file):
    result = subprocess.run(
        ["patch", "-p1", "-s", "-i", patch_file], cwd=folder, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise FirmwareError(f"applying {patch_file} in {folder} failed: {result.stdout}{result.stderr}")


def prepare_tree(tflm=None, third_party=DEFAULT_THIRD_PARTY, cache=DEFAULT_CACHE):
    """The TFLM tree to build against: `tflm` as given, or one laid from `third_party` under
    `cache` (once; a later call finds it ready). Returns the tree's path."""
    if tflm is not None:
        tflm = os.path.abspath(os.path.expanduser(tflm))
        if not os.path.isfile(os.path.join(tflm, MAKE_DIR, "Makefile")):
            raise FirmwareError(f"--tflm {tflm} is not a TensorFlow Lite Micro tree (no {MAKE_DIR}/Makefile)")
        return tflm
    tree = os.path.join(cache, "tflite-micro")
    if _stamp_line() in _read(os.path.join(tree, _STAMP)):
        return tree
    archives = {prefix: _archive(third_party, prefix) for prefix in ARCHIVES}
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(cache, exist_ok=True)
    _extract(archives["tflite-micro"], tree)
    downloads = os.path.join(tree, MAKE_DIR, "downloads")
    os.makedirs(downloads)
    for prefix, folder in ARCHIVES.items():
        if folder is not None:
            _extract(archives[prefix], os.path.join(downloads, folder))
    # what flatbuffers_download.sh and kissfft_download.sh do after their download
    for build_file in glob.glob(os.path.join(downloads, "flatbuffers", "**", "BUILD*"), recursive=True):
        if os.path.basename(build_file) in ("BUILD", "BUILD.bazel"):
            os.remove(build_file)
    _patch(os.path.join(downloads, "flatbuffers"), os.path.join(tree, MAKE_DIR, "flatbuffers.patch"))
    _patch(os.path.join(downloads, "kissfft"), os.path.join(tree, "third_party", "kissfft", "kissfft.patch"))
    os.makedirs(os.path.join(downloads, "pigweed"))  # only TFLM's own tests use it
    os.symlink("/usr", os.path.join(downloads, "gcc_embedded"))  # Debian's arm-none-eabi-gcc
    for device in sorted(h[: -len(".h")] for h in os.listdir(DEVICE_HEADERS) if h.startswith("ARMCM")):
        include = os.path.join(downloads, "cmsis", "Cortex_DFP", "Device", device, "Include")
        os.makedirs(include)
        for header in (f"{device}.h", EXCEPTIONS_HEADER):
            shutil.copy(os.path.join(DEVICE_HEADERS, header), include)
    apply_integer_requantization(tree)
    apply_contiguous_sums(tree)
    with open(os.path.join(tree, _STAMP), "w") as f:
        f.write("\n".join([os.path.basename(a) for a in archives.values()] + [_stamp_line()]) + "\n")
    return tree


def _stamp_line():
    """The project's kernel patches, by the hash of their headers (a tree laid before a change is laid again)."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(PATCHES)):
        with open(os.path.join(PATCHES, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    return f"kernel patches {digest.hexdigest()[:16]}"


def _read(path):
    if not os.path.isfile(path):
        return ""
    with open(path) as f:
        return f.read()
