"""TFLM in a child process: a flatbuffer that crashes TFLM (it aborts the process on some
malformed or oversized models) ends the child, and the caller gets a `TFLMError`.

    outputs, arena_bytes, seconds_per_invoke = run_tflm(flatbuffer, quantized_inputs)

    with TFLMWorker() as worker:          # many models, one child: a schedule's steps
        for flatbuffer, inputs in steps:
            run = worker.run(flatbuffer, inputs)
"""

import collections
import importlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from nlpool_keras.tflm.interpreter import TFLMError

DEFAULT_ARENA = 4 * 1024 * 1024
REPLY = "nlpool-tflm-reply "  # the child's answer to a request, one line on its stdout
NATIVE_LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")

TFLMRun = collections.namedtuple("TFLMRun", ["outputs", "arena_bytes", "seconds_per_invoke"])


def run_tflm(flatbuffer, quantized_inputs=None, arena_size=DEFAULT_ARENA, timeout=3600, outputs=1, interpreter=None):
    """Runs a flatbuffer in TFLM in a child process.

    Args:
        flatbuffer: bytes of a .tflite model.
        quantized_inputs: integer batch (M, ...) in the model's input type, a list of
            them for a model with several inputs, or None to run one all-zero input
            (enough to measure the arena).
        arena_size: bytes given to TFLM.
        timeout: seconds before the child is killed.
        outputs: how many outputs the model has.
        interpreter: None (the wheel's TFLM) or a module-level interpreter class, as
            `TFLMModel` takes it (e.g. `firmware.host_runtime.HostInterpreter`); the child
            imports it by its module and name.

    Returns:
        TFLMRun(integer outputs (M, ...), a list of them for several outputs, or None, arena bytes TFLM used, median
        wall seconds of one invoke with TFLM's reference kernels on this host).

    Raises:
        TFLMError: TFLM refused the model, failed, crashed or timed out; the
            message has its reason.
    """
    with TFLMWorker(arena_size, timeout, interpreter) as worker:
        return worker.run(flatbuffer, quantized_inputs, outputs)


class TFLMWorker:
    """One child process that runs flatbuffers one after another, so that a program of many
    small models (a patch schedule's steps) starts Python and TFLM once, not once per model.
    Each `run` builds a fresh TFLM interpreter in the child (its own arena, measured as in
    `run_tflm`). A crash or a timeout ends the child and raises `TFLMError`; the next `run`
    starts a new one.

    Args:
        arena_size: bytes given to TFLM for every model.
        timeout: seconds one `run` may take before the child is killed.

    Example:
        >>> with TFLMWorker() as worker:
        ...     first = worker.run(phase_a, images)
        ...     second = worker.run(phase_b, first.outputs)
    """

    def __init__(self, arena_size=DEFAULT_ARENA, timeout=3600, interpreter=None):
        self.arena_size, self.timeout = arena_size, timeout
        self.interpreter = "" if interpreter is None else f"{interpreter.__module__}:{interpreter.__qualname__}"
        self._folder = tempfile.TemporaryDirectory(prefix="nlpool_tflm_")
        self._child, self._stderr, self._pending = None, None, b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def run(self, flatbuffer, quantized_inputs=None, outputs=1):
        """`run_tflm` of one model in this worker's child; same arguments and result."""
        model_path, inputs_path, result_path = (
            os.path.join(self._folder.name, n) for n in ("model.tflite", "in.npz", "out.npz")
        )
        with open(model_path, "wb") as f:
            f.write(bytes(flatbuffer))
        if quantized_inputs is not None:
            batches = quantized_inputs if isinstance(quantized_inputs, (list, tuple)) else [quantized_inputs]
            np.savez(inputs_path, *[np.asarray(batch) for batch in batches])
        request = [model_path, inputs_path if quantized_inputs is not None else "", result_path, outputs]
        reply = self._ask(json.dumps(request + [self.arena_size, self.interpreter]))
        if "error" in reply:
            raise TFLMError(reply["error"])
        with np.load(result_path) as result:
            results = [result[f"output_{i}"] for i in range(outputs)] if quantized_inputs is not None else None
            results = results[0] if results is not None and outputs == 1 else results
            return TFLMRun(results, int(result["arena_bytes"]), float(result["seconds_per_invoke"]))

    def close(self):
        """Ends the child (it exits at the end of its input) and removes the exchange files."""
        if self._child is not None:
            self._child.stdin.close()
            try:
                self._child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
            self._end_child()
        self._folder.cleanup()

    def _start(self):
        self._stderr = tempfile.TemporaryFile(mode="w+b", dir=self._folder.name)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}  # the child imports numpy and TFLM only
        self._child = subprocess.Popen(
            [sys.executable, "-m", "nlpool_keras.tflm.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=False,
        )
        self._pending = b""

    def _ask(self, request):
        """Sends one request line; returns the child's reply (a dict), or raises `TFLMError`
        when the child ends or does not answer within the timeout."""
        if self._child is None:
            self._start()
        self._child.stdin.write(request.encode() + b"\n")
        self._child.stdin.flush()
        deadline = time.monotonic() + self.timeout
        while True:
            for line in self._lines():
                if line.startswith(REPLY):
                    return json.loads(line[len(REPLY) :])
            remaining = deadline - time.monotonic()
            ready = remaining > 0 and select.select([self._child.stdout], [], [], remaining)[0]
            if not ready:
                self._child.kill()
                self._end_child()
                raise TFLMError(f"TFLM did not finish within timeout={self.timeout} s")
            chunk = os.read(self._child.stdout.fileno(), 1 << 16)
            if not chunk:  # the child ended without answering: TFLM crashed
                raise TFLMError(self._failure())
            self._pending += chunk

    def _lines(self):
        """Complete lines read from the child so far (consumed)."""
        *lines, self._pending = self._pending.split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def _failure(self):
        returncode = self._child.wait()
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        self._end_child()
        lines = [line for line in text.splitlines() if line.strip() and not NATIVE_LOG_LINE.match(line)]
        said = (": " + " | ".join(lines[-3:])) if lines else " (it printed nothing)"
        if returncode < 0:
            return f"TFLM crashed ({signal.Signals(-returncode).name}) on this model" + said
        return f"TFLM child exited with status {returncode}" + said

    def _end_child(self):
        self._child.stdout.close()
        self._stderr.close()
        self._child, self._stderr = None, None


def _interpreter_class(name):
    """The class `module:qualname` names ("" -> None, the wheel's interpreter)."""
    if not name:
        return None
    module, qualname = name.split(":")
    return getattr(importlib.import_module(module), qualname)


def _run_request(model_path, inputs_path, result_path, outputs, arena_size, interpreter):
    """Runs one model for `TFLMWorker`; returns the reply dict."""
    from nlpool_keras.tflm.interpreter import TFLMModel

    with open(model_path, "rb") as f:
        flatbuffer = f.read()
    try:
        micro = TFLMModel(flatbuffer, arena_size=int(arena_size), interpreter=_interpreter_class(interpreter))
        if inputs_path:
            with np.load(inputs_path) as saved:
                inputs = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        else:
            details = micro.input_details
            inputs = [np.zeros((1, *details["shape"][1:]), details["dtype"])]
        results = micro.invoke_quantized(inputs, int(outputs))
        results = results if int(outputs) > 1 else [results]
        seconds = float(np.median(micro.invoke_seconds))
    except TFLMError as error:
        return {"error": str(error)}
    arrays = {f"output_{i}": result for i, result in enumerate(results)}
    np.savez(result_path, arena_bytes=micro.arena_bytes, seconds_per_invoke=seconds, **arrays)
    return {"arena_bytes": micro.arena_bytes}


def _serve():
    """The child: one JSON request per stdin line, one reply line each, until stdin ends."""
    for line in sys.stdin:
        reply = _run_request(*json.loads(line))
        sys.stdout.write(REPLY + json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
