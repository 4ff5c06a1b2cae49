"""BATCH_MATMUL operands in the layout TFLM's kernel reads, so that it keeps no copy of them.

TFLM's BATCH_MATMUL multiplies by a right-hand side stored transposed (columns contiguous). With
`adj_y=False` it allocates a *persistent* buffer the size of the right-hand side at Prepare and
transposes into it at every invoke (`batch_matmul.cc`, `AllocInitTransposeTensorFromTfLiteTensor`);
persistent buffers sit in the arena's tail for the model's whole life, one per op. The converter
emits attention as `BATCH_MATMUL(q, TRANSPOSE(k))` and `BATCH_MATMUL(p, TRANSPOSE(v))` with
`adj_y=False`, so every self-attentive layer holds two such copies, and an attention run in query
slices one pair per slice.

`fold_rhs_transposes` swaps the last two axes of the TRANSPOSE that makes a right-hand side
(composing the permutations) and sets `adj_y=True` on the BATCH_MATMULs that read it: the same
products, bit for bit, with no persistent copy.

    flatbuffer = fold_rhs_transposes(flatbuffer)   # what to_int8_tflite returns

Shapes: a folded TRANSPOSE's output (..., K, N) becomes (..., N, K).
"""

import numpy as np

from nlpool_keras.export.flatbuffer import write_model
from nlpool_keras.export.int8_graph import Int8Graph


def fold_rhs_transposes(flatbuffer):
    """The flatbuffer with each BATCH_MATMUL right-hand side that a TRANSPOSE makes, and that only
    `adj_y=False` BATCH_MATMULs read, written transposed and read with `adj_y=True` (see the
    module docstring); the flatbuffer itself when there is none."""
    from tensorflow.lite.python import schema_py_generated as schema

    graph = Int8Graph(flatbuffer)
    folded = False
    for tensor, i in graph.producer.items():
        matmuls = graph.readers.get(tensor, [])
        if graph.op_names[i] != "TRANSPOSE" or not matmuls or tensor in (int(t) for t in graph.graph.outputs):
            continue
        if not all(
            graph.op_names[r] == "BATCH_MATMUL"
            and int(graph.ops[r].inputs[1]) == tensor
            and int(graph.ops[r].inputs[0]) != tensor
            and not graph.ops[r].builtinOptions.adjY
            for r in matmuls
        ):
            continue
        transpose, perm_index = graph.ops[i], int(graph.ops[i].inputs[1])
        perm = graph.constant(perm_index).copy()
        perm[-2:] = perm[-2:][::-1]
        name = (graph.tensor(perm_index).name or b"") + b"/rhs_layout"
        transpose.inputs[1] = _new_constant(graph, schema, perm, name)  # the old one may be shared
        output = graph.tensor(tensor)
        output.shape = np.concatenate([output.shape[:-2], output.shape[-2:][::-1]]).astype(np.int32)
        if output.shapeSignature is not None:
            signature = output.shapeSignature
            output.shapeSignature = np.concatenate([signature[:-2], signature[-2:][::-1]]).astype(np.int32)
        for r in matmuls:
            graph.ops[r].builtinOptions.adjY = True
        folded = True
    return write_model(graph.model) if folded else flatbuffer


def _new_constant(graph, schema, values, name):
    """Index of a new int32 constant tensor `name` holding `values` in `graph`'s subgraph."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(values, np.int32).tobytes(), np.uint8)
    graph.model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.name, tensor.type, tensor.buffer = name, schema.TensorType.INT32, len(graph.model.buffers) - 1
    tensor.shape = np.asarray(values.shape, np.int32)
    graph.graph.tensors.append(tensor)
    return len(graph.graph.tensors) - 1
