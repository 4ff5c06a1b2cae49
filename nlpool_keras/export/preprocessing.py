"""A zoo model without its in-graph [0, 255] -> [-1, 1] rescaling, for export.

The int8 graph of a model with `include_preprocessing=True` starts with the
rescaling ops and holds a second full-resolution copy of the image in the arena.
Without them the input quantization takes over the rescaling: the firmware
writes pixel p as round((p / 127.5 - 1) / scale) + zero_point (a 256-entry table).

Example:

    bare = without_preprocessing(model)          # input in [-1, 1]
    flatbuffer = to_int8_tflite(bare, to_model_range(calibration_pixels))
"""

import numpy as np

from nlpool_keras import frameworks

PREPROCESSING_LAYER = "rescale"  # the name `models.common.preprocess` gives its Rescaling


def to_model_range(pixels):
    """Pixels in [0, 255] -> [-1, 1], the input of a model without preprocessing."""
    return np.asarray(pixels, "float32") / 127.5 - 1.0


def without_preprocessing(model):
    """A copy of `model` (same weights) whose `rescale` layer is an identity: it takes [-1, 1].

    Raises ValueError when `model` has no `rescale` layer (built with
    `include_preprocessing=False`, or not a zoo model).
    """
    names = [layer.name for layer in model.layers]
    if PREPROCESSING_LAYER not in names:
        raise ValueError(
            f"model '{model.name}' has no '{PREPROCESSING_LAYER}' layer to leave out: it already takes "
            f"[-1, 1] (include_preprocessing=False) or is not a zoo model; its first layers are {names[:3]}"
        )
    keras = frameworks.get(frameworks.framework_of(model)).keras

    def clone(layer):
        if layer.name == PREPROCESSING_LAYER:
            return keras.layers.Activation("linear", name=PREPROCESSING_LAYER)
        return layer.__class__.from_config(layer.get_config())

    bare = keras.models.clone_model(model, clone_function=clone)
    bare.set_weights(model.get_weights())
    return bare
