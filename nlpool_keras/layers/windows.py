"""Pooling-window geometry and the exp-weighted window average shared by the layers.

Shapes are channels-last: `x` and `logits` are (N, H, W, C).
"""

import math


def output_size(size, pool, stride, padding):
    """Output length of a pooling window sweep, as Keras' pooling layers compute it."""
    if size is None:
        return None
    if padding == "same":
        return math.ceil(size / stride)
    return (size - pool) // stride + 1


def same_padding(size, pool, stride):
    """(before, after) padding of TensorFlow's "SAME" rule for one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + pool - size, 0)
    return total // 2, total - total // 2


def is_blockwise(pool_size, strides, padding, spatial_shape):
    """True when windows do not overlap (pool_size == strides) on a static map.

    Such windows tile the map in at most 3 x 3 regions of equal-size windows (see
    `tile_segments`), each computed with reshapes and per-window reductions.
    """
    return tuple(pool_size) == tuple(strides) and None not in spatial_shape


def tile_segments(size, pool, padding):
    """Runs of non-overlapping windows along one axis, as (start, stop, valid_length).

    "valid" drops the remainder: [(0, floor(size/pool)*pool, pool)]. "same" pads as
    TensorFlow does, so the first and last windows may hold fewer valid elements;
    each run of windows of one valid length is one segment. Padded positions take
    no part in a window, as in Keras' average pooling.
    """
    if padding == "valid":
        return [(0, size // pool * pool, pool)]
    before, _ = same_padding(size, pool, pool)
    segments = []
    for j in range(math.ceil(size / pool)):
        start, stop = max(j * pool - before, 0), min((j + 1) * pool - before, size)
        if segments and segments[-1][2] == stop - start:
            segments[-1] = (segments[-1][0], stop, stop - start)
        else:
            segments.append((start, stop, stop - start))
    return segments


def tiled(ops, window_fn, tensors, pool_size, padding):
    """`window_fn(*crops, block)` over each region of equal-size windows, joined.

    Args:
        window_fn: maps crops (N, h, w, ...) whose windows are `block` = (bh, bw)
            and tile them exactly to one output (N, h/bh, w/bw, C) or a tuple of them.
        tensors: maps of one spatial shape, (N, H, W, ...).

    Returns:
        The output (or tuple of outputs) for the whole map, (N, H_out, W_out, C).
    """
    height, width = tensors[0].shape[1:3]
    rows = tile_segments(height, pool_size[0], padding)
    cols = tile_segments(width, pool_size[1], padding)

    def crop(t, r, c):
        if (r[0], r[1], c[0], c[1]) == (0, height, 0, width):
            return t
        return t[:, r[0] : r[1], c[0] : c[1]]

    def join(parts, axis):
        if len(parts) == 1:
            return parts[0]
        return tuple(ops.concatenate(list(group), axis=axis) for group in zip(*parts, strict=True))

    bands = []
    for r in rows:
        parts = [window_fn(*(crop(t, r, c) for t in tensors), (r[2], c[2])) for c in cols]
        bands.append(join([p if isinstance(p, tuple) else (p,) for p in parts], axis=2))
    joined = join(bands, axis=1)
    return joined if len(joined) > 1 else joined[0]


def _identity(point, t):
    return t


def weighted_window_average(ops, x, logits, pool_size, strides, padding, window_norm, fake_quant=_identity):
    """Average of `x` over each window, weighted by `exp(logits)`.

    With `window_norm=True` it is `AvgPool(x * exp(logits)) / AvgPool(exp(logits))`,
    i.e. `sum(softmax_window(logits) * x)` per window; with `window_norm=False`
    it is `AvgPool(x * exp(logits))`. Padded positions ("same") take no part,
    as in Keras' average pooling.

    Windows that do not overlap use `blockwise_softmax_average` per `tiled` region,
    whose graph (slice, reshape, transpose, SOFTMAX, MUL, AVERAGE_POOL_2D, concatenation) has
    int8 kernels in TFLM; `fake_quant(point, tensor)` sees its window weights and
    products (quantization-aware training).
    """
    dtype = _dtype_name(x)
    if dtype != "float32":  # exp and its sums overflow in half precision
        pooled = weighted_window_average(
            ops,
            ops.cast(x, "float32"),
            ops.cast(logits, "float32"),
            pool_size,
            strides,
            padding,
            window_norm,
            fake_quant,
        )
        return ops.cast(pooled, dtype)
    if window_norm and is_blockwise(pool_size, strides, padding, tuple(x.shape[1:3])):
        average = lambda xs, ls, block: blockwise_softmax_average(ops, xs, ls, block, fake_quant)  # noqa: E731
        return tiled(ops, average, (x, logits), pool_size, padding)
    if window_norm:
        # The ratio is unchanged by a per-map shift; the shift keeps exp finite.
        logits = logits - ops.max(logits, axis=(1, 2), keepdims=True)
    weights = ops.exp(logits)
    weighted = ops.average_pool(x * weights, pool_size, strides, padding)
    if not window_norm:
        return weighted
    return weighted / ops.average_pool(weights, pool_size, strides, padding)


def _dtype_name(x):
    return getattr(x.dtype, "name", str(x.dtype))


def to_windows(ops, t, pool_size):
    """(N, H, W, C) -> (N*Ho, Wo, C, kh*kw): one row per window of a map they tile.

    `window_rows` and one more 4-D transpose, so that per-window reductions run on the last
    axis as TFLite's kernels do. No transpose has more than 4 dimensions: TFLM's CMSIS-NN int8
    TRANSPOSE leaves a 5-D output unwritten (tflm/README.md), where one 5-D transpose would do.
    """
    return ops.transpose(window_rows(ops, t, pool_size), (0, 1, 3, 2))


def from_windows(ops, t, out_height):
    """(N*Ho, Wo, C) per-window values -> (N, Ho, Wo, C)."""
    return ops.reshape(t, (-1, out_height) + tuple(t.shape[1:]))


def window_mean(ops, t):
    """Mean over the window axis of `to_windows` output (MEAN has int8 kernels in TFLM)."""
    return ops.mean(t, axis=-1)


def window_rows(ops, t, pool_size):
    """(N, H, W, C) -> (N*Ho, Wo, kh*kw, C): the elements of each window on axis 2, channels
    last (reshapes and one 4-D transpose; a "valid" remainder dropped)."""
    kh, kw = pool_size
    height, width, channels = t.shape[1:]
    out_h, out_w = height // kh, width // kw
    if (out_h * kh, out_w * kw) != (height, width):
        t = t[:, : out_h * kh, : out_w * kw, :]
    t = ops.transpose(ops.reshape(t, (-1, kh, out_w, kw * channels)), (0, 2, 1, 3))  # (N*Ho, Wo, kh, kw*C)
    return ops.reshape(t, (-1, out_w, kh * kw, channels))


def window_sums(ops, t):
    """(M, Wo, k, C) -> (M, Wo, C): the sum over axis 2 (a window's elements, `window_rows`) as
    an average pool of 1 x k windows times k. In int8 CMSIS-NN's AVERAGE_POOL_2D and a MUL at
    the output's size, where a MEAN over a window axis costs about 135 instructions an element
    on a Cortex-M4 in TFLM."""
    width, k, channels = t.shape[1:]
    pooled = ops.average_pool(t, (1, k), (1, k), "valid") * float(k)
    return ops.reshape(pooled, (-1, width, channels))


def blockwise_softmax_average(ops, x, logits, pool_size, fake_quant=_identity):
    """`sum(softmax_window(logits) * x)` for windows of `pool_size` that tile the map.

    The softmax runs over the last axis of `to_windows` (rows of kh*kw, as TFLite's SOFTMAX
    reads them); its weights go back to `window_rows` layout, where they meet `x` and each
    window's products are summed over all channels at once (`window_sums`).
    """
    if pool_size[0] * pool_size[1] == 1:
        return x
    probs = fake_quant("window_weights", ops.softmax(to_windows(ops, logits, pool_size), axis=-1))
    probs = ops.transpose(probs, (0, 1, 3, 2))  # (N*Ho, Wo, kh*kw, C)
    products = fake_quant("window_products", probs * window_rows(ops, x, pool_size))
    return from_windows(ops, window_sums(ops, products), x.shape[1] // pool_size[0])
