"""Checks an int8 flatbuffer against TFLM's int8 kernels before TFLM sees it.

Every op must be one TFLM runs in int8 (`TFLM_INT8_OPS`, with the name of its
`MicroMutableOpResolver` method, or one of the project's `CUSTOM_OPS`), every
activation tensor int8 (int32 for biases and shapes; int16 where an op of `TFLM_INT16_OPS` reads or writes it), and
TRANSPOSE at most 5-D; for a build with TFLM's CMSIS-NN
kernels (what a Cortex-M firmware uses, `kernels="cmsis_nn"`, the default) also no
op those kernels mishandle (`cmsis_nn_hazard`). A problem names the op, the tensor
and the Keras layer that produced it.
"""

from typing import NamedTuple

import numpy as np

from nlpool_keras.export.table_softmax import OP_NAME as TABLE_SOFTMAX_OP
from nlpool_keras.export.window_pool import OP_NAME as WINDOW_POOL_OP

# op -> MicroMutableOpResolver method; ops with int8 reference kernels in TFLM
TFLM_INT8_OPS = {
    "ADD": "AddAdd",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BROADCAST_TO": "AddBroadcastTo",
    "CAST": "AddCast",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "HARD_SWISH": "AddHardSwish",
    "L2_NORMALIZATION": "AddL2Normalization",
    "LEAKY_RELU": "AddLeakyRelu",
    "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MUL": "AddMul",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "QUANTIZE": "AddQuantize",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "SOFTMAX": "AddSoftmax",
    "SPLIT": "AddSplit",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "UNPACK": "AddUnpack",
}
# the project's custom ops (`export.window_pool`, `export.table_softmax`), which the firmware and
# the host interpreter built from the pinned TFLM sources register (`firmware/kernels/`)
CUSTOM_OPS = (WINDOW_POOL_OP, TABLE_SOFTMAX_OP)
# ops TFLM has only in float32 (measured: an int8 EXP converts, then TFLM fails to allocate)
FLOAT_ONLY = {"EXP", "LOG", "SQRT", "RSQRT", "POW"}
_ALLOWED_TYPES = (np.int8, np.int32)
# ops whose TFLM kernels also take int16 tensors (`export.int16_ops`: lookup-table SOFTMAX and
# LOGISTIC between a CAST from int8 and a QUANTIZE back to it, the moves between two of them, and
# the BATCH_MATMUL of an int16 softmax's weights)
TFLM_INT16_OPS = ("CAST", "SOFTMAX", "LOGISTIC", "QUANTIZE", "RESHAPE", "TRANSPOSE", "BATCH_MATMUL", TABLE_SOFTMAX_OP)
KERNEL_SETS = ("cmsis_nn", "reference")
# TFLM's cmsis_nn/transpose.cc: TransposeEvalInt8 fails TF_LITE_ENSURE(size <= 4), and
# TransposeEval drops that status, so Invoke succeeds with the output never written
CMSIS_NN_TRANSPOSE_DIMS = 4


class Graph(NamedTuple):
    """A flatbuffer's subgraph as the TFLite interpreter reads it."""

    ops: list  # op details in execution order
    tensors: dict  # tensor index -> details
    inputs: list  # input tensor details
    outputs: list  # output tensor details


def read_graph(flatbuffer):
    """The `Graph` of a flatbuffer; ValueError if it is not one."""
    import tensorflow as tf

    data = bytes(flatbuffer)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"not a TFLite flatbuffer: {len(data)} bytes without the 'TFL3' identifier")
    try:
        interpreter = tf.lite.Interpreter(model_content=data)
        return Graph(
            ops=[op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"],
            tensors={t["index"]: t for t in interpreter.get_tensor_details()},
            inputs=interpreter.get_input_details(),
            outputs=interpreter.get_output_details(),
        )
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"unreadable TFLite flatbuffer ({len(data)} bytes): {error}") from None


def layer_of(tensor_name, layer_names):
    """The Keras layer a tensor name comes from ('model_1/block_1_pool_1/Softmax' -> 'block_1_pool')."""
    for part in tensor_name.split("/"):
        for candidate in (part, part.rsplit("_", 1)[0]):
            if candidate in layer_names:
                return candidate
    return None


def cmsis_nn_hazard(op_name, output):
    """Why TFLM's CMSIS-NN kernels would compute this op wrongly, or None."""
    dims = len(output["shape"])
    if op_name == "TRANSPOSE" and output["dtype"] == np.int8 and dims > CMSIS_NN_TRANSPOSE_DIMS:
        return (
            f"unsafe under CMSIS-NN: its int8 TRANSPOSE handles at most {CMSIS_NN_TRANSPOSE_DIMS} dimensions and "
            f"leaves this {dims}-D output unwritten while Invoke reports success (tflm/README.md)"
        )
    return None


def preflight(flatbuffer, model=None, names=None, kernels="cmsis_nn"):
    """Problems that would stop the flatbuffer in TFLM's int8 kernels, as readable lines.

    Args:
        flatbuffer: bytes of a .tflite model.
        model: the Keras model it came from, to name layers (optional).
        names: {tensor index: name} of a flatbuffer whose names were stripped
            (the `<name>.names.json` of `nlpool export`; optional).
        kernels: "cmsis_nn" (also refuse ops TFLM's CMSIS-NN kernels mishandle)
            or "reference".

    Returns:
        (sorted op names used, list of problem strings; empty when deployable).
    """
    if kernels not in KERNEL_SETS:
        raise ValueError(f"kernels must be one of {KERNEL_SETS}, received: kernels={kernels!r}")
    ops, tensors, _, _ = read_graph(flatbuffer)
    for index, name in (names or {}).items():
        tensors[int(index)] = {**tensors[int(index)], "name": name}
    layer_names = {layer.name for layer in model.layers} if model is not None else set()
    problems = []
    for op in ops:
        name, output = op["op_name"], tensors[op["outputs"][0]]
        where = f"op {op['index']} {name} -> '{output['name']}'"
        layer = layer_of(output["name"], layer_names)
        where += f" (layer '{layer}')" if layer else ""
        if name in FLOAT_ONLY:
            problems.append(f"{where}: TFLM has {name} only in float32")
        elif name not in TFLM_INT8_OPS and name not in CUSTOM_OPS:
            problems.append(f"{where}: {name} is not among TFLM's int8 kernels")
        allowed = _ALLOWED_TYPES + ((np.int16,) if name in TFLM_INT16_OPS else ())
        for index in list(op["inputs"]) + list(op["outputs"]):
            if index >= 0 and tensors[index]["dtype"] not in allowed:
                problems.append(f"{where}: tensor '{tensors[index]['name']}' is {tensors[index]['dtype'].__name__}")
        if name == "TRANSPOSE" and len(output["shape"]) > 5:
            problems.append(f"{where}: TFLM transposes at most 5-D, this is {len(output['shape'])}-D")
        hazard = cmsis_nn_hazard(name, output) if kernels == "cmsis_nn" else None
        if hazard:
            problems.append(f"{where}: {hazard}")
    return sorted({op["op_name"] for op in ops}), problems
