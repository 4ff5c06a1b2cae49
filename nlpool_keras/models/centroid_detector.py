"""A centroid detector (FOMO-style): a zoo backbone cut at stride 8 and a 1x1 per-cell head."""

from nlpool_keras.models import common
from nlpool_keras.models import weights as weights_lib
from nlpool_keras.models.detector_backbone import check_positive_int, detector_backbone, stride_cut
from nlpool_keras.models.mobilenet_v2 import STANDARD_STRIDES


def build_centroid_detector(
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
    head_filters=32,
    output_stride=8,
    framework="keras",
    include_preprocessing=True,
    name=None,
):
    """A MobileNetV2 backbone (`build_mbv2_sa`, any down-sampling) cut where its maps are
    `output_stride` times smaller than the image, and a per-cell classifier: objects are
    found as centroids (`nlpool_keras.detection.decode_centroids`), FOMO's TinyML detector.

    Args:
        input_shape: (H, W, 3), H and W multiples of `output_stride`. With a preset's
            backbone weights, the preset's input size: self-attentive layers' position
            embeddings and patch sizes depend on it.
        classes: object classes (the head adds a background class at index 0).
        alpha, downsample, strides, prepool, pool_kwargs, placement: the backbone's, as in
            `build_mbv2_sa`.
        weights: None, a detector preset name (`list_presets("build_centroid_detector")`:
            its architecture, classes and trained weights), or a weights file of this detector.
        backbone_weights: None, a `build_mbv2_sa` preset name (its architecture is used:
            the Imagenette presets are the pretrained starting point), or a weights file of
            the same backbone (`load_weights`, classification head ignored).
        head_filters: channels of the head's hidden 1x1 convolution.
        output_stride: the backbone's down-sampling at the cut (8: FOMO's).
        framework: "keras" or "tf_keras".
        include_preprocessing: as in `build_mbv2_sa`.
        name: the model's name.

    Returns:
        A functional model (N, H, W, 3) -> (N, H / output_stride, W / output_stride,
        classes + 1) of per-cell class probabilities, background first.

    Example:
        >>> detector = build_centroid_detector((96, 96, 3), classes=3,
        ...                                    backbone_weights="mbv2_sa_035_96_imagenette_e30")
        >>> detector.output.shape
        (None, 12, 12, 4)
    """
    if weights_lib.is_preset(weights):
        if backbone_weights is not None:
            raise ValueError(f"weights={weights!r} is a trained detector: leave backbone_weights=None")
        return weights_lib.build_from_preset(build_centroid_detector, dict(locals()))
    check_positive_int("head_filters", head_filters)
    check_positive_int("classes", classes)
    backbone = detector_backbone(build_centroid_detector, dict(locals()))
    fw = common.framework_module(framework)
    layers = fw.keras.layers
    x = backbone.get_layer(stride_cut(backbone, input_shape[0], output_stride)).output
    x = layers.Conv2D(head_filters, 1, activation="relu", name="centroid_head_conv")(x)
    x = layers.Conv2D(classes + 1, 1, name="centroid_head_logits")(x)
    outputs = layers.Softmax(name="centroid_scores")(x)
    default_name = f"centroids_{backbone.name.removeprefix('mbv2_')}"
    model = fw.keras.Model(backbone.input, outputs, name=name or default_name)
    if weights is not None:
        weights_lib.load_weights(model, weights)
    return model
