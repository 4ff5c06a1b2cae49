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
    """True when windows tile the (static) map without overlap and without padding.

    "valid" may leave a remainder, which is cropped; "same" qualifies only
    when it pads nothing.
    """
    if tuple(pool_size) != tuple(strides) or None in spatial_shape:
        return False
    if padding == "valid":
        return True
    return all(size % pool == 0 for size, pool in zip(spatial_shape, pool_size, strict=True))


def weighted_window_average(ops, x, logits, pool_size, strides, padding, window_norm):
    """Average of `x` over each window, weighted by `exp(logits)`.

    With `window_norm=True` it is `AvgPool(x * exp(logits)) / AvgPool(exp(logits))`,
    i.e. `sum(softmax_window(logits) * x)` per window; with `window_norm=False`
    it is `AvgPool(x * exp(logits))`. Padded positions ("same") take no part,
    as in Keras' average pooling.

    Windows that tile the map without overlap use `blockwise_softmax_average`,
    whose graph (reshape, transpose, SOFTMAX, MUL, MEAN) has int8 kernels in TFLM.
    """
    dtype = _dtype_name(x)
    if dtype != "float32":  # exp and its sums overflow in half precision
        pooled = weighted_window_average(
            ops, ops.cast(x, "float32"), ops.cast(logits, "float32"), pool_size, strides, padding, window_norm
        )
        return ops.cast(pooled, dtype)
    if window_norm and is_blockwise(pool_size, strides, padding, tuple(x.shape[1:3])):
        return blockwise_softmax_average(ops, x, logits, pool_size)
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
    """(N, H, W, C) -> (N*Ho, Wo, C, kh*kw): one row per window, for `is_blockwise` maps.

    Reshapes and one 5-D transpose (TFLM's limit), dropping a "valid" remainder,
    so that per-window reductions run on the last axis as TFLite's kernels do.
    """
    kh, kw = pool_size
    height, width, channels = t.shape[1:]
    out_h, out_w = height // kh, width // kw
    if (out_h * kh, out_w * kw) != (height, width):
        t = t[:, : out_h * kh, : out_w * kw, :]
    t = ops.reshape(t, (-1, kh, out_w, kw, channels))
    t = ops.transpose(t, (0, 2, 4, 1, 3))
    return ops.reshape(t, (-1, out_w, channels, kh * kw))


def from_windows(ops, t, out_height):
    """(N*Ho, Wo, C) per-window values -> (N, Ho, Wo, C)."""
    return ops.reshape(t, (-1, out_height) + tuple(t.shape[1:]))


def window_mean(ops, t):
    """Mean over the window axis of `to_windows` output (MEAN has int8 kernels in TFLM)."""
    return ops.mean(t, axis=-1)


def window_sum(ops, t):
    """Sum over the window axis, as MEAN * size: TFLM's int8 SUM kernel disagreed
    with TFLite's by up to 184 LSB on these graphs; its MEAN matches."""
    return ops.mean(t, axis=-1) * float(t.shape[-1])


def blockwise_softmax_average(ops, x, logits, pool_size):
    """`sum(softmax_window(logits) * x)` for windows that tile the map (see `is_blockwise`)."""
    if pool_size[0] * pool_size[1] == 1:
        return x
    probs = ops.softmax(to_windows(ops, logits, pool_size), axis=-1)
    return from_windows(ops, window_sum(ops, probs * to_windows(ops, x, pool_size)), x.shape[1] // pool_size[0])
