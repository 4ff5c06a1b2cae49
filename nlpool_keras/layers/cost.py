"""Multiply-accumulate counts of the pooling layers, from their equations."""

import math

from nlpool_keras.layers.self_attentive import embed_width


def pooling_macs(layer, input_shape):
    """MACs per image of a built pooling layer on input (N, H, W, C), convs and matmuls only.

    SelfAttentivePooling2D: embedding H W C E (a p x p conv at stride p) +
    q/k/v/out projections 4 L E^2 + attention 2 L^2 E + restoration L E C +
    window weighting H W C. LIP: H W C^2 + H W C. Gaussian: the three 1 x 1
    convs on the pooled vector + 2 H W C. SoftPool: H W C. Max/average: 0.
    """
    _, height, width, channels = input_shape
    hwc = height * width * channels
    name = type(layer).__name__
    if name == "SelfAttentivePooling2D":
        e = embed_width(channels, layer.num_heads, layer.embed_ratio)
        tokens = attention_tokens(layer, input_shape)
        return hwc * e + 4 * tokens * e * e + 2 * tokens * tokens * e + tokens * e * channels + hwc
    if name == "LocalImportancePooling2D":
        return hwc * channels + hwc
    if name == "GaussianPooling2D":
        hidden = max(1, channels // 2)
        return channels * hidden + 2 * hidden * channels + 2 * hwc
    if name == "SoftPooling2D":
        return hwc
    return 0


def attention_tokens(layer, input_shape):
    """L, the token count of a SelfAttentivePooling2D on this input (None for other layers)."""
    if type(layer).__name__ != "SelfAttentivePooling2D":
        return None
    rounding = math.floor if layer.token_grid == "floor" else math.ceil
    return rounding(input_shape[1] / layer.patch_size) * rounding(input_shape[2] / layer.patch_size)
