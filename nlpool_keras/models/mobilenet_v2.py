"""MobileNetV2 whose strided stages down-sample with a chosen pooling layer."""

from nlpool_keras.models import common, downsampling
from nlpool_keras.models import weights as weights_lib

# (expansion t, output channels c, blocks n) per stage; the stride comes from the pattern
STAGES = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1))
STANDARD_STRIDES = "1222121"
BN_ARGS = {"epsilon": 1e-3, "momentum": 0.999}


def make_divisible(value, divisor=8):
    """Rounds a channel count to a multiple of `divisor`, never below 90 % of it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _inverted_residual(layers, x, expansion, stride, filters, block_id, residual=True):
    """Expand 1x1 -> depthwise 3x3 (at `stride`) -> project 1x1, plus the residual
    when `residual`, the stride is 1 and the channel count is kept."""
    in_channels = x.shape[-1]
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    inputs = x
    if block_id:
        x = layers.Conv2D(expansion * in_channels, 1, padding="same", use_bias=False, name=prefix + "expand")(x)
        x = layers.BatchNormalization(name=prefix + "expand_BN", **BN_ARGS)(x)
        x = layers.ReLU(6.0, name=prefix + "expand_relu")(x)
    if stride > 1:
        x = layers.ZeroPadding2D(_pad_for_stride(x.shape[1:3]), name=prefix + "pad")(x)
    x = layers.DepthwiseConv2D(
        3, strides=stride, use_bias=False, padding="same" if stride == 1 else "valid", name=prefix + "depthwise"
    )(x)
    x = layers.BatchNormalization(name=prefix + "depthwise_BN", **BN_ARGS)(x)
    x = layers.ReLU(6.0, name=prefix + "depthwise_relu")(x)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=prefix + "project")(x)
    x = layers.BatchNormalization(name=prefix + "project_BN", **BN_ARGS)(x)
    if residual and in_channels == filters and stride == 1:
        x = layers.Add(name=prefix + "add")([inputs, x])
    return x


def _pad_for_stride(spatial):
    """Zero padding before a 3x3 'valid' strided conv: one less before on even sizes."""
    return tuple((size % 2, 1) for size in spatial)


def build_mbv2_sa(
    input_shape=None,
    alpha=1.0,
    downsample="sa",
    strides=STANDARD_STRIDES,
    prepool=None,
    pool_kwargs=None,
    placement="after",
    include_top=True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    framework="keras",
    include_preprocessing=True,
):
    """MobileNetV2 that down-samples with self-attentive pooling (or a baseline).

    In each strided stage the first inverted-residual block runs at stride 1
    and a pooling layer of the stage's stride follows it (`placement="after"`)
    or pools its input (`placement="before"`); `downsample="conv"`: the
    block's depthwise conv keeps the stride, as in `keras.applications`.
    The model takes RGB pixels in [0, 255] and rescales them to [-1, 1]
    (`include_preprocessing=False`: it takes [-1, 1]).

    Args:
        input_shape: (H, W, 3) with static H, W; default (224, 224, 3) or the preset's.
        alpha: width multiplier.
        downsample: "sa", "lip", "gaussian", "softpool", "max", "avg" or "conv".
        strides: one stride digit per stage, e.g. "1222121" (standard), "2222121",
            "4222121" (the paper's aggressive early down-sampling).
        prepool: None, or a stride s: the stem conv runs at stride 1 and a
            pooling layer of stride s follows it.
        pool_kwargs: self-attentive pooling settings: `num_heads` (int, "paper"
            for 2/4/.../128 per stage, or a 7-tuple), `patch_size` (int, "auto"
            for the smallest patch keeping at most `max_tokens` tokens,
            "reduced" for the paper's (4,4,4,2,2,1,1), or a 7-tuple),
            `max_tokens`, `embed_ratio`, `window_norm`, `token_grid`. Heads are
            capped at the channel count. "paper" and "paper-headfix2" name the
            authors' settings (`downsampling.PAPER_POOL_KWARGS`).
        placement: "after" (the pooling layer follows a strided stage's first
            block, as in the authors' self-attentive networks) or "before" (it
            pools that block's input, before its expand and depthwise convs, as
            in the authors' LIP networks); "conv" has no pooling layer to move
            and takes "after" only.
        include_top, pooling, classes, classifier_activation, input_tensor, name:
            as in `keras.applications.MobileNetV2`.
        weights: None, a preset name (`list_presets()`), a local `.npz` file
            written by `save_weights`, a Keras 3 `.weights.h5` (Keras 3 builds) or
            tf_keras `.h5` file, or "https://...#sha256=<hex>".
        framework: "keras" (Keras 3) or "tf_keras"; layer names are the same in both.
        include_preprocessing: False leaves out the [0, 255] -> [-1, 1] rescaling
            (as in `keras.applications`): deployed in int8, the rescaling then sits
            in the input's quantization parameters and the graph holds no rescaled
            copy of the input image (a full-resolution tensor).

    Returns:
        A functional model: (N, H, W, 3) -> (N, classes), or features.

    Example:
        >>> model = build_mbv2_sa((96, 96, 3), alpha=0.35, strides="4222121", classes=10)
    """
    if weights_lib.is_preset(weights):
        return weights_lib.build_from_preset(build_mbv2_sa, dict(locals()))
    fw = common.framework_module(framework)
    layers = fw.keras.layers
    alpha = common.check_alpha(alpha)
    down = downsampling.Downsampler(
        downsample, strides, len(STAGES), prepool, pool_kwargs, framework, "mbv2", placement
    )
    common.check_head(include_top, pooling, classes, classifier_activation)
    inputs, x, spatial = common.model_input(fw, input_shape, input_tensor, 224)

    x = common.preprocess(fw, x, include_preprocessing)
    x = layers.Conv2D(
        make_divisible(32 * alpha), 3, strides=down.stem_stride(), padding="same", use_bias=False, name="Conv1"
    )(x)
    x = layers.BatchNormalization(name="bn_Conv1", **BN_ARGS)(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    x = down.prepool_layer(x)

    block_id = 0
    for stage, ((expansion, channels, blocks), stride) in enumerate(zip(STAGES, down.stage_strides, strict=True)):
        filters = make_divisible(int(channels * alpha))
        for index in range(blocks):
            block_stride = stride if index == 0 else 1
            pooled = down.pools(block_stride)
            if down.pools(block_stride, "before"):
                x = down(x, block_stride, f"block_{block_id}_pool", stage)
            # a pooled block is the strided block with its stride moved to the pooling layer
            x = _inverted_residual(
                layers, x, expansion, 1 if pooled else block_stride, filters, block_id, residual=not pooled
            )
            if down.pools(block_stride, "after"):
                x = down(x, block_stride, f"block_{block_id}_pool", stage)
            block_id += 1

    last_filters = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = layers.Conv2D(last_filters, 1, use_bias=False, name="Conv_1")(x)
    x = layers.BatchNormalization(name="Conv_1_bn", **BN_ARGS)(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    outputs = common.head(fw, x, include_top, pooling, classes, classifier_activation)
    default_name = f"mbv2_{downsample}_{alpha:g}_{spatial[0]}_{strides}" + ("_before" if placement == "before" else "")
    model = fw.keras.Model(inputs, outputs, name=name or default_name)
    if weights is not None:
        weights_lib.load_weights(model, weights, skip_missing_head=not include_top)
    return model
