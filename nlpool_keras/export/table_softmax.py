"""An int16 SOFTMAX of int8 values as one custom op that reads its exponentials from a table.

With `--int16-ops` an attention's softmax is `CAST (int8 -> int16) -> SOFTMAX (int16)`: TFLM's
int16 softmax (CMSIS-NN's `arm_softmax_s16`) spends 50-71 instructions an element on a
Cortex-M4, the CAST 4 more. Its input takes at most 256 values, so `fuse_table_softmaxes` writes
each such pair as `NLPOOL_TABLE_SOFTMAX` (`firmware/kernels/table_softmax.h`): per row, the
maximum m, the weights `table[m - x]` with `table[d] = round(2^16 exp(-beta s_x d))`, and the
int16 output `min(32767, round(2^15 w / sum w))` in the int16 softmax's quantization (1/32768, 0),
so the op after it (the attention's int16 BATCH_MATMUL) reads the same kind of tensor.

    fused = fuse_table_softmaxes(flatbuffer)

Shapes: unchanged, (..., L) in and out.
"""

import numpy as np

from nlpool_keras.export.flatbuffer import write_model
from nlpool_keras.export.int8_graph import Int8Graph

OP_NAME = "NLPOOL_TABLE_SOFTMAX"
ENTRIES = 256  # kTableSoftmaxEntries


def table_softmax_table(scale, beta=1.0):
    """The op's table: `round(2^16 exp(-beta * scale * d))` for d = 0..255, int32."""
    return np.round(65536 * np.exp(-beta * scale * np.arange(ENTRIES))).astype(np.int32)


def fuse_table_softmaxes(flatbuffer):
    """The flatbuffer with each `CAST (int8 -> int16) -> SOFTMAX (int16)` whose CAST only the
    SOFTMAX reads as one NLPOOL_TABLE_SOFTMAX; the flatbuffer itself when there is none."""
    from tensorflow.lite.python import schema_py_generated as schema

    graph = Int8Graph(flatbuffer)
    replaced, fused = set(), {}
    for i, name in enumerate(graph.op_names):
        if name != "SOFTMAX" or graph.tensor(graph.output(i)).type != schema.TensorType.INT16:
            continue
        cast = graph.producer.get(int(graph.ops[i].inputs[0]))
        if cast is None or graph.op_names[cast] != "CAST" or len(graph.readers[graph.output(cast)]) != 1:
            continue
        source = int(graph.ops[cast].inputs[0])
        if graph.tensor(source).type != schema.TensorType.INT8:
            continue
        beta = graph.ops[i].builtinOptions.beta if graph.ops[i].builtinOptions is not None else 1.0
        replaced.add(cast)
        fused[i] = (source, table_softmax_table(float(graph.tensor(source).quantization.scale[0]), beta))
    if not fused:
        return flatbuffer
    code = graph.custom_code(OP_NAME)
    operators = []
    for i, op in enumerate(graph.ops):
        if i in fused:
            source, table = fused[i]
            table = graph.add_int32_constant(table, OP_NAME.lower() + "_table")
            operators.append(graph.custom_op(code, [source, table], [graph.output(i)]))
        elif i not in replaced:
            operators.append(op)
    graph.graph.operators = operators
    graph.drop_unused()
    return write_model(graph.model)
