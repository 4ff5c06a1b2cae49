"""ResNet-18 whose strided stages down-sample with a chosen pooling layer."""

from nlpool_keras.models import common, downsampling
from nlpool_keras.models import weights as weights_lib

STAGE_CHANNELS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2
STANDARD_STRIDES = "1222"
BN_ARGS = {"epsilon": 1e-5, "momentum": 0.9}


def _basic_block(layers, x, filters, stride, prefix):
    """3x3 -> 3x3 with a residual (a strided 1x1 projection when the shape changes)."""
    shortcut = x
    if stride > 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=prefix + "shortcut_conv")(x)
        shortcut = layers.BatchNormalization(name=prefix + "shortcut_bn", **BN_ARGS)(shortcut)
    if stride > 1:
        x = layers.ZeroPadding2D(1, name=prefix + "pad")(x)
    x = layers.Conv2D(
        filters, 3, strides=stride, padding="valid" if stride > 1 else "same", use_bias=False, name=prefix + "conv1"
    )(x)
    x = layers.BatchNormalization(name=prefix + "bn1", **BN_ARGS)(x)
    x = layers.ReLU(name=prefix + "relu1")(x)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=prefix + "conv2")(x)
    x = layers.BatchNormalization(name=prefix + "bn2", **BN_ARGS)(x)
    x = layers.Add(name=prefix + "add")([shortcut, x])
    return layers.ReLU(name=prefix + "out")(x)


def build_resnet18_sa(
    input_shape=None,
    downsample="sa",
    strides=STANDARD_STRIDES,
    prepool=None,
    pool_kwargs=None,
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
    """ResNet-18 that down-samples with self-attentive pooling (or a baseline).

    Stem: 7x7 conv at stride 2, BN, ReLU, 3x3 max pooling at stride 2; four
    stages of two basic blocks (64, 128, 256, 512 channels). In a strided
    stage the first block runs at stride 1 and the pooling layer follows its
    residual addition (`downsample="conv"`: the block keeps the stride, with a
    strided 1x1 shortcut). `prepool=s`: the stem conv runs at stride 1 and a
    pooling layer of stride s follows it (before the max pooling). Pixels in
    [0, 255] are rescaled to [-1, 1] inside (`include_preprocessing=False`: the
    model takes [-1, 1]).

    Args:
        strides: one stride digit per stage: "1222" (standard), "2222", "4222".
        Others: as in `build_mbv2_sa` (per-stage `pool_kwargs` tuples have 4 entries;
            "paper" heads are 4/8/16/32, "reduced" patches (4, 2, 1, 1)).

    Example:
        >>> model = build_resnet18_sa((64, 64, 3), strides="2222", classes=10)
    """
    if weights_lib.is_preset(weights):
        return weights_lib.build_from_preset(build_resnet18_sa, dict(locals()))
    fw = common.framework_module(framework)
    layers = fw.keras.layers
    down = downsampling.Downsampler(downsample, strides, len(STAGE_CHANNELS), prepool, pool_kwargs, framework, "resnet")
    common.check_head(include_top, pooling, classes, classifier_activation)
    inputs, x, spatial = common.model_input(fw, input_shape, input_tensor, 224)

    x = common.preprocess(fw, x, include_preprocessing)
    x = layers.Conv2D(64, 7, strides=down.stem_stride(), padding="same", use_bias=False, name="conv1")(x)
    x = layers.BatchNormalization(name="bn_conv1", **BN_ARGS)(x)
    x = layers.ReLU(name="conv1_relu")(x)
    x = down.prepool_layer(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)

    for stage, (filters, stride) in enumerate(zip(STAGE_CHANNELS, down.stage_strides, strict=True)):
        for index in range(BLOCKS_PER_STAGE):
            block_stride = stride if index == 0 else 1
            pooled = down.pools(block_stride)
            prefix = f"stage{stage + 1}_block{index + 1}_"
            x = _basic_block(layers, x, filters, 1 if pooled else block_stride, prefix)
            if pooled:
                x = down(x, block_stride, prefix + "pool", stage)

    outputs = common.head(fw, x, include_top, pooling, classes, classifier_activation)
    model = fw.keras.Model(inputs, outputs, name=name or f"resnet18_{downsample}_{spatial[0]}_{strides}")
    if weights is not None:
        weights_lib.load_weights(model, weights, skip_missing_head=not include_top)
    return model
