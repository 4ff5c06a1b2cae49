"""How an int8 zoo model takes its pixels: the rescaling in the graph, or folded into the input.

A zoo model (`include_preprocessing=True`) rescales RGB pixels p in [0, 255] to p / 127.5 - 1.
Its int8 graph takes the pixels in one of two forms, and a firmware writes the same bytes to
either: each pixel as the int8 p - 128 (`PIXEL_OFFSET`).

- "in graph": the input's quantization (scale 1, zero point -128) holds p exactly, and MUL and
  ADD at the graph's input rescale it into a second full-resolution int8 copy of the image.
- "folded" (`without_preprocessing`; `nlpool export`'s default): the input's quantization
  (scale 1/127.5, zero point 0) does the rescaling; the graph has no op for it. An int8 level
  cannot hold p / 127.5 - 1 (it lies half-way between two), so the folded input holds
  (p - 128) / 127.5 (`to_folded_range`), half a level (1/255) below.

`pin_pixel_range` makes the calibration's input range the whole pixel range, so that the
converter writes exactly these quantizations (`pixel_input_form` reads them back).

Example:

    bare = without_preprocessing(model)          # input in [-1, 1]
    pixels = pin_pixel_range(calibration_pixels)
    flatbuffer = to_int8_tflite(bare, to_folded_range(pixels))
    scale, zero_point = read_graph(flatbuffer).inputs[0]["quantization"]   # export.preflight
    assert pixel_input_form(scale, zero_point).name == "folded"
"""

from typing import NamedTuple

import numpy as np

from nlpool_keras import frameworks

PREPROCESSING_LAYER = "rescale"  # the name `models.common.preprocess` gives its Rescaling
PIXEL_OFFSET = 128  # int8 input = pixel - PIXEL_OFFSET, in both forms


class PixelInput(NamedTuple):
    """One form of a pixel input: its int8 quantization and what the graph does with it."""

    name: str
    scale: float
    zero_point: int
    description: str


PIXEL_INPUTS = (
    PixelInput("in graph", 1.0, -128, "the input holds p; the graph's own ops rescale it (a zoo model's MUL and ADD)"),
    PixelInput(
        "folded",
        1 / 127.5,
        0,
        "the input's scale and zero point hold (p - 128) / 127.5: no rescaling op in the graph",
    ),
)


def to_model_range(pixels):
    """Pixels in [0, 255] -> [-1, 1], the input of a model without preprocessing."""
    return np.asarray(pixels, "float32") / 127.5 - 1.0


def to_folded_range(pixels):
    """Pixels in [0, 255] -> (p - 128) / 127.5, what a folded int8 input holds (the nearest
    int8 levels to `to_model_range`, half a level below it)."""
    return (np.asarray(pixels, "float32") - PIXEL_OFFSET) / 127.5


def pin_pixel_range(pixels):
    """Calibration `pixels` (M, H, W, C) in [0, 255] whose values reach both 0 and 255, so that
    the calibrated input range is the whole pixel range: as they are when they already do, else a
    copy whose smallest value is set to 0 (when none is) and then its largest to 255 (when none is).

    Raises ValueError for values outside [0, 255] (the model's input is pixels)."""
    pixels = np.asarray(pixels, dtype="float32")
    if pixels.ndim != 4 or pixels.size < 2:
        raise ValueError(
            f"calibration images must be (M, H, W, C) with at least 2 values, received shape {pixels.shape}"
        )
    low, high = float(pixels.min()), float(pixels.max())
    if not (0 <= low and high <= 255):  # NaN fails too
        raise ValueError(f"calibration images must be pixels in [0, 255], received values in [{low:g}, {high:g}]")
    if (low, high) == (0, 255):
        return pixels
    values = pixels.reshape(-1).copy()
    if low > 0:
        values[np.argmin(values)] = 0.0
    if high < 255:
        values[np.argmax(values)] = 255.0
    return values.reshape(pixels.shape)


def pixel_input_form(scale, zero_point):
    """The `PixelInput` whose quantization (scale, zero point) is this one (float32 scales), or None."""
    for form in PIXEL_INPUTS:
        if zero_point == form.zero_point and np.float32(scale) == np.float32(form.scale):
            return form
    return None


def has_rescale(model):
    """Whether `model` has a zoo model's `rescale` layer (`models.common.preprocess`): pixels
    in [0, 255] -> [-1, 1], which `without_preprocessing` can leave to the input's quantization.

    Raises ValueError when a layer is named `rescale` but rescales some other way."""
    layers = [layer for layer in model.layers if layer.name == PREPROCESSING_LAYER]
    if not layers:
        return False
    config = layers[0].get_config()
    rescaling = (config.get("scale"), config.get("offset"))
    if type(layers[0]).__name__ != "Rescaling" or not np.allclose(rescaling, (1 / 127.5, -1.0), rtol=0, atol=1e-7):
        raise ValueError(
            f"model '{model.name}' has a '{PREPROCESSING_LAYER}' layer that is not the zoo's [0, 255] -> [-1, 1] "
            f"Rescaling(1 / 127.5, offset=-1): {type(layers[0]).__name__} with scale and offset {rescaling}"
        )
    return True


def export_input(model, pixels, fold_rescale=True):
    """(model, pixels, form name) as `nlpool export` converts them: with `fold_rescale` a model
    that has the zoo's `rescale` layer (`has_rescale`) without it (`without_preprocessing`) and
    `pixels` as its folded int8 input holds them (`to_folded_range`), "folded"; any other model,
    or `fold_rescale=False`, as it is with the pixels as they are, "in graph"."""
    if fold_rescale and has_rescale(model):
        return without_preprocessing(model), to_folded_range(pixels), "folded"
    return model, pixels, "in graph"


def without_preprocessing(model):
    """A copy of `model` (same weights) whose `rescale` layer is an identity: it takes [-1, 1].

    Raises ValueError when `model` has no `rescale` layer (built with
    `include_preprocessing=False`, or not a zoo model) or one that rescales otherwise (`has_rescale`).
    """
    if not has_rescale(model):
        names = [layer.name for layer in model.layers]
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
