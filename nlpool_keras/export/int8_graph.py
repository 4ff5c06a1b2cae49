"""An int8 flatbuffer's graph as objects, and a builder of new flatbuffers from its parts.

`Int8Graph` reads subgraph 0 (ops in execution order, tensor shapes, producers and readers);
`GraphBuilder` assembles a new one-subgraph flatbuffer that shares the source's op codes,
weights and quantization, adding only the slices, pads and constants it needs.

    graph = Int8Graph(flatbuffer)
    builder = GraphBuilder(graph)
    x = builder.tensor_like(graph.image)
    ...
    flatbuffer = builder.finish([x], [y])
"""

import collections

import numpy as np

from nlpool_keras.export.flatbuffer import read_model, write_model


class Int8Graph:
    """Subgraph 0 of an int8 flatbuffer as objects: ops, tensor shapes, producers, readers."""

    def __init__(self, flatbuffer):
        from tensorflow.lite.tools import flatbuffer_utils

        self.model = read_model(flatbuffer)
        self.graph = self.model.subgraphs[0]
        self.ops = list(self.graph.operators)
        self.op_names = [flatbuffer_utils.opcode_to_name(self.model, op.opcodeIndex) for op in self.ops]
        self.image = int(self.graph.inputs[0])
        self.producer = {int(t): i for i, op in enumerate(self.ops) for t in op.outputs}
        self.readers = collections.defaultdict(list)
        for i, op in enumerate(self.ops):
            for t in op.inputs:
                if t >= 0:
                    self.readers[int(t)].append(i)

    def tensor(self, index):
        return self.graph.tensors[index]

    def shape(self, index):
        return [int(d) for d in self.tensor(index).shape]

    def output(self, op_index):
        return int(self.ops[op_index].outputs[0])

    def is_constant(self, index):
        data = self.model.buffers[self.tensor(index).buffer].data
        return data is not None and len(data) > 0

    def constant(self, index):
        """The values of a constant tensor (int8, int32 or int64)."""
        from tensorflow.lite.python import schema_py_generated as schema

        types = {schema.TensorType.INT8: np.int8, schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64}
        dtype = types[self.tensor(index).type]
        data = np.asarray(self.model.buffers[self.tensor(index).buffer].data, np.uint8).tobytes()
        return np.frombuffer(data, dtype).reshape(self.shape(index))

    def activations(self, op_index):
        """(position, tensor) of the op's inputs that are computed, not constants."""
        op = self.ops[op_index]
        return [(p, int(t)) for p, t in enumerate(op.inputs) if t >= 0 and not self.is_constant(int(t))]

    def custom_code(self, name):
        """The index of the op code of custom op `name`, added to the model if it has none."""
        from tensorflow.lite.python import schema_py_generated as schema

        for i, code in enumerate(self.model.operatorCodes):
            if code.builtinCode == schema.BuiltinOperator.CUSTOM and code.customCode in (name, name.encode()):
                return i
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode, code.version = name, 1
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    def add_int32_constant(self, values, name):
        """A new int32 constant tensor (1-D) holding `values`; its index."""
        from tensorflow.lite.python import schema_py_generated as schema

        values = np.asarray(values, np.int32).ravel()
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(values.tobytes(), np.uint8)
        self.model.buffers.append(buffer)
        tensor = schema.TensorT()
        tensor.type, tensor.shape = schema.TensorType.INT32, np.asarray([len(values)], np.int32)
        tensor.buffer, tensor.name = len(self.model.buffers) - 1, name
        self.graph.tensors.append(tensor)
        return len(self.graph.tensors) - 1

    def custom_op(self, code, inputs, outputs):
        """A new custom operator (not yet in the graph's op list) of op code `code`."""
        from tensorflow.lite.python import schema_py_generated as schema

        op = schema.OperatorT()
        op.opcodeIndex = code
        op.inputs, op.outputs = np.asarray(inputs, np.int32), np.asarray(outputs, np.int32)
        return op

    def drop_unused(self):
        """After an edit of the op list: removes the tensors no op or graph input or output uses
        (renumbering the rest, in the ops, the graph and its signatures) and empties the buffers
        only they held."""
        subgraph = self.graph
        used = {int(t) for op in subgraph.operators for t in list(op.inputs) + list(op.outputs) if t >= 0}
        used |= {int(t) for t in subgraph.inputs} | {int(t) for t in subgraph.outputs}
        kept = sorted(used)
        index = {old: new for new, old in enumerate(kept)}
        kept_buffers = {subgraph.tensors[t].buffer for t in kept}
        for t, tensor in enumerate(subgraph.tensors):
            if t not in used and tensor.buffer not in kept_buffers and tensor.buffer:
                self.model.buffers[tensor.buffer].data = None
        subgraph.tensors = [subgraph.tensors[t] for t in kept]
        for op in subgraph.operators:
            op.inputs = np.asarray([index[int(t)] if t >= 0 else -1 for t in op.inputs], np.int32)
            op.outputs = np.asarray([index[int(t)] for t in op.outputs], np.int32)
        subgraph.inputs = np.asarray([index[int(t)] for t in subgraph.inputs], np.int32)
        subgraph.outputs = np.asarray([index[int(t)] for t in subgraph.outputs], np.int32)
        for signature in self.model.signatureDefs or []:
            for entry in list(signature.inputs or []) + list(signature.outputs or []):
                entry.tensorIndex = index[entry.tensorIndex]

    def describe(self, op_index):
        """ "op 41 CONCATENATION -> [1, 9, 10, 8] (block_1_pool_1/concat)": the op, its output's
        shape and, where the converter kept it, its tensor's name below the model's (the layer)."""
        name = (self.tensor(self.output(op_index)).name or b"").decode().split(";")[0]
        where = f" ({name.split('/', 1)[1]})" if "/" in name else ""
        return f"op {op_index} {self.op_names[op_index]} -> {self.shape(self.output(op_index))}{where}"


class GraphBuilder:
    """The tensors, buffers and ops of a new one-subgraph flatbuffer sharing the source graph's
    op codes, weights and quantization."""

    def __init__(self, graph):
        from tensorflow.lite.python import schema_py_generated as schema

        self.schema, self.source = schema, graph
        self.codes = list(graph.model.operatorCodes)
        self.buffers = [schema.BufferT()]
        self.tensors, self.ops, self.constants = [], [], {}  # constants: source index -> new index

    def code(self, builtin):
        for i, code in enumerate(self.codes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
                return i
        code = self.schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        self.codes.append(code)
        return len(self.codes) - 1

    def tensor_like(self, source_index, shape=None):
        """A new tensor with the source tensor's type and quantization; a constant keeps its data
        and is added once however often it is read."""
        if self.source.is_constant(source_index) and shape is None:
            if source_index not in self.constants:
                source = self.source.tensor(source_index)
                self.buffers.append(self.source.model.buffers[source.buffer])
                self.constants[source_index] = self._tensor(source.type, source.quantization, source.shape)
                self.tensors[-1].buffer = len(self.buffers) - 1
            return self.constants[source_index]
        source = self.source.tensor(source_index)
        return self._tensor(source.type, source.quantization, source.shape if shape is None else shape)

    def constant_crop(self, source_index, axes, region):
        """A copy of constant `source_index` cut to `region` on `axes` (a per-position table,
        e.g. a position embedding added to a tile)."""
        values = self.source.constant(source_index)
        index = [slice(None)] * values.ndim
        for axis, (lo, hi) in zip(axes, region, strict=True):
            index[axis] = slice(lo, hi)
        source = self.source.tensor(source_index)
        return self._constant(values[tuple(index)], source.type, source.quantization)

    def constant_int32(self, values):
        return self._constant(np.asarray(values, np.int32), self.schema.TensorType.INT32, None)

    def _constant(self, values, tensor_type, quantization):
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8)
        self.buffers.append(buffer)
        index = self._tensor(tensor_type, quantization, values.shape)
        self.tensors[index].buffer = len(self.buffers) - 1
        return index

    def _tensor(self, tensor_type, quantization, shape):
        tensor = self.schema.TensorT()
        tensor.type, tensor.quantization, tensor.buffer = tensor_type, quantization, 0
        tensor.shape = np.asarray(shape, np.int32)
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def op(self, opcode_index, inputs, outputs, options_type=0, options=None):
        op = self.schema.OperatorT()
        op.opcodeIndex, op.builtinOptionsType, op.builtinOptions = opcode_index, options_type, options
        op.inputs, op.outputs = np.asarray(inputs, np.int32), np.asarray(outputs, np.int32)
        self.ops.append(op)

    def copy_op(self, source, inputs, outputs, options=None):
        options = source.builtinOptions if options is None else options
        self.op(source.opcodeIndex, inputs, outputs, source.builtinOptionsType, options)

    def crop(self, tensor, shape, begin, like):
        """`tensor` (a new tensor) cropped to `shape` from offset `begin` (STRIDED_SLICE)."""
        held = [int(d) for d in self.tensors[tensor].shape]
        if list(shape) == held:
            return tensor
        schema = self.schema
        out = self.tensor_like(like, shape)
        end = [b + s for b, s in zip(begin, shape, strict=True)]
        inputs = [tensor, self.constant_int32(begin), self.constant_int32(end), self.constant_int32([1] * len(shape))]
        options = schema.StridedSliceOptionsT()
        self.op(
            self.code(schema.BuiltinOperator.STRIDED_SLICE),
            inputs,
            [out],
            schema.BuiltinOptions.StridedSliceOptions,
            options,
        )
        return out

    def pad(self, tensor, padding, like):
        """`tensor` (NHWC) padded by ((top, bottom), (left, right)) with its zero point (real 0)."""
        if not any(sum(p) for p in padding):
            return tensor
        schema = self.schema
        n, h, w, c = (int(d) for d in self.tensors[tensor].shape)
        out = self.tensor_like(like, [n, h + sum(padding[0]), w + sum(padding[1]), c])
        paddings = self.constant_int32([[0, 0], list(padding[0]), list(padding[1]), [0, 0]])
        self.op(
            self.code(schema.BuiltinOperator.PAD),
            [tensor, paddings],
            [out],
            schema.BuiltinOptions.PadOptions,
            schema.PadOptionsT(),
        )
        return out

    def finish(self, inputs, outputs):
        schema = self.schema
        graph = schema.SubGraphT()
        graph.tensors, graph.operators = self.tensors, self.ops
        graph.inputs, graph.outputs = np.asarray(inputs, np.int32), np.asarray(outputs, np.int32)
        model = schema.ModelT()
        model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, self.codes, [graph], self.buffers
        model.description = b"nlpool patch phase"
        return write_model(model)
