"""The patch stage of an int8 graph: which axes of each tensor are rows and columns, which ops
run tile by tile and which are global (attention), and the regions a tile needs (the halo).

    stage = Stage(Int8Graph(flatbuffer), cut_op=36)
    holds, reads = stage.regions({stage.cut: ((0, 12), (0, 12))})

A layout is (row axis, column axis) of a tensor; regions are ((row0, row1), (col0, col1)) in
that tensor's own units along them.
"""

import functools
import math
from fractions import Fraction

import numpy as np

from nlpool_keras.layers.windows import same_padding
from nlpool_keras.schedule.patches import clip_region, union_regions

ELEMENTWISE = ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE")
POINTWISE = (
    "RELU",
    "RELU6",
    "RELU_N1_TO_1",
    "LOGISTIC",
    "TANH",
    "HARD_SWISH",
    "LEAKY_RELU",
    "QUANTIZE",
    "CAST",
    "SOFTMAX",
)
WINDOWED = ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D")
# ops where rows meet columns (attention over tokens): run once, on whole tensors, in a global phase
MIXING = ("RESHAPE", "TRANSPOSE", "BATCH_MATMUL", "FULLY_CONNECTED", "SOFTMAX", "MEAN", "SUM")
NHWC = (1, 2)
POOLS = ("MAX_POOL_2D", "AVERAGE_POOL_2D")
WINDOW_ROWS = (0, 1)  # rows on the batch axis, columns on the height axis


def _reshape_layout(in_shape, layout, out_shape, copies=False):
    """(output layout, blocks) of a reshape: each of the input's row and column axes must map to
    an output axis that starts where it starts (the same product of the axes before it) and
    whose size divides it, or, with `copies` (the input's other axes hold a BROADCAST_TO's
    copies: a nearest upsampling), divides it merged with the input axes right after it that are
    neither rows nor columns. That output axis carries it in units of `block` = input size / its
    size (a Fraction), the axes after it hold the rest (what lay inside a unit in the input).
    (None, None) when the reshape mixes rows with columns (tokens)."""
    out_layout, blocks = [], []
    for axis in layout:
        before = int(np.prod(in_shape[:axis]))
        starts = [j for j in range(len(out_shape)) if int(np.prod(out_shape[:j])) == before and out_shape[j] > 1]
        merged = [in_shape[axis]] + (_merged_sizes(in_shape, axis, layout) if copies else [])
        if not starts or all(size % out_shape[starts[0]] for size in merged):
            return None, None
        out_layout.append(starts[0])
        blocks.append(Fraction(in_shape[axis], out_shape[starts[0]]))
    if len(set(out_layout)) < len(out_layout):
        return None, None
    return tuple(out_layout), tuple(blocks)


def _merged_sizes(in_shape, axis, layout):
    """Sizes of the input axes from `axis` on merged with the axes after it that are neither rows
    nor columns: in_shape[axis] * in_shape[axis + 1] * ... up to the next layout axis."""
    sizes, size = [], in_shape[axis]
    for after in range(axis + 1, len(in_shape)):
        if after in layout:
            break
        size *= in_shape[after]
        sizes.append(size)
    return sizes


def _copies(graph, tensor):
    """Whether `tensor` is a BROADCAST_TO's output (copies along its axes other than rows and columns)."""
    return tensor in graph.producer and graph.op_names[graph.producer[tensor]] == "BROADCAST_TO"


def _cells(graph, op_index, layouts):
    """Per layout axis (rows, columns), the fewest output units of op `op_index` that come from
    whole input units: the factor of a nearest upsampling (RESIZE_NEAREST_NEIGHBOR), the
    denominator of a RESHAPE's block (one that merges rows or columns with the broadcast copies
    beside them), else 1. A tile holds such an output in whole cells."""
    name, output = graph.op_names[op_index], graph.output(op_index)
    if name == "RESIZE_NEAREST_NEIGHBOR":
        main = graph.activations(op_index)[0][1]
        return [graph.shape(output)[1 + a] // graph.shape(main)[1 + a] for a in (0, 1)]
    if name == "RESHAPE":
        main = graph.activations(op_index)[0][1]
        blocks = _reshape_layout(graph.shape(main), layouts[main], graph.shape(output), _copies(graph, main))[1]
        return [block.denominator for block in blocks]
    return [1, 1]


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
        if name in POOLS and _pools_within_cells(graph, op_index, layout):
            return layout
        return NHWC if layout == NHWC and len(out_shape) == 4 else None
    if name in POINTWISE + ELEMENTWISE:
        if name == "SOFTMAX" and len(out_shape) - 1 in layout:
            return None
        return layout
    if name == "BROADCAST_TO":  # copies along axes that are neither rows nor columns
        in_shape = graph.shape(main)
        same = len(in_shape) == len(out_shape) and all(in_shape[a] == out_shape[a] for a in layout)
        return layout if same else None
    if name == "TRANSPOSE":
        perm = [int(a) for a in graph.constant(int(op.inputs[1]))]
        return tuple(perm.index(axis) for axis in layout)
    if name == "RESHAPE":
        return _reshape_layout(graph.shape(main), layout, out_shape, _copies(graph, main))[0]
    if name in ("MEAN", "SUM"):
        axes = {int(a) % len(graph.shape(main)) for a in np.ravel(graph.constant(int(op.inputs[1])))}
        if axes & set(layout):
            return None
        keep = op.builtinOptions.keepDims
        return tuple(a if keep else a - sum(1 for r in axes if r < a) for a in layout)
    return None


def _pools_within_cells(graph, op_index, layout):
    """Whether a pooling op on a tensor whose rows lie on its batch axis and columns on its
    height axis (`window_rows` layout: (N*Ho, Wo, kh*kw, C)) pools along its width alone: each
    output then belongs to the row and column of its input."""
    options = graph.ops[op_index].builtinOptions
    return layout == WINDOW_ROWS and options.filterHeight == options.strideH == 1


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
    if name in POINTWISE + ELEMENTWISE + ("TRANSPOSE", "MEAN", "SUM", "BROADCAST_TO"):
        out_size = out_shape[layouts[graph.output(op_index)][axis]]
        return span if size == out_size else (0, size)  # a broadcast operand is read whole
    if name == "RESHAPE":
        block = _reshape_layout(in_shape, layouts[tensor], out_shape, _copies(graph, tensor))[1][axis]
        return math.floor(start * block), math.ceil(stop * block)
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
    if name in POOLS and _pools_within_cells(graph, op_index, layouts[tensor]):
        return span
    if name in WINDOWED:
        kernel, stride, padding = _window(graph, op_index, axis)
        pads = same_padding(size, kernel, stride) if padding == "SAME" else (0, 0)
        if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D") and sum(pads):
            raise ValueError(f"{graph.describe(op_index)} pads its input; pooling windows must lie inside the map")
        return start * stride - pads[0], (stop - 1) * stride - pads[0] + kernel
    raise ValueError(f"{graph.describe(op_index)} cannot run tile by tile; cut the schedule before it")


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

    def regions(self, seeds, stored=()):
        """Backward pass from `seeds` ({tensor: region}): ({tensor: region it holds}, {(op,
        tensor): region the op reads, unclipped}). Stops at the image, the global outputs and
        the `stored` tensors (maps kept whole from an earlier pass)."""
        graph, holds, reads = self.graph, dict(seeds), {}
        for i in reversed(range(self.cut_op + 1)):
            output = graph.output(i)
            if output not in holds or i in self.global_ops or output in stored:
                continue
            factors = _cells(graph, i, self.layouts)  # whole upsampled token cells
            held = [(lo // f * f, -(-hi // f) * f) for (lo, hi), f in zip(holds[output], factors, strict=True)]
            holds[output] = clip_region(held, self.extent(output))
            for _, tensor in graph.activations(i):
                span = [_input_span(graph, i, tensor, holds[output][a], a, self.layouts) for a in (0, 1)]
                reads[(i, tensor)] = tuple(span)
                holds[tensor] = union_regions(holds.get(tensor), clip_region(span, self.extent(tensor)))
        return holds, reads

    @functools.cached_property
    def single_maps(self):
        """The feature maps that are, each alone, everything the ops after their producer need
        from the ops up to it (block outputs, a block's expanded map), in op order; made by tiles."""
        graph, last_read = self.graph, {}
        for i in range(self.cut_op + 1):
            for _, t in graph.activations(i):
                last_read[t] = i
        maps = []
        for j in range(self.cut_op):
            output = graph.output(j)
            live = [t for t, reader in last_read.items() if reader > j and graph.producer.get(t, -1) <= j]
            if (
                live == [output]
                and output in self.layouts
                and j not in self.global_ops
                and len(graph.shape(output)) == 4
            ):
                maps.append(output)
        return maps

    def group_input(self, group):
        """The map that self-attentive layer `group` (index into `groups`) reads: the last single
        map (`single_maps`) before its attention (the image when the layer reads the image itself)."""
        first = min(self.groups[group][0])
        before = [t for t in self.single_maps if self.graph.producer[t] < first]
        return before[-1] if before else self.graph.image

    def store_points(self):
        """The maps that `store_inputs` keeps whole, one per resolution the stage passes through
        after the image's: the input of the self-attentive layer there, else the smallest single
        map of that resolution (the latest of equal ones: a block's output); at the cut's own
        resolution only maps that a window separates from the cut (a stride-1 block after them:
        the cut's tiles then read them with a halo of that block alone); none where that map
        outweighs the image (holding it would cost more than streaming the image again)."""
        group_inputs = {self.group_input(g) for g in range(len(self.groups))}
        by_size = {}
        for t in self.single_maps:
            if self.sizes(t) != self.sizes(self.cut) or self._halo_to_cut(t):
                by_size.setdefault(self.sizes(t), []).append(t)
        image_bytes = int(np.prod(self.graph.shape(self.graph.image)))
        points = []
        for size, maps in by_size.items():
            if size == self.sizes(self.graph.image):
                continue
            inputs = [t for t in maps if t in group_inputs]
            point = inputs[0] if inputs else min(reversed(maps), key=lambda t: int(np.prod(self.graph.shape(t))))
            if int(np.prod(self.graph.shape(point))) <= image_bytes:
                points.append(point)
        return sorted(points, key=self.graph.producer.get)

    def _halo_to_cut(self, tensor):
        """True when one position of the cut reads more than one position of `tensor`."""
        holds = self._one_cut_position_holds
        return tensor in holds and any(hi - lo > 1 for lo, hi in holds[tensor])

    @functools.cached_property
    def _one_cut_position_holds(self):
        """`regions`' holds for the cut's middle position alone."""
        rows, cols = self.sizes(self.cut)
        return self.regions({self.cut: ((rows // 2, rows // 2 + 1), (cols // 2, cols // 2 + 1))})[0]

    def sizes(self, tensor):
        shape, layout = self.graph.shape(tensor), self.layouts[tensor]
        return shape[layout[0]], shape[layout[1]]

    def extent(self, tensor):
        """((0, rows), (0, columns)) of a tensor on its layout axes."""
        return tuple((0, size) for size in self.sizes(tensor))
