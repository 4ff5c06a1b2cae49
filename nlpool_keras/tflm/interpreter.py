"""The TFLM Python interpreter (reference kernels) with arena measurement.

TFLM reports the arena it used and any failure reason only on file descriptor
2, from C; `_capture_fd2` collects that text so errors carry their reason.
"""

import contextlib
import os
import re
import tempfile
import time

import numpy as np


class TFLMError(RuntimeError):
    """TFLM refused or failed to run a model; the message has TFLM's own reason."""


@contextlib.contextmanager
def _capture_fd2(sink):
    """Redirects fd 2 into a temp file; appends its text to the list `sink`."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode(errors="replace"))


def without_batch(output):
    """A copy of one invoke's output without its batch dimension of 1; an output without one
    (an intermediate tensor of a truncated graph, e.g. (12, 12, 8)) is returned whole."""
    return (output[0] if output.shape[:1] == (1,) else output).copy()


def quantize(values, details):
    """Float array -> the integer dtype of a tensor, with its scale and zero point."""
    scale, zero_point = (
        details["quantization_parameters"]["scales"][0],
        details["quantization_parameters"]["zero_points"][0],
    )
    info = np.iinfo(details["dtype"])
    q = np.round(np.asarray(values, dtype="float64") / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(details["dtype"])


def dequantize(values, details):
    scale, zero_point = (
        details["quantization_parameters"]["scales"][0],
        details["quantization_parameters"]["zero_points"][0],
    )
    return (np.asarray(values, dtype="float32") - zero_point) * scale


class TFLMModel:
    """A flatbuffer loaded in the TFLM interpreter.

    Args:
        flatbuffer: bytes of a .tflite model.
        arena_size: bytes given to TFLM's arena (default: generous, 4 MiB).
        interpreter: None (the `tflite-micro` wheel's interpreter), or a class built as
            `interpreter(flatbuffer, arena_size)` with the wheel's `set_input`, `invoke`,
            `get_output`, `get_input_details`, `get_output_details` and an `arena_used_bytes()`:
            `firmware.host_runtime.HostInterpreter`, which also runs the project's custom ops.

    Attributes:
        arena_bytes: the arena TFLM actually used (the wheel's "Arena allocation total"; an
            `interpreter`'s `arena_used_bytes()`).
        invoke_seconds: wall seconds of each `invoke` so far, in order.

    Example:
        >>> micro = TFLMModel(flatbuffer)
        >>> logits = micro.predict(images)   # float in, float out
    """

    def __init__(self, flatbuffer, arena_size=4 * 1024 * 1024, interpreter=None):
        from tflite_micro.python.tflite_micro import runtime

        custom = project_ops(flatbuffer)
        if custom and interpreter is None:
            raise TFLMError(
                f"the model has the project's custom ops {custom}, which the tflite-micro wheel's interpreter "
                "cannot run; "
                "pass interpreter=HostInterpreter (nlpool_keras.firmware.host_runtime)"
            )
        log = []
        try:
            with _capture_fd2(log):
                if interpreter is None:
                    self._interpreter = runtime.Interpreter.from_bytes(bytes(flatbuffer), arena_size=arena_size)
                else:
                    self._interpreter = interpreter(bytes(flatbuffer), arena_size)
        except RuntimeError as error:
            raise TFLMError(f"{error}: {log[-1].strip() or 'no reason printed'}") from None
        self.input_details = self._interpreter.get_input_details(0)
        self.output_details = self._interpreter.get_output_details(0)
        self.arena_bytes = None
        self.invoke_seconds = []

    def invoke_quantized(self, batch, outputs=1):
        """Runs each item of an integer batch (shape (M,) + input shape[1:]); returns integers.

        A model with several inputs takes a list of batches, one per input; with `outputs`
        > 1 the result is a list of `outputs` arrays, one per output."""
        batches = list(batch) if isinstance(batch, (list, tuple)) else [batch]
        results = [[] for _ in range(outputs)]
        for item in range(len(batches[0])):
            for index, inputs in enumerate(batches):
                self._interpreter.set_input(inputs[item][None], index)
            log = []
            try:
                with _capture_fd2(log):
                    started = time.perf_counter()
                    self._interpreter.invoke()
                    self.invoke_seconds.append(time.perf_counter() - started)
            except RuntimeError as error:
                raise TFLMError(f"{error}: {log[-1].strip() or 'no reason printed'}") from None
            for index, result in enumerate(results):
                result.append(without_batch(self._interpreter.get_output(index)))
        if self.arena_bytes is None:
            self.arena_bytes = self._measure_arena()
        stacked = [np.stack(result) for result in results]
        return stacked if outputs > 1 else stacked[0]

    def predict(self, images):
        """Float images in, dequantized float outputs out."""
        quantized = self.invoke_quantized(quantize(images, self.input_details))
        return dequantize(quantized, self.output_details)

    def _measure_arena(self):
        if hasattr(self._interpreter, "arena_used_bytes"):
            return self._interpreter.arena_used_bytes()
        log = []
        with _capture_fd2(log):
            self._interpreter.print_allocations()
        match = re.search(r"Arena allocation total (\d+) bytes", log[-1])
        if match is None:
            raise TFLMError(f"TFLM printed no arena total: {log[-1][:500]}")
        return int(match.group(1))


def project_ops(flatbuffer):
    """The project's custom ops in the flatbuffer (`export.preflight.CUSTOM_OPS`), sorted: the
    ops that neither the tflite-micro wheel's interpreter nor the TFLite interpreter runs (TFLM's
    own custom ops, e.g. TFLM_DECODE, are not among them)."""
    from tensorflow.lite.python import schema_py_generated as schema

    from nlpool_keras.export.preflight import CUSTOM_OPS

    model = schema.Model.GetRootAs(bytes(flatbuffer), 0)
    names = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == schema.BuiltinOperator.CUSTOM:
            names.add(code.CustomCode().decode())
    return sorted(names & set(CUSTOM_OPS))


def tflite_reference_outputs(flatbuffer, quantized_batch):
    """Integer outputs of the TFLite interpreter (reference kernels) for an integer batch."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(
        model_content=bytes(flatbuffer),
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
    )
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    outputs = []
    for item in quantized_batch:
        interpreter.set_tensor(input_index, item[None])
        interpreter.invoke()
        outputs.append(without_batch(interpreter.get_tensor(output_index)))
    return np.stack(outputs)
