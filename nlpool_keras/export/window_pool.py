"""The learned poolings' window softmax as one custom op: `NLPOOL_WINDOW_SOFTMAX_POOL`.

In the int8 graph a pooling's windowed softmax average `sum(softmax_window(logits) * x)` is a
chain of moves, a SOFTMAX over rows of kh * kw, a product and an average pool: 4 to 8 ops
touching each element. `fuse_window_softmax_pools` replaces each chain, from the int8 tensor z
the logits are computed from (the LOGISTIC's input: logits = gate_scale * sigmoid(z); for a
self-attentive layer z is its restored attention on the token grid, each token repeated over p x p
positions) and the layer's input x to its output y, with one op that reads every window once and
takes its weights from a 256-entry table indexed by z (`firmware/kernels/window_softmax_pool.h`):

    w(z) = W * exp(logits(z) - max logits)     (W the export's weight scale, every entry >= 1)
    y = y_zero + round(sum (x - x_zero) w / sum w * s_x / s_y)

The sigmoid, the gate and the exponential are all in the table, so the LOGISTIC goes too, and
the kernel reads z through the repeat, so the token logits' repeat goes. The op's third input
holds the parameters (`window_pool_parameters`). TFLM runs it where its
resolver registers it: a firmware built from an export that has it, and the host interpreter
built from the pinned TFLM sources (`firmware/host_runtime.py`); the TFLite interpreter does not.

    fused = fuse_window_softmax_pools(flatbuffer, [{"pool_size": (2, 2), "padding": "valid",
                                                    "gate_scale": 1.0}, ...])

Shapes: x and z (1, H, W, C); y (1, Ho, Wo, C), as the pooling layer computes them.
"""

import math

import numpy as np

from nlpool_keras.export.flatbuffer import write_model
from nlpool_keras.export.int8_graph import Int8Graph
from nlpool_keras.layers import windows

OP_NAME = "NLPOOL_WINDOW_SOFTMAX_POOL"
HEADER = 12  # int32 values before the table (kWindowSoftmaxPoolHeader)
MAX_WINDOW = 16  # the kernel's largest window, kh * kw (kWindowSoftmaxPoolMaxWindow)
_INT32_MAX = 2**31 - 1


def _quantization(tensor):
    q = tensor.quantization
    return float(q.scale[0]), int(q.zeroPoint[0])


def weight_scale(window):
    """W, the largest table weight for windows of `window` elements: |sum (x - x_zero) w| * 512
    stays below 2^31 (at most 255 per difference), the kernel's 32-bit arithmetic."""
    return min(2**15, _INT32_MAX // (512 * 255 * window))


def multiplier_and_shift(scale):
    """(m, s) with m / 2^s = `scale`, m in [2^30, 2^31) and 32 <= s <= 62: the kernel's final
    rescale, which shifts the 64-bit product's high word. The pooling's scale, s_x / (256 s_y),
    is below 1/2 unless x's step is 128 times y's."""
    fraction, exponent = math.frexp(scale)
    multiplier, shift = round(fraction * 2**31), 31 - exponent
    if multiplier == 2**31:
        multiplier, shift = multiplier // 2, shift - 1
    if not 32 <= shift <= 62:
        raise ValueError(f"the window pool's rescale {scale!r} is outside [2^-32, 1/2), what the kernel applies")
    return multiplier, shift


def window_pool_parameters(x_quant, z_quant, y_quant, pool_size, pad, gate_scale=1.0, repeat=(1, 1), offset=(0, 0)):
    """The op's int32 parameter tensor: the header (window, padding, zero points, rescale, z's
    repeat and offset) and the 256 weights, `table[q + 128]` for the int8 logit source q.

    Args:
        x_quant, z_quant, y_quant: (scale, zero point) of x, z and y.
        pool_size: (kh, kw). pad: (top, left) positions of padding before the map.
        gate_scale: the logits are `gate_scale * sigmoid(z)`.
        repeat, offset: x's position (r, c) reads z at ((r + offset[0]) // repeat[0],
            (c + offset[1]) // repeat[1]).
    """
    (x_scale, x_zero), (z_scale, z_zero), (y_scale, y_zero) = x_quant, z_quant, y_quant
    logits = gate_scale / (1.0 + np.exp(-z_scale * (np.arange(-128, 128) - z_zero)))
    top = weight_scale(pool_size[0] * pool_size[1])
    table = np.maximum(np.round(top * np.exp(logits - logits.max())), 1)
    multiplier, shift = multiplier_and_shift(x_scale / (y_scale * 256))
    header = [pool_size[0], pool_size[1], pad[0], pad[1], x_zero, y_zero, multiplier, shift, *repeat, *offset]
    return np.concatenate([header, table]).astype(np.int32)


def _padding_before(size, pool, padding):
    return windows.same_padding(size, pool, pool)[0] if padding == "same" else 0


def _output_size(size, pool, padding):
    return windows.output_size(size, pool, pool, padding)


class _Region:
    """The ops between a LOGISTIC's int8 source z and a pooling's output y."""

    def __init__(self, graph, logistic):
        self.graph = graph
        source = int(graph.ops[logistic].inputs[0])
        producer = graph.producer.get(source)
        if producer is not None and graph.op_names[producer] == "CAST":  # an int16 LOGISTIC
            source = int(graph.ops[producer].inputs[0])
        self.z = source
        self.upstream = self._ancestors([source])

    def _ancestors(self, tensors):
        seen, stack = set(), [self.graph.producer[t] for t in tensors if t in self.graph.producer]
        while stack:
            op = stack.pop()
            if op in seen:
                continue
            seen.add(op)
            stack += [self.graph.producer[int(t)] for t in self.graph.ops[op].inputs if int(t) in self.graph.producer]
        return seen

    def closing_at(self, y):
        """(ops, x, moved) when the ops computing y from z and one other map x are read by
        nothing else, but for RESHAPEs of a tensor that y only reshapes (the converter lets the
        next layer reshape the pooling's result before its last RESHAPE): `moved` lists those
        readers as (op, input position), to read y instead. None otherwise."""
        graph = self.graph
        ops = self._ancestors([y]) - self.upstream
        produced = {int(t) for op in ops for t in graph.ops[op].outputs}
        outputs = {int(t) for t in graph.graph.outputs}
        reshaped, moved = self._reshaped_into(y), []
        for tensor in produced - {y}:
            outside = [reader for reader in graph.readers[tensor] if reader not in ops]
            movable = tensor in reshaped and all(graph.op_names[reader] == "RESHAPE" for reader in outside)
            if tensor in outputs or (outside and not movable):
                return None
            moved += [(reader, p) for reader in outside for p, t in enumerate(graph.ops[reader].inputs) if t == tensor]
        inputs = {
            int(t)
            for op in ops
            for t in graph.ops[op].inputs
            if t >= 0 and int(t) not in produced and not graph.is_constant(int(t))
        }
        others = inputs - {self.z}
        if self.z not in inputs or len(others) != 1:
            return None
        return ops, others.pop(), moved

    def _reshaped_into(self, y):
        """The tensors that RESHAPE ops alone carry into y (the same bytes and quantization)."""
        graph, chain = self.graph, set()
        op = graph.producer.get(y)
        while op is not None and graph.op_names[op] == "RESHAPE":
            source = int(graph.ops[op].inputs[0])
            if _quantization(graph.tensor(source)) != _quantization(graph.tensor(y)):
                break
            chain.add(source)
            op = graph.producer.get(source)
        return chain


def _squeezed(shape):
    return [d for d in shape if d != 1]


def _find(graph, logistic, pool):
    """(ops, x, z, y, moved, share) of the pooling `pool` whose logits the LOGISTIC op computes,
    or None (`_Region.closing_at`). y holds the pooled (1, Ho, Wo, C) map times 1 / `share`,
    declared in any shape of the same layout, e.g. (Ho, Wo, 1, C), when only RESHAPEs read it;
    it is declared (1, Ho, Wo, C)."""
    region = _Region(graph, logistic)
    z_shape = graph.shape(region.z)
    if len(z_shape) != 4 or graph.tensor(region.z).type != _int8():
        return None
    (kh, kw), padding = pool["pool_size"], pool["padding"]
    for op in range(logistic, len(graph.ops)):
        y = graph.output(op)
        shape = graph.shape(y)
        if not shape or shape[-1] != z_shape[3] or graph.tensor(y).type != _int8():
            continue
        # the window sums are an AVERAGE_POOL_2D times the window size (`layers.windows.window_sums`):
        # y is that product, or the average itself where the converter folded the product into the
        # next op (a FULLY_CONNECTED's weights), and the kernel then divides by the window size
        share = 1
        if graph.op_names[op] == "AVERAGE_POOL_2D":
            share = _window_size(graph, op)
            if _times_window_size(graph, y, share):
                continue
        closed = region.closing_at(y)
        if closed is None:
            continue
        x_shape = graph.shape(closed[1])
        pooled = [1, _output_size(x_shape[1], kh, padding), _output_size(x_shape[2], kw, padding), x_shape[3]]
        if x_shape[3] != z_shape[3] or _squeezed(shape) != _squeezed(pooled):
            continue
        if shape != pooled:
            if not all(graph.op_names[reader] == "RESHAPE" for reader in graph.readers[y]):
                continue
            graph.tensor(y).shape = np.asarray(pooled, np.int32)
        return closed[0], closed[1], region.z, y, closed[2], share
    return None


def _window_size(graph, op):
    options = graph.ops[op].builtinOptions
    return int(options.filterHeight) * int(options.filterWidth)


def _times_window_size(graph, tensor, size):
    """True when `tensor`'s one reader is a MUL by a constant holding `size` (the window sums' product)."""
    readers = graph.readers[tensor]
    if len(readers) != 1 or graph.op_names[readers[0]] != "MUL":
        return False
    others = [int(t) for t in graph.ops[readers[0]].inputs if int(t) != tensor]
    if len(others) != 1 or not graph.is_constant(others[0]):
        return False
    scale, zero = _quantization(graph.tensor(others[0]))
    values = (graph.constant(others[0]).astype(np.float64) - zero) * scale
    return bool(np.allclose(values, size, rtol=0.02))


def _int8():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema.TensorType.INT8


def window_pools(model):
    """The `pools` argument of `fuse_window_softmax_pools` for a built Keras model: its
    self-attentive and LIP layers, in the model's layer order.

    Raises:
        ValueError: a layer's window is larger than the kernel's (MAX_WINDOW elements), or a
            self-attentive layer interpolates its token grid (`token_grid="floor"` on a map its
            patch does not divide), which the kernel's z indexing does not express.
    """
    from nlpool_keras.layers import LocalImportancePooling2D, SelfAttentivePooling2D

    pools = []
    for layer in model.layers:
        if not isinstance(layer, (LocalImportancePooling2D, SelfAttentivePooling2D)) or not layer.window_norm:
            continue
        pool = {"pool_size": tuple(layer.pool_size), "padding": layer.padding}
        if pool["pool_size"][0] * pool["pool_size"][1] > MAX_WINDOW:
            raise ValueError(f"layer '{layer.name}': pool_size={layer.pool_size} has over {MAX_WINDOW} elements")
        if isinstance(layer, LocalImportancePooling2D):
            pool["gate_scale"] = layer.gate_scale
        else:
            p, (height, width) = layer.patch_size, layer.input_spatial_shape
            interpolated = layer.token_grid == "floor" and (layer.grid[0] * p, layer.grid[1] * p) != (height, width)
            if interpolated:
                raise ValueError(
                    f"layer '{layer.name}': token_grid='floor' interpolates its {layer.grid} tokens to the "
                    f"{height}x{width} map; only repeated tokens (token_grid='ceil') can be fused"
                )
            pool.update(repeat=(p, p), offset=tuple(layer.grid_offset))
        pools.append(pool)
    return pools


def fuse_window_softmax_pools(flatbuffer, pools):
    """The flatbuffer with each pooling's window softmax average as one NLPOOL_WINDOW_SOFTMAX_POOL.

    Args:
        flatbuffer: bytes of an int8 (or `--int16-ops`) model.
        pools: one dict per learned pooling layer, in graph order (`window_pools(model)`):
            `pool_size` (kh, kw), `padding` ("valid" or "same"), `gate_scale` (logits =
            gate_scale * sigmoid(z); default 1), `repeat` and `offset` (z's cells over x's
            positions, `window_pool_parameters`; default (1, 1) and (0, 0)).

    Raises:
        ValueError: a pooling's window softmax was not found (named by its position).
    """
    graph = Int8Graph(flatbuffer)
    logistics = [i for i, name in enumerate(graph.op_names) if name == "LOGISTIC"]
    replaced, fused = set(), {}
    for position, pool in enumerate(pools):
        found = None
        while logistics and found is None:
            found = _find(graph, logistics.pop(0), pool)
        if found is None:
            raise ValueError(
                f"pools[{position}]={pool!r}: no window softmax from a LOGISTIC's source to an output of "
                "the pooled shape in the flatbuffer; is the model's pooling in int8 with window_norm=True?"
            )
        ops, x, z, y, moved, share = found
        for reader, position in moved:
            graph.ops[reader].inputs[position] = y
        kh, kw = pool["pool_size"]
        height, width = graph.shape(x)[1:3]
        y_scale, y_zero = _quantization(graph.tensor(y))
        pad = (_padding_before(height, kh, pool["padding"]), _padding_before(width, kw, pool["padding"]))
        parameters = window_pool_parameters(
            _quantization(graph.tensor(x)),
            _quantization(graph.tensor(z)),
            (y_scale * share, y_zero),
            (kh, kw),
            pad,
            pool.get("gate_scale", 1.0),
            pool.get("repeat", (1, 1)),
            pool.get("offset", (0, 0)),
        )
        replaced |= ops
        fused[graph.producer[y]] = (x, z, y, parameters)
    code = graph.custom_code(OP_NAME)
    operators = []
    for i, op in enumerate(graph.ops):
        if i in fused:
            x, z, y, parameters = fused[i]
            parameters = graph.add_int32_constant(parameters, OP_NAME.lower() + "_parameters")
            operators.append(graph.custom_op(code, [x, z, parameters], [y]))
        elif i not in replaced:
            operators.append(op)
    graph.graph.operators = operators
    graph.drop_unused()
    return write_model(graph.model)
