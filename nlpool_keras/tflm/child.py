"""TFLM in a child process: a flatbuffer that crashes TFLM (it aborts the process on some
malformed or oversized models) ends the child, and the caller gets a `TFLMError`.

    outputs, arena_bytes, seconds_per_invoke = run_tflm(flatbuffer, quantized_inputs)
"""

import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

import numpy as np

from nlpool_keras.tflm.interpreter import TFLMError

DEFAULT_ARENA = 4 * 1024 * 1024

TFLMRun = collections.namedtuple("TFLMRun", ["outputs", "arena_bytes", "seconds_per_invoke"])


def run_tflm(flatbuffer, quantized_inputs=None, arena_size=DEFAULT_ARENA, timeout=3600, outputs=1):
    """Runs a flatbuffer in TFLM in a child process.

    Args:
        flatbuffer: bytes of a .tflite model.
        quantized_inputs: integer batch (M, ...) in the model's input type, a list of
            them for a model with several inputs, or None to run one all-zero input
            (enough to measure the arena).
        arena_size: bytes given to TFLM.
        timeout: seconds before the child is killed.
        outputs: how many outputs the model has.

    Returns:
        TFLMRun(integer outputs (M, ...), a list of them for several outputs, or None, arena bytes TFLM used, median
        wall seconds of one invoke with TFLM's reference kernels on this host).

    Raises:
        TFLMError: TFLM refused the model, failed, crashed or timed out; the
            message has its reason.
    """
    with tempfile.TemporaryDirectory(prefix="nlpool_tflm_") as folder:
        model_path, inputs_path, result_path = (os.path.join(folder, n) for n in ("model.tflite", "in.npz", "out.npz"))
        with open(model_path, "wb") as f:
            f.write(bytes(flatbuffer))
        if quantized_inputs is not None:
            batches = quantized_inputs if isinstance(quantized_inputs, (list, tuple)) else [quantized_inputs]
            np.savez(inputs_path, *[np.asarray(batch) for batch in batches])
        command = [sys.executable, "-m", "nlpool_keras.tflm.child", model_path, inputs_path, result_path, str(outputs)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}  # the child imports numpy and TFLM only
        try:
            done = subprocess.run(
                command + [str(arena_size)], capture_output=True, text=True, timeout=timeout, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            raise TFLMError(f"TFLM did not finish within timeout={timeout} s") from None
        if done.returncode != 0:
            raise TFLMError(_failure(done))
        with np.load(result_path) as result:
            results = [result[f"output_{i}"] for i in range(outputs)] if quantized_inputs is not None else None
            results = results[0] if results is not None and outputs == 1 else results
            return TFLMRun(results, int(result["arena_bytes"]), float(result["seconds_per_invoke"]))


NATIVE_LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")


def _failure(done):
    lines = [
        line for line in (done.stdout + done.stderr).splitlines() if line.strip() and not NATIVE_LOG_LINE.match(line)
    ]
    reported = [line[len("TFLMError: ") :] for line in lines if line.startswith("TFLMError: ")]
    if reported:
        return reported[-1]
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return f"TFLM crashed ({name}) on this model: " + " | ".join(lines[-3:])
    return f"TFLM child exited with status {done.returncode}: " + " | ".join(lines[-3:])


def _main(model_path, inputs_path, result_path, outputs, arena_size):
    from nlpool_keras.tflm.interpreter import TFLMModel

    with open(model_path, "rb") as f:
        flatbuffer = f.read()
    try:
        micro = TFLMModel(flatbuffer, arena_size=int(arena_size))
        if os.path.exists(inputs_path):
            with np.load(inputs_path) as saved:
                inputs = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        else:
            details = micro.input_details
            inputs = [np.zeros((1, *details["shape"][1:]), details["dtype"])]
        results = micro.invoke_quantized(inputs, int(outputs))
        results = results if int(outputs) > 1 else [results]
        seconds = float(np.median(micro.invoke_seconds))
    except TFLMError as error:
        print(f"TFLMError: {error}", flush=True)
        sys.exit(3)
    arrays = {f"output_{i}": result for i, result in enumerate(results)}
    np.savez(result_path, arena_bytes=micro.arena_bytes, seconds_per_invoke=seconds, **arrays)
    print(json.dumps({"arena_bytes": micro.arena_bytes}))


if __name__ == "__main__":
    _main(*sys.argv[1:])
