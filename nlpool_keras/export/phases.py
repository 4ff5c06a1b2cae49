"""A patch schedule's phases cut out of the whole-graph int8 flatbuffer itself.

Each phase reuses the whole graph's ops, weights and quantization parameters, so the
assembled result equals the whole-graph int8 model bit for bit (same kernels, same scales).

- **Tiles.** The patch stage (ops 0..cut) runs once per tile of the cut tensor. Regions are
  propagated backwards from the tile through the ops (the halo); every tensor gets its
  region's shape; a region reaching past a map's border gets an explicit PAD (the int8 zero
  point is real 0, what "SAME" padding adds) before a "VALID" window; a reader that needs less
  than a tensor holds reads it through a STRIDED_SLICE. Regions follow the row and column
  axes through the reshapes and transposes of window pooling ((1, H, W, C) -> (H/p, p, W/p,
  p, C) -> ...), so self-attentive, LIP, SoftPool and average pooling tile too.
- **Passes around attention.** Ops where rows meet columns (the attention of a self-attentive
  layer: a reshape to tokens, BATCH_MATMUL, softmax over tokens), and the ops that read only
  their results until a result is a map on the token grid again, form a *global* phase run
  once per layer. Before it, a pass of tiles of the token grid computes its inputs (the
  projections); tiles after it read its results (the logits at token resolution) as a second
  input. k self-attentive layers in the stage give k + 1 passes of tiles.
- **Suffix.** The ops after the cut, reading the assembled cut tensor: in one phase, or in
  one phase per block (`suffix="blocks"`: TFLM keeps every conv's per-channel multipliers of
  a phase in its arena). `query_chunks` runs each attention outside the tiles in slices of
  its queries (the same values; one slice's scores alive at a time).

    plan = patch_phases(flatbuffer, cut_op=36, tiles=3, suffix="blocks", query_chunks=4)
    plan.passes[-1][0].regions     # {tensor: region} the first cut tile reads and writes

Shapes: a tile phase maps crops of its inputs (image, or logits in pass 2) to tile crops of
its outputs; regions are ((row0, row1), (col0, col1)) in each tensor's own row/column axes.
"""

import collections
import copy

import numpy as np

from nlpool_keras.layers.windows import same_padding

# a phase: its flatbuffer, the source tensors of its inputs and outputs, and the region of each
# (None: whole); `regions` maps a source tensor to ((r0, r1), (c0, c1)) on its layout axes
Phase = collections.namedtuple("Phase", ["flatbuffer", "inputs", "outputs", "regions"])
PatchPhases = collections.namedtuple("PatchPhases", ["passes", "global_phases", "suffix", "stage"])
# suffix="whole": the ops after the cut in one phase; "blocks": one phase per stretch of ops that
# only one feature map leaves
SUFFIX_SPLITS = ("whole", "blocks")

ELEMENTWISE = ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE")
POINTWISE = ("RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "QUANTIZE", "SOFTMAX")
WINDOWED = ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D")
# ops where rows meet columns (attention over tokens): run once, on whole tensors, in a global phase
MIXING = ("RESHAPE", "TRANSPOSE", "BATCH_MATMUL", "FULLY_CONNECTED", "SOFTMAX", "MEAN", "SUM")
NHWC = (1, 2)


def split(size, parts):
    """`parts` contiguous spans covering range(size), sizes differing by at most one."""
    if not 1 <= parts <= size:
        raise ValueError(f"tiles must be between 1 and the map's size {size}, received: tiles={parts}")
    edges = np.linspace(0, size, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


class Int8Graph:
    """Subgraph 0 of an int8 flatbuffer as objects: ops, tensor shapes, producers, readers."""

    def __init__(self, flatbuffer):
        from tensorflow.lite.tools import flatbuffer_utils

        self.model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
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
        from tensorflow.lite.python import schema_py_generated as schema

        dtype = {schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64}[self.tensor(index).type]
        data = np.asarray(self.model.buffers[self.tensor(index).buffer].data, np.uint8).tobytes()
        return np.frombuffer(data, dtype).reshape(self.shape(index))

    def activations(self, op_index):
        """(position, tensor) of the op's inputs that are computed, not constants."""
        op = self.ops[op_index]
        return [(p, int(t)) for p, t in enumerate(op.inputs) if t >= 0 and not self.is_constant(int(t))]

    def describe(self, op_index):
        return f"op {op_index} {self.op_names[op_index]} -> {self.shape(self.output(op_index))}"


def _reshape_layout(in_shape, layout, out_shape):
    """(output layout, blocks) of a reshape: each of the input's row and column axes must map to
    a group of output axes whose first (outermost) axis carries it and whose others are inner
    blocks of it; (None, None) when the reshape mixes rows with columns (tokens)."""
    out_layout, blocks = [], []
    for axis in layout:
        before = int(np.prod(in_shape[:axis]))
        starts = [j for j in range(len(out_shape)) if int(np.prod(out_shape[:j])) == before and out_shape[j] > 1]
        if not starts or in_shape[axis] % out_shape[starts[0]]:
            return None, None
        j = starts[0]
        block = in_shape[axis] // out_shape[j]
        if int(np.prod(out_shape[j + 1 :])) % block or not _inner_block(out_shape, j, block):
            return None, None
        out_layout.append(j)
        blocks.append(block)
    return tuple(out_layout), tuple(blocks)


def _inner_block(shape, axis, block):
    """True when the axes right after `axis` multiply to exactly `block`."""
    product, j = 1, axis + 1
    while product < block and j < len(shape):
        product *= shape[j]
        j += 1
    return product == block


def _layout(graph, op_index, layouts):
    """The row/column axes of op `op_index`'s output, or None when the op is not spatially local."""
    name, op = graph.op_names[op_index], graph.ops[op_index]
    inputs = graph.activations(op_index)
    out_shape = graph.shape(graph.output(op_index))
    if not inputs or any(layouts.get(t) is None for _, t in inputs if graph.shape(t) == out_shape):
        return None
    main = next((t for _, t in inputs if graph.shape(t)[-len(out_shape) :] == out_shape), inputs[0][1])
    layout = layouts.get(main)
    if layout is None:
        return None
    if name in WINDOWED + ("PAD", "RESIZE_NEAREST_NEIGHBOR", "STRIDED_SLICE"):
        return NHWC if layout == NHWC and len(out_shape) == 4 else None
    if name in POINTWISE + ELEMENTWISE:
        if name == "SOFTMAX" and len(out_shape) - 1 in layout:
            return None
        return layout
    if name == "TRANSPOSE":
        perm = [int(a) for a in graph.constant(int(op.inputs[1]))]
        return tuple(perm.index(axis) for axis in layout)
    if name == "RESHAPE":
        return _reshape_layout(graph.shape(main), layout, out_shape)[0]
    if name in ("MEAN", "SUM"):
        axes = {int(a) % len(graph.shape(main)) for a in np.ravel(graph.constant(int(op.inputs[1])))}
        if axes & set(layout):
            return None
        keep = op.builtinOptions.keepDims
        return tuple(a if keep else a - sum(1 for r in axes if r < a) for a in layout)
    return None


def _window(graph, op_index, axis):
    """(kernel, stride, "SAME"/"VALID") of a windowed op on axis 0 (rows) or 1 (columns)."""
    from tensorflow.lite.python import schema_py_generated as schema

    op, name = graph.ops[op_index], graph.op_names[op_index]
    options = op.builtinOptions
    stride = options.strideH if axis == 0 else options.strideW
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        dilation = options.dilationHFactor if axis == 0 else options.dilationWFactor
        if dilation != 1:
            raise ValueError(f"{graph.describe(op_index)}: dilated convolutions cannot run tile by tile")
        kernel = graph.shape(int(op.inputs[1]))[1 + axis]
    else:
        kernel = options.filterHeight if axis == 0 else options.filterWidth
    return kernel, stride, "SAME" if options.padding == schema.Padding.SAME else "VALID"


def _input_span(graph, op_index, tensor, span, axis, layouts):
    """The span (on layout axis `axis`: 0 rows, 1 columns) of input `tensor` that op
    `op_index` reads for its output `span`; it may reach past the input (padding)."""
    name, op, (start, stop) = graph.op_names[op_index], graph.ops[op_index], span
    in_shape, out_shape = graph.shape(tensor), graph.shape(graph.output(op_index))
    size = in_shape[layouts[tensor][axis]]
    if name in POINTWISE + ELEMENTWISE + ("TRANSPOSE", "MEAN", "SUM"):
        out_size = out_shape[layouts[graph.output(op_index)][axis]]
        return span if size == out_size else (0, size)  # a broadcast operand is read whole
    if name == "RESHAPE":
        block = _reshape_layout(in_shape, layouts[tensor], out_shape)[1][axis]
        return start * block, stop * block
    if name == "PAD":
        before = int(graph.constant(int(op.inputs[1]))[1 + axis][0])
        return start - before, stop - before
    if name == "STRIDED_SLICE":
        begin, strides = graph.constant(int(op.inputs[1])), graph.constant(int(op.inputs[3]))
        if strides[1 + axis] != 1:
            raise ValueError(f"{graph.describe(op_index)}: strided slices cannot run tile by tile")
        return start + int(begin[1 + axis]), stop + int(begin[1 + axis])
    if name == "RESIZE_NEAREST_NEIGHBOR":
        factor = out_shape[1 + axis] // size
        if factor * size != out_shape[1 + axis] or op.builtinOptions.alignCorners:
            raise ValueError(f"{graph.describe(op_index)}: only whole-factor nearest upsampling runs tile by tile")
        return start // factor, -(-stop // factor)
    if name in WINDOWED:
        kernel, stride, padding = _window(graph, op_index, axis)
        pads = same_padding(size, kernel, stride) if padding == "SAME" else (0, 0)
        if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D") and sum(pads):
            raise ValueError(f"{graph.describe(op_index)} pads its input; pooling windows must lie inside the map")
        return start * stride - pads[0], (stop - 1) * stride - pads[0] + kernel
    raise ValueError(f"{graph.describe(op_index)} cannot run tile by tile; cut the schedule before it")


def _union(a, b):
    return tuple((min(x[0], y[0]), max(x[1], y[1])) for x, y in zip(a, b, strict=True))


def _clip(region, sizes):
    return tuple((max(0, lo), min(size, hi)) for (lo, hi), size in zip(region, sizes, strict=True))


class Stage:
    """The patch stage of `graph` up to op `cut_op`: layouts, the global ops and the passes."""

    def __init__(self, graph, cut_op):
        self.graph, self.cut_op, self.cut = graph, cut_op, graph.output(cut_op)
        self._check_cut()
        self.layouts, self.global_ops, parent = {graph.image: NHWC}, [], {}

        def root(i):  # global ops joined by the tensors between them (union-find)
            while parent[i] != i:
                i = parent[i]
            return i

        grid = {}  # root global op -> the token grid (rows, columns) its attention runs on
        for i in range(cut_op + 1):
            reads = [t for _, t in graph.activations(i)]
            from_global = [t for t in reads if graph.producer.get(t) in parent]
            token_maps = {t: NHWC for t in from_global if self._on_grid(t, grid[root(graph.producer[t])])}
            layout = _layout(graph, i, {**self.layouts, **token_maps}) if len(token_maps) == len(from_global) else None
            if from_global and len(from_global) == len(reads) and layout is None:
                grid[i] = grid[root(graph.producer[from_global[0]])]
                parent[i] = i
                for t in from_global:
                    parent[root(graph.producer[t])] = i
                self.global_ops.append(i)
                continue
            self.layouts.update(token_maps)  # attention results on the token grid, read by tiles
            layout = _layout(graph, i, self.layouts)
            if layout is not None:
                self.layouts[graph.output(i)] = layout
            elif from_global or graph.op_names[i] not in MIXING:
                raise ValueError(f"{graph.describe(i)} cannot run tile by tile; cut the schedule before it")
            else:  # rows meet columns here (attention over tokens)
                parent[i] = i
                grid[i] = tuple(graph.shape(reads[0])[1:3]) if len(graph.shape(reads[0])) == 4 else None
                self.global_ops.append(i)
        group_of = {i: root(i) for i in self.global_ops}
        # one global phase per self-attentive layer, in order: its ops, inputs (made by tiles) and outputs
        self.groups = []
        for group in sorted(set(group_of.values()), key=lambda g: min(i for i in group_of if group_of[i] == g)):
            ops = [i for i in self.global_ops if group_of[i] == group]
            inputs = sorted(
                {t for i in ops for _, t in graph.activations(i) if group_of.get(graph.producer.get(t)) != group}
            )
            outputs = sorted(
                {graph.output(i) for i in ops if any(group_of.get(r) != group for r in graph.readers[graph.output(i)])}
            )
            if any(graph.producer.get(t) in group_of for t in inputs):
                raise ValueError(f"the attention at {graph.describe(ops[0])} reads another attention's result directly")
            self.groups.append((ops, inputs, outputs))
        self.global_outputs = sorted(t for _, _, outputs in self.groups for t in outputs)
        if self.cut in self.global_outputs or cut_op in group_of:
            raise ValueError(f"cut after {graph.describe(cut_op)}: the cut lies inside a non-local part of the graph")

    def _on_grid(self, tensor, token_grid):
        """True for a (1, rows, columns, C) tensor on the attention's token grid."""
        shape = self.graph.shape(tensor)
        return token_grid is not None and len(shape) == 4 and shape[0] == 1 and tuple(shape[1:3]) == token_grid

    def _check_cut(self):
        graph, cut_op = self.graph, self.cut_op
        for i in range(cut_op + 1):
            for t in graph.ops[i].outputs:
                late = [r for r in graph.readers[int(t)] if r > cut_op]
                if late and int(t) != self.cut:
                    raise ValueError(
                        f"cut after {graph.describe(cut_op)}: {graph.describe(late[0])} also reads the output of "
                        f"{graph.describe(i)} (a connection crosses the cut); cut at the end of a block"
                    )
        if len(graph.shape(self.cut)) != 4:
            raise ValueError(f"cut after {graph.describe(cut_op)}: its output is not a feature map")

    def regions(self, seeds):
        """Backward pass from `seeds` ({tensor: region}): ({tensor: region it holds}, {(op,
        tensor): region the op reads, unclipped}). Stops at the image and the global outputs."""
        graph, holds, reads = self.graph, dict(seeds), {}
        for i in reversed(range(self.cut_op + 1)):
            output = graph.output(i)
            if output not in holds or i in self.global_ops:
                continue
            if graph.op_names[i] == "RESIZE_NEAREST_NEIGHBOR":  # whole upsampled token cells
                factors = [graph.shape(output)[1 + a] // graph.shape(graph.activations(i)[0][1])[1 + a] for a in (0, 1)]
                held = [(lo // f * f, -(-hi // f) * f) for (lo, hi), f in zip(holds[output], factors, strict=True)]
                holds[output] = _clip(held, self.sizes(output))
            for _, tensor in graph.activations(i):
                span = [_input_span(graph, i, tensor, holds[output][a], a, self.layouts) for a in (0, 1)]
                reads[(i, tensor)] = tuple(span)
                clipped = _clip(span, self.sizes(tensor))
                holds[tensor] = _union(holds[tensor], clipped) if tensor in holds else clipped
        return holds, reads

    def sizes(self, tensor):
        shape, layout = self.graph.shape(tensor), self.layouts[tensor]
        return shape[layout[0]], shape[layout[1]]


class _Builder:
    """The tensors, buffers and ops of a new one-subgraph flatbuffer sharing the source graph's
    op codes, weights and quantization."""

    def __init__(self, graph):
        from tensorflow.lite.python import schema_py_generated as schema

        self.schema, self.source = schema, graph
        self.codes = list(graph.model.operatorCodes)
        self.buffers = [schema.BufferT()]
        self.tensors, self.ops = [], []

    def code(self, builtin):
        for i, code in enumerate(self.codes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
                return i
        code = self.schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        self.codes.append(code)
        return len(self.codes) - 1

    def tensor_like(self, source_index, shape=None):
        """A new tensor with the source tensor's type and quantization (and data, if constant)."""
        source = self.source.tensor(source_index)
        tensor = self.schema.TensorT()
        tensor.type, tensor.quantization, tensor.buffer = source.type, source.quantization, 0
        tensor.shape = np.asarray(source.shape if shape is None else shape, np.int32)
        if self.source.is_constant(source_index):
            tensor.buffer = len(self.buffers)
            self.buffers.append(self.source.model.buffers[source.buffer])
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def constant_crop(self, source_index, axes, region):
        """A copy of constant `source_index` cut to `region` on `axes` (a per-position table,
        e.g. a position embedding added to a tile)."""
        source = self.source.tensor(source_index)
        dtype = {self.schema.TensorType.INT8: np.int8, self.schema.TensorType.INT32: np.int32}[source.type]
        values = np.frombuffer(np.asarray(self.source.model.buffers[source.buffer].data, np.uint8).tobytes(), dtype)
        values = values.reshape(self.source.shape(source_index))
        index = [slice(None)] * values.ndim
        for axis, (lo, hi) in zip(axes, region, strict=True):
            index[axis] = slice(lo, hi)
        values = np.ascontiguousarray(values[tuple(index)])
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(values.tobytes(), np.uint8)
        self.buffers.append(buffer)
        tensor = self.schema.TensorT()
        tensor.type, tensor.quantization, tensor.buffer = source.type, source.quantization, len(self.buffers) - 1
        tensor.shape = np.asarray(values.shape, np.int32)
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def constant_int32(self, values):
        values = np.asarray(values, np.int32)
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(values.tobytes(), np.uint8)
        self.buffers.append(buffer)
        tensor = self.schema.TensorT()
        tensor.type, tensor.buffer = self.schema.TensorType.INT32, len(self.buffers) - 1
        tensor.shape = np.asarray(values.shape, np.int32)
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
        from tensorflow.lite.tools import flatbuffer_utils

        schema = self.schema
        graph = schema.SubGraphT()
        graph.tensors, graph.operators = self.tensors, self.ops
        graph.inputs, graph.outputs = np.asarray(inputs, np.int32), np.asarray(outputs, np.int32)
        model = schema.ModelT()
        model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, self.codes, [graph], self.buffers
        model.description = b"nlpool patch phase"
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _region_shape(stage, tensor, region):
    shape = stage.graph.shape(tensor)
    for axis, (lo, hi) in zip(stage.layouts[tensor], region, strict=True):
        shape[axis] = hi - lo
    return shape


def _table_axes(stage, op_index, constant):
    """[(0 rows or 1 columns, axis)] of a constant operand of an element-wise op whose axes run
    along the output's rows or columns (aligned from the right, as broadcasting aligns them), or
    None when it is broadcast over both."""
    graph = stage.graph
    if graph.op_names[op_index] not in ELEMENTWISE:
        return None
    output = graph.output(op_index)
    out_shape, shape = graph.shape(output), graph.shape(constant)
    offset = len(out_shape) - len(shape)
    axes = [(k, axis - offset) for k, axis in enumerate(stage.layouts[output]) if axis >= offset]
    axes = [(k, axis) for k, axis in axes if shape[axis] > 1]
    return axes or None


def _tile_phase(stage, seeds):
    """One tile: the ops that produce `seeds` ({tensor: region}) from the image and the
    global outputs, on regions; returns a `Phase`."""
    graph = stage.graph
    holds, reads = stage.regions(seeds)
    builder = _Builder(graph)
    sources = [t for t in [graph.image] + stage.global_outputs if t in holds]
    new = {t: builder.tensor_like(t, _region_shape(stage, t, holds[t])) for t in sources}
    for i in range(stage.cut_op + 1):
        output = graph.output(i)
        if output not in holds or i in stage.global_ops or output in new:
            continue
        source, name = graph.ops[i], graph.op_names[i]
        inputs = []
        for t in source.inputs:
            t = int(t)
            if t < 0:
                inputs.append(-1)
                continue
            if (i, t) not in reads:  # a constant: a per-position table is cut to the op's region
                axes = _table_axes(stage, i, t)
                if axes is None:
                    inputs.append(builder.tensor_like(t))
                else:
                    region = [holds[output][k] for k, _ in axes]
                    inputs.append(builder.constant_crop(t, [axis for _, axis in axes], region))
                continue
            span = reads[(i, t)]
            inside = _clip(span, stage.sizes(t))
            begin = [0] * len(graph.shape(t))
            for axis, (lo, _), (held_lo, _) in zip(stage.layouts[t], inside, holds[t], strict=True):
                begin[axis] = lo - held_lo
            read = builder.crop(new[t], _region_shape(stage, t, inside), begin, t)
            padding = tuple((lo_in - lo, hi - hi_in) for (lo, hi), (lo_in, hi_in) in zip(span, inside, strict=True))
            inputs.append(builder.pad(read, padding, t) if name in WINDOWED + ("PAD",) else read)
        out_shape = _region_shape(stage, output, holds[output])
        if name in ("PAD", "STRIDED_SLICE"):  # the crop and pad above already are this op
            new[output] = inputs[0]
            continue
        new[output] = builder.tensor_like(output, out_shape)
        options = source.builtinOptions
        if name in WINDOWED:
            options = copy.copy(options)
            options.padding = builder.schema.Padding.VALID
        elif name == "RESHAPE":
            if options is not None:
                options = copy.copy(options)
                options.newShape = np.asarray(out_shape, np.int32)
            inputs = inputs[:1] + [builder.constant_int32(out_shape)]
        elif name == "RESIZE_NEAREST_NEIGHBOR":
            inputs = inputs[:1] + [builder.constant_int32(out_shape[1:3])]
        builder.copy_op(source, inputs, [new[output]], options)
    outputs = list(seeds)
    flatbuffer = builder.finish([new[t] for t in sources], [new[t] for t in outputs])
    return Phase(flatbuffer, sources, outputs, {t: holds[t] for t in sources + outputs})


def _attention_chains(graph, op_indices):
    """{second BATCH_MATMUL: (first BATCH_MATMUL, SOFTMAX)} of each scores -> softmax -> weighted
    sum chain among `op_indices`: softmax(q k^T) v."""
    ops, chains = set(op_indices), {}
    for i in op_indices:
        if graph.op_names[i] != "BATCH_MATMUL":
            continue
        readers = graph.readers[graph.output(i)]
        if len(readers) == 1 and graph.op_names[readers[0]] == "SOFTMAX" and readers[0] in ops:
            weights = graph.readers[graph.output(readers[0])]
            if len(weights) == 1 and graph.op_names[weights[0]] == "BATCH_MATMUL" and weights[0] in ops:
                if int(graph.ops[weights[0]].inputs[0]) == graph.output(readers[0]):
                    chains[weights[0]] = (i, readers[0])
    return chains


def _chunked_attention(builder, graph, new, chain, query_chunks):
    """Emits softmax(q k^T) v in `query_chunks` slices of the queries and concatenates them:
    the same values, with one slice's scores alive at a time."""
    schema = builder.schema
    weighted, (scores, softmax) = chain
    query, keys = (int(t) for t in graph.ops[scores].inputs[:2])
    values, attended = int(graph.ops[weighted].inputs[1]), graph.output(weighted)
    shape = graph.shape(query)  # (1, heads, L, depth)
    pieces = []
    for start, stop in split(shape[2], min(query_chunks, shape[2])):
        rows = stop - start
        sliced = builder.crop(new[query], [*shape[:2], rows, shape[3]], [0, 0, start, 0], query)
        logits = builder.tensor_like(graph.output(scores), [*shape[:2], rows, graph.shape(keys)[3]])
        builder.copy_op(graph.ops[scores], [sliced, new[keys]], [logits])
        probabilities = builder.tensor_like(graph.output(softmax), [*shape[:2], rows, graph.shape(keys)[3]])
        builder.copy_op(graph.ops[softmax], [logits], [probabilities])
        piece = builder.tensor_like(attended, [*graph.shape(attended)[:2], rows, graph.shape(attended)[3]])
        builder.copy_op(graph.ops[weighted], [probabilities, new[values]], [piece])
        pieces.append(piece)
    new[attended] = builder.tensor_like(attended)
    options = schema.ConcatenationOptionsT()
    options.axis = 2
    builder.op(
        builder.code(schema.BuiltinOperator.CONCATENATION),
        pieces,
        [new[attended]],
        schema.BuiltinOptions.ConcatenationOptions,
        options,
    )


def _whole_phase(graph, op_indices, inputs, outputs, query_chunks=1):
    """Ops `op_indices` on whole tensors, from `inputs` to `outputs` (tensor indices); with
    `query_chunks` > 1, each attention's queries in that many slices (`_chunked_attention`)."""
    builder = _Builder(graph)
    new = {t: builder.tensor_like(t) for t in inputs}
    chains = _attention_chains(graph, op_indices) if query_chunks > 1 else {}
    deferred = {op for pair in chains.values() for op in pair}
    for i in op_indices:
        source = graph.ops[i]
        for t in source.inputs:
            if t >= 0 and int(t) not in new and (graph.is_constant(int(t)) or int(t) not in graph.producer):
                new[int(t)] = builder.tensor_like(int(t))
        if i in deferred:
            continue
        if i in chains:
            _chunked_attention(builder, graph, new, (i, chains[i]), query_chunks)
            continue
        for t in source.outputs:
            new[int(t)] = builder.tensor_like(int(t))
        builder.copy_op(
            source, [-1 if t < 0 else new[int(t)] for t in source.inputs], [new[int(t)] for t in source.outputs]
        )
    flatbuffer = builder.finish([new[t] for t in inputs], [new[t] for t in outputs])
    return Phase(flatbuffer, list(inputs), list(outputs), {})


def _boundaries(graph, first, last):
    """Ops in first..last-1 after which a single feature map is the only tensor still needed."""
    needed_after = {}
    for i in range(first, last + 1):
        for t in graph.ops[i].inputs:
            if t >= 0 and int(t) in graph.producer:
                needed_after[int(t)] = i
    ends = []
    for j in range(first, last):
        live = [t for t, reader in needed_after.items() if graph.producer[t] <= j < reader]
        if (
            live == [graph.output(j)]
            and len(graph.shape(graph.output(j))) == 4
            and graph.shape(graph.output(j))[0] == 1
        ):
            ends.append(j)
    return ends


def _suffix_phases(graph, cut_op, split_mode, query_chunks=1):
    """The ops after the cut as one phase, or one per block (`SUFFIX_SPLITS`)."""
    last = len(graph.ops) - 1
    ends = _boundaries(graph, cut_op + 1, last) if split_mode == "blocks" else []
    starts = [cut_op + 1] + [j + 1 for j in ends]
    stops = ends + [last]
    phases = []
    for start, stop in zip(starts, stops, strict=True):
        outputs = [int(t) for t in graph.graph.outputs] if stop == last else [graph.output(stop)]
        phases.append(_whole_phase(graph, range(start, stop + 1), [graph.output(start - 1)], outputs, query_chunks))
    return phases


def patch_phases(flatbuffer, cut_op, tiles, suffix="whole", query_chunks=1):
    """The phases of a patch schedule of an int8 flatbuffer: the stage up to op `cut_op` on a
    `tiles` x `tiles` grid (in one pass, or in two around a self-attentive layer's attention),
    and the suffix (`suffix`: "whole" or "blocks", see `SUFFIX_SPLITS`), with the whole graph's
    weights and quantization. `query_chunks` > 1 runs every attention after the tiles (global
    phases, suffix) in that many slices of its queries: exact, scores `query_chunks` x smaller.

    Returns:
        PatchPhases(passes: one list of tile phases per self-attentive layer in the stage (its
        token grid) and a last one of the cut's tiles, global_phases: the attention of each such
        layer, suffix: its phases in order, the `Stage` (graph, layouts, cut)).

    Raises ValueError naming the op when an op of the stage cannot run tile by tile or a later op
    reads a tensor from before the cut.
    """
    if not isinstance(query_chunks, int) or query_chunks < 1:
        raise ValueError(f"query_chunks must be a positive integer, received: query_chunks={query_chunks!r}")
    if suffix not in SUFFIX_SPLITS:
        raise ValueError(f"suffix must be one of {SUFFIX_SPLITS}, received: suffix={suffix!r}")
    graph = Int8Graph(flatbuffer)
    if not 0 <= cut_op < len(graph.ops) - 1:
        raise ValueError(f"cut_op must be in 0..{len(graph.ops) - 2}, received: cut_op={cut_op}")
    stage = Stage(graph, cut_op)
    cut_rows, cut_cols = stage.sizes(stage.cut)
    grid = [(r, c) for r in split(cut_rows, tiles) for c in split(cut_cols, tiles)]
    passes, global_phases = [], []
    for ops, inputs, outputs in stage.groups:  # tiles of the token grid, then its attention, per layer
        token_sizes = {stage.sizes(t) for t in inputs}
        if len(token_sizes) != 1:
            raise ValueError(f"the attention at {graph.describe(ops[0])} reads grids of different sizes: {token_sizes}")
        rows, cols = token_sizes.pop()
        token_grid = [(r, c) for r in split(rows, min(tiles, rows)) for c in split(cols, min(tiles, cols))]
        passes.append([_tile_phase(stage, {t: tile for t in inputs}) for tile in token_grid])
        global_phases.append(_whole_phase(graph, ops, inputs, outputs, query_chunks))
    passes.append([_tile_phase(stage, {stage.cut: tile}) for tile in grid])
    return PatchPhases(passes, global_phases, _suffix_phases(graph, cut_op, suffix, query_chunks), stage)
