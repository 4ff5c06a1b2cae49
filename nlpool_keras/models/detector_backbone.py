"""The backbone of a zoo detector: `build_mbv2_sa` without its top, from a classification
preset or weights file, and the layers where its maps reach a given stride."""

import inspect

from nlpool_keras.models import weights as weights_lib
from nlpool_keras.models.mobilenet_v2 import build_mbv2_sa

ARCHITECTURE = ("alpha", "downsample", "strides", "prepool", "pool_kwargs", "placement")


def check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, received: {name}={value!r}")


def backbone_arguments(builder, given, backbone_weights):
    """The backbone's architecture arguments of a call to detector `builder`: `given`, or a
    classification preset's (an argument the caller changed from `builder`'s default must
    then equal the preset's)."""
    given = {key: given[key] for key in ARCHITECTURE}
    if not weights_lib.is_preset(backbone_weights):
        return given
    preset = weights_lib.get_preset(backbone_weights)
    if preset["builder"] != "build_mbv2_sa":
        raise ValueError(f"backbone_weights={backbone_weights!r} is a {preset['builder']} preset, not build_mbv2_sa")
    defaults = {key: p.default for key, p in inspect.signature(builder).parameters.items()}
    arguments = dict(given)
    for key in ARCHITECTURE:
        if key not in preset["arguments"]:
            continue
        value = preset["arguments"][key]
        if given[key] != defaults[key] and given[key] != value:
            raise ValueError(
                f"backbone preset {backbone_weights!r} has {key}={value!r}, received: {key}={given[key]!r}"
            )
        arguments[key] = value
    return arguments


def detector_backbone(builder, arguments):
    """The `build_mbv2_sa` backbone (include_top=False) of a call to detector `builder` with
    `arguments` (its locals), `backbone_weights` loaded."""
    backbone_weights = arguments["backbone_weights"]
    backbone = build_mbv2_sa(
        arguments["input_shape"],
        include_top=False,
        framework=arguments["framework"],
        include_preprocessing=arguments["include_preprocessing"],
        **backbone_arguments(builder, arguments, backbone_weights),
    )
    if backbone_weights is not None:
        weights_lib.load_weights(backbone, backbone_weights, skip_missing_head=True)
    return backbone


def stride_cut(model, image_height, stride):
    """The name of the last layer (in layer order) whose output is `image_height / stride` high."""
    height = image_height // stride
    names = [layer.name for layer in model.layers if len(layer.output.shape) == 4 and layer.output.shape[1] == height]
    if image_height % stride or not names:
        raise ValueError(f"no layer of {model.name} works at stride {stride} of a {image_height}-pixel input")
    return names[-1]
