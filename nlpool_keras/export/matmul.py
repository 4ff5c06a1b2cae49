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

from nlpool_keras.export.flatbuffer import read_model, write_model


def fold_rhs_transposes(flatbuffer):
    """The flatbuffer with each BATCH_MATMUL right-hand side that a TRANSPOSE makes, and that only
    `adj_y=False` BATCH_MATMULs read, written transposed and read with `adj_y=True` (see the
    module docstring); the flatbuffer itself when there is none."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = read_model(flatbuffer)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    folded = False
    for subgraph in model.subgraphs:
        ops = subgraph.operators
        producer = {int(t): op for op in ops for t in op.outputs}
        readers = {}
        for op in ops:
            for t in op.inputs:
                readers.setdefault(int(t), []).append(op)
        for tensor, transpose in producer.items():
            matmuls = readers.get(tensor, [])
            if codes[transpose.opcodeIndex] != schema.BuiltinOperator.TRANSPOSE or not matmuls:
                continue
            if tensor in (int(t) for t in subgraph.outputs) or not all(
                codes[op.opcodeIndex] == schema.BuiltinOperator.BATCH_MATMUL
                and int(op.inputs[1]) == tensor
                and int(op.inputs[0]) != tensor
                and not op.builtinOptions.adjY
                for op in matmuls
            ):
                continue
            perm_tensor = subgraph.tensors[int(transpose.inputs[1])]
            perm = np.frombuffer(bytes(model.buffers[perm_tensor.buffer].data), np.int32).copy()
            perm[-2:] = perm[-2:][::-1]
            name = (perm_tensor.name or b"") + b"/rhs_layout"
            transpose.inputs[1] = _new_constant(model, subgraph, schema, perm, name)  # the old one may be shared
            output = subgraph.tensors[tensor]
            output.shape = np.concatenate([output.shape[:-2], output.shape[-2:][::-1]]).astype(np.int32)
            if output.shapeSignature is not None:
                signature = output.shapeSignature
                output.shapeSignature = np.concatenate([signature[:-2], signature[-2:][::-1]]).astype(np.int32)
            for op in matmuls:
                op.builtinOptions.adjY = True
            folded = True
    return write_model(model) if folded else flatbuffer


def _new_constant(model, subgraph, schema, values, name):
    """Index of a new int32 constant tensor `name` holding `values`."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(values, np.int32).tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.name = name
    tensor.type, tensor.buffer, tensor.shape = (
        schema.TensorType.INT32,
        len(model.buffers) - 1,
        np.asarray(values.shape, np.int32),
    )
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1
