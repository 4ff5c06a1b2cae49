"""An SSD-lite detector: a zoo backbone's maps at two strides, a depthwise-separable head on
each, and one row of box offsets and class logits per anchor."""

from nlpool_keras.detection.anchors import ASPECT_RATIOS, FEATURE_STRIDES, anchors_per_cell
from nlpool_keras.models import common
from nlpool_keras.models import weights as weights_lib
from nlpool_keras.models.detector_backbone import check_positive_int, detector_backbone, stride_cut
from nlpool_keras.models.mobilenet_v2 import STANDARD_STRIDES


def build_ssdlite_detector(
    input_shape=(96, 96, 3),
    classes=1,
    alpha=0.35,
    downsample="sa",
    strides=STANDARD_STRIDES,
    prepool=None,
    pool_kwargs=None,
    placement="after",
    weights=None,
    backbone_weights=None,
    framework="keras",
    include_preprocessing=True,
    name=None,
):
    """A MobileNetV2 backbone (`build_mbv2_sa`, any down-sampling) read at strides 8 and 16
    (`detection.FEATURE_STRIDES`), each map followed by SSD-lite's head (3x3 depthwise,
    BatchNorm, ReLU6, 1x1 convolution to every anchor's box offsets and class logits). The
    anchors are fixed (`detection.ssdlite_anchors(H)`: 0.1 and 0.3 of the image, four per
    cell), so an exported detector decodes without its Python config:
    `detection.decode_detections(outputs, ssdlite_anchors(H))`.

    Args:
        input_shape: (H, H, 3), H a multiple of 16.
        classes: object classes (the logits add a background class at index 0).
        alpha, downsample, strides, prepool, pool_kwargs, placement: the backbone's, as in
            `build_mbv2_sa`.
        weights: None, a detector preset name (`list_presets("build_ssdlite_detector")`), or a
            weights file of this detector.
        backbone_weights: None, a `build_mbv2_sa` preset name (its architecture is used), or a
            weights file of the same backbone.
        framework: "keras" or "tf_keras".
        include_preprocessing: as in `build_mbv2_sa`.
        name: the model's name.

    Returns:
        A functional model (N, H, W, 3) -> (N, A, 4 + classes + 1): per anchor (dx, dy, dw, dh)
        and the logits of background and the classes. One output, so that the int8 export, the
        host and the firmware handle it as one tensor.

    Example:
        >>> detector = build_ssdlite_detector((96, 96, 3), classes=3)
        >>> detector.output.shape  # 12 x 12 x 4 + 6 x 6 x 4 anchors
        (None, 720, 8)
    """
    if weights_lib.is_preset(weights):
        if backbone_weights is not None:
            raise ValueError(f"weights={weights!r} is a trained detector: leave backbone_weights=None")
        return weights_lib.build_from_preset(build_ssdlite_detector, dict(locals()))
    check_positive_int("classes", classes)
    if input_shape[0] != input_shape[1]:
        raise ValueError(f"input_shape must be square, received: input_shape={tuple(input_shape)!r}")
    backbone = detector_backbone(build_ssdlite_detector, dict(locals()))
    fw = common.framework_module(framework)
    layers = fw.keras.layers
    per_cell, rows = anchors_per_cell(ASPECT_RATIOS), []
    for stride in FEATURE_STRIDES:
        x = backbone.get_layer(stride_cut(backbone, input_shape[0], stride)).output
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"ssd_head{stride}_depthwise")(x)
        x = layers.BatchNormalization(name=f"ssd_head{stride}_bn")(x)
        x = layers.ReLU(6.0, name=f"ssd_head{stride}_relu")(x)
        x = layers.Conv2D(per_cell * (4 + classes + 1), 1, name=f"ssd_head{stride}_outputs")(x)
        rows.append(layers.Reshape((-1, 4 + classes + 1), name=f"ssd_head{stride}_rows")(x))
    outputs = layers.Concatenate(axis=1, name="ssd_outputs")(rows)
    default_name = f"ssdlite_{backbone.name.removeprefix('mbv2_')}"
    model = fw.keras.Model(backbone.input, outputs, name=name or default_name)
    if weights is not None:
        weights_lib.load_weights(model, weights)
    return model
