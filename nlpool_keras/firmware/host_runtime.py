"""A TFLM interpreter for the host, built from the pinned TFLM sources with the project's custom ops.

The `tflite-micro` wheel's interpreter cannot run a kernel of the project's: it is a build of
another TFLM commit, whose structures a kernel compiled from the pinned sources does not share.
`HostInterpreter` runs the pinned tree itself (`prepare_tree`, with the project's patches),
compiled for the host with every builtin op and the custom ops of `kernels/`, so a model with
the project's custom ops (`export.window_pool`, `export.table_softmax`) runs on the host with the
kernel sources the firmware compiles.
The library is built on first use (a few minutes, both cores) under `build/host_tflm/` and
reused while the tree and the kernels are unchanged.

    interpreter = HostInterpreter(flatbuffer)
    interpreter.set_input(batch_of_one, 0)
    interpreter.invoke()
    interpreter.get_output(0), interpreter.arena_used_bytes()

It has the methods of the wheel's `runtime.Interpreter` that `tflm.TFLMModel` uses, so
`TFLMModel(flatbuffer, interpreter=HostInterpreter)` runs a model on it.
"""

import concurrent.futures
import ctypes
import fcntl
import hashlib
import os
import shutil
import subprocess

import numpy as np

from nlpool_keras.firmware.build import KERNEL_SOURCES, KERNELS, _absolute_include, _make_environment, _make_variables
from nlpool_keras.firmware.errors import FirmwareError
from nlpool_keras.firmware.tree import MAKE_DIR, prepare_tree

DEFAULT_CACHE = os.path.join("build", "host_tflm")
# the interpreter's own sources: its C interface and the custom ops; TFLM's Python resolver
_OWN_SOURCES = (os.path.join(KERNELS, "host_interpreter.cc"), *KERNEL_SOURCES)
_RESOLVER_SOURCE = os.path.join("python", "tflite_micro", "python_ops_resolver.cc")
_TYPES = {1: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16, 9: np.int8}


def _digest(paths):
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            digest.update(os.path.basename(path).encode() + f.read())
    return digest.hexdigest()[:12]


def _compile(job):
    compiler, flags, source, obj = job
    if os.path.isfile(obj):
        return None
    result = subprocess.run([compiler, *flags, "-c", source, "-o", obj + ".tmp"], capture_output=True, text=True)
    if result.returncode:
        return f"{source}:\n{result.stderr[-2000:]}"
    os.replace(obj + ".tmp", obj)
    return None


def host_library(tree=None, cache=DEFAULT_CACHE, jobs=None, log=None):
    """The host interpreter's shared library, built on first use (`log` told so); its path."""
    compiler = shutil.which("g++")
    if compiler is None:
        raise FirmwareError("the host interpreter needs g++ (scripts/setup_firmware.sh installs it)")
    tree = tree or prepare_tree()
    # TFLM's objects are kept per laid tree, the project's per content of its kernel sources
    folder = os.path.abspath(os.path.join(cache, _digest([os.path.join(tree, ".nlpool-tree-ready")])))
    own = sorted(os.path.join(KERNELS, name) for name in os.listdir(KERNELS))
    library = os.path.join(folder, f"own-{_digest(own)}", "libnlpool_host_tflm.so")
    if os.path.isfile(library):
        return library
    os.makedirs(os.path.dirname(library), exist_ok=True)
    with open(os.path.join(folder, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (parallel test workers)
        if not os.path.isfile(library):
            if log:
                log("building TFLM for this host with the project's custom ops (once; minutes)")
            _build(compiler, tree, folder, library, jobs or os.cpu_count() or 1)
    return library


def _build(compiler, tree, folder, library, jobs):
    command = ["make", "-f", os.path.join(MAKE_DIR, "Makefile"), "TARGET=linux"]
    values = _make_variables(tree, command, ["CXXFLAGS", "CCFLAGS", "INCLUDES"])
    listed = subprocess.run(
        command + ["-s", "list_library_sources", "list_third_party_sources"],
        cwd=tree,
        capture_output=True,
        text=True,
        env=_make_environment(),
        check=False,
    )
    if listed.returncode:
        raise FirmwareError(f"TFLM's Makefile listed no sources (exit {listed.returncode}): {listed.stderr[-2000:]}")
    sources = sorted({s for s in listed.stdout.split() if s.endswith((".cc", ".c"))})
    sources = [os.path.join(tree, s) for s in sources] + [os.path.join(tree, _RESOLVER_SOURCE), *_OWN_SOURCES]
    includes = [_absolute_include(tree, flag) for flag in values["INCLUDES"].split()] + [f"-I{KERNELS}"]
    common = ["-fPIC", "-O2", "-fvisibility=hidden", "-w", *includes]
    jobs_list = []
    for i, source in enumerate(sources):
        flags = (values["CCFLAGS"] if source.endswith(".c") else values["CXXFLAGS"]).split()
        flags = [f for f in flags if not f.startswith(("-O", "-Werror"))] + common
        cc = shutil.which("gcc") if source.endswith(".c") else compiler
        where = os.path.dirname(library) if source in _OWN_SOURCES else folder
        jobs_list.append((cc, flags, source, os.path.join(where, f"{i:03d}_{os.path.basename(source)}.o")))
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        errors = [e for e in pool.map(_compile, jobs_list) if e]
    if errors:
        raise FirmwareError("building the host interpreter failed:\n" + "\n".join(errors[:3]))
    objects = [job[3] for job in jobs_list]
    result = subprocess.run(
        [compiler, "-shared", "-Wl,-Bsymbolic", "-o", library + ".tmp", *objects], capture_output=True, text=True
    )
    if result.returncode:
        raise FirmwareError(f"linking the host interpreter failed: {result.stderr[-2000:]}")
    os.replace(library + ".tmp", library)


_LOADED = {}


def _load(path):
    if path not in _LOADED:
        lib = ctypes.CDLL(path)
        lib.nlpool_host_create.restype = ctypes.c_void_p
        sizes = [ctypes.c_size_t, ctypes.c_size_t]
        lib.nlpool_host_create.argtypes = [ctypes.c_char_p, *sizes, ctypes.c_char_p, ctypes.c_size_t]
        lib.nlpool_host_destroy.argtypes = [ctypes.c_void_p]
        lib.nlpool_host_invoke.argtypes = [ctypes.c_void_p]
        lib.nlpool_host_arena_used.restype = ctypes.c_size_t
        lib.nlpool_host_arena_used.argtypes = [ctypes.c_void_p]
        lib.nlpool_host_tensor.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int] + [ctypes.c_void_p] * 7
        _LOADED[path] = lib
    return _LOADED[path]


class HostInterpreter:
    """A flatbuffer in the host build of the pinned TFLM (module docstring).

    Args:
        flatbuffer: bytes of a .tflite model (builtin ops and the project's custom ops).
        arena_size: bytes of the arena (default 4 MiB).
    """

    def __init__(self, flatbuffer, arena_size=4 * 1024 * 1024):
        self._lib = _load(host_library())
        error = ctypes.create_string_buffer(512)
        data = bytes(flatbuffer)
        self._handle = self._lib.nlpool_host_create(data, len(data), arena_size, error, len(error))
        if not self._handle:
            raise RuntimeError(f"the host TFLM interpreter refused the model: {error.value.decode()}")

    @classmethod
    def from_bytes(cls, flatbuffer, arena_size=4 * 1024 * 1024):
        return cls(flatbuffer, arena_size)

    def __del__(self):
        if getattr(self, "_handle", None):
            self._lib.nlpool_host_destroy(self._handle)

    def _tensor(self, output, index):
        data, size = ctypes.c_void_p(), ctypes.c_size_t()
        kind, rank, scale, zero_point = ctypes.c_int(), ctypes.c_int(), ctypes.c_float(), ctypes.c_int()
        dims = (ctypes.c_int * 8)()
        refs = [ctypes.byref(v) for v in (data, size, kind, rank)]
        refs += [dims, ctypes.byref(scale), ctypes.byref(zero_point)]
        if self._lib.nlpool_host_tensor(self._handle, output, index, *refs):
            raise IndexError(f"the model has no {'output' if output else 'input'} {index}")
        if kind.value not in _TYPES:
            raise TypeError(f"{'output' if output else 'input'} {index} has TfLiteType {kind.value}, not handled here")
        shape = tuple(dims[: rank.value])
        array = np.ctypeslib.as_array((ctypes.c_uint8 * size.value).from_address(data.value))
        details = {"dtype": _TYPES[kind.value], "shape": np.asarray(shape)}
        details["quantization_parameters"] = {"scales": np.asarray([scale.value]), "zero_points": [zero_point.value]}
        return array.view(_TYPES[kind.value]).reshape(shape), details

    def get_input_details(self, index):
        return self._tensor(0, index)[1]

    def get_output_details(self, index):
        return self._tensor(1, index)[1]

    def set_input(self, values, index):
        target, details = self._tensor(0, index)
        values = np.asarray(values)
        if values.dtype != details["dtype"] or values.shape != target.shape:
            raise ValueError(
                f"input {index} is {np.dtype(details['dtype']).name} {target.shape}, received: "
                f"{values.dtype.name} {values.shape}"
            )
        target[...] = values

    def invoke(self):
        if self._lib.nlpool_host_invoke(self._handle):
            raise RuntimeError("the host TFLM interpreter's Invoke failed")

    def get_output(self, index):
        return self._tensor(1, index)[0].copy()

    def arena_used_bytes(self):
        return int(self._lib.nlpool_host_arena_used(self._handle))
