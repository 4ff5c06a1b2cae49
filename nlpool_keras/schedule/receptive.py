"""Which rows (or columns) of a layer's input an output range reads.

A span is a half-open range `(start, stop)` on one spatial axis. `input_span` maps a span of a
layer's output to the span of its input that the layer reads for it; the result may reach past
the input's extent, where the layer's own "same" padding (zeros) lies.

    input_span(conv3x3_stride2_same, 0, (4, 8), size=16)   # -> (8, 17): rows 8..16, row 16 padding
"""

from nlpool_keras.layers import windows

POINTWISE = (
    "InputLayer",
    "BatchNormalization",
    "ReLU",
    "Activation",
    "Rescaling",
    "Add",
    "Multiply",
    "Dropout",
    "Identity",
)
CONVOLUTIONS = ("Conv2D", "DepthwiseConv2D")
LOCAL_POOLING = ("MaxPooling2D", "AveragePooling2D", "LocalImportancePooling2D", "SoftPooling2D")
TWO_PASS = ("SelfAttentivePooling2D",)


def kind_of(layer):
    """ "pointwise", "convolution", "zero_padding", "local_pooling" or "two_pass" for a layer a
    patch stage can run; ValueError naming the layer and why for any other."""
    name = type(layer).__name__
    if name in POINTWISE:
        return "pointwise"
    if name in CONVOLUTIONS:
        if tuple(layer.dilation_rate) != (1, 1):
            raise ValueError(f"layer '{layer.name}' ({name}): dilated convolutions cannot run tile by tile here")
        return "convolution"
    if name == "ZeroPadding2D":
        return "zero_padding"
    if name in LOCAL_POOLING + TWO_PASS:
        if tuple(layer.pool_size) != tuple(layer.strides):
            raise ValueError(
                f"layer '{layer.name}' ({name}): pool_size={tuple(layer.pool_size)} differs from "
                f"strides={tuple(layer.strides)}; tiles need non-overlapping windows"
            )
        return "two_pass" if name in TWO_PASS else "local_pooling"
    if name == "GaussianPooling2D":
        raise ValueError(
            f"layer '{layer.name}' (GaussianPooling2D) weights each window by statistics of the whole input "
            "(its global average pool): it cannot run tile by tile; cut the schedule before it"
        )
    raise ValueError(f"layer '{layer.name}' ({name}) cannot run tile by tile; cut the schedule before it")


def window(layer):
    """(kernel, stride, padding) per axis of a convolution or pooling layer."""
    kernel = layer.kernel_size if hasattr(layer, "kernel_size") else layer.pool_size
    return tuple(kernel), tuple(layer.strides), layer.padding


def input_span(layer, axis, span, size):
    """The span of the input (of extent `size` on `axis`, 0 = rows) that `layer` reads to
    produce output `span`."""
    start, stop = span
    kind = kind_of(layer)
    if kind in ("pointwise",):
        return span
    if kind == "zero_padding":
        before = layer.padding[axis][0]
        return start - before, stop - before
    kernel, stride, padding = (value[axis] if isinstance(value, tuple) else value for value in window(layer))
    before = windows.same_padding(size, kernel, stride)[0] if padding == "same" else 0
    if kind in ("local_pooling", "two_pass") and before:
        raise ValueError(
            f"layer '{layer.name}' ({type(layer).__name__}): 'same' padding puts {before} padded row(s) before the "
            f"first window of its {size}-long input; tiles need windows that start at row 0"
        )
    return start * stride - before, (stop - 1) * stride - before + kernel
