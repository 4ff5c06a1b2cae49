"""Arguments, checks and output shapes common to every pooling layer here."""

import numpy as np

from nlpool_keras import frameworks
from nlpool_keras.layers import windows

PADDINGS = ("valid", "same")


def _pair(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return tuple(value)
    return None


class Pooling2D:
    """Window arguments of 2-D pooling, as in `keras.layers.AveragePooling2D`.

    Args:
        pool_size: int or (int, int), the window size.
        strides: int, (int, int) or None (= pool_size).
        padding: "valid" or "same" (case-insensitive), with Keras' meaning.
        data_format: "channels_last" or None; channels_first is not supported.

    Input (N, H, W, C) gives output (N, H_out, W_out, C), H_out being
    `(H - pool) // stride + 1` for "valid" and `ceil(H / stride)` for "same".
    """

    # get_weights/set_weights order, the same on Keras 3 and tf_keras: the
    # layer's own variables, then each sub-layer's weights, in these orders.
    OWN_WEIGHTS = ()
    SUBLAYERS = ()
    # internal tensors that the int8 graph holds in int8: quantization-aware training
    # (`nlpool_keras.optimize.quantize_aware`) puts a fake quantizer on each
    QUANT_POINTS = ("window_weights", "window_products")

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = self._positive_pair("pool_size", pool_size)
        self.strides = self.pool_size if strides is None else self._positive_pair("strides", strides)
        self.padding = self._choice("padding", padding, PADDINGS, lower=True)
        if data_format is None:
            data_format = frameworks.get(self.framework).keras.backend.image_data_format()
        self.data_format = self._choice("data_format", data_format, ("channels_last",))

    # -- argument checks: every error names the layer, the argument and the value.

    def _error(self, message):
        return ValueError(f"{type(self).__name__} (layer '{self.name}'): {message}")

    def _positive_pair(self, arg, value):
        pair = _pair(value)
        if pair is None or min(pair) < 1:
            raise self._error(f"{arg} must be a positive int or a tuple of 2 positive ints, received: {arg}={value!r}")
        return pair

    def _positive_int(self, arg, value):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self._error(f"{arg} must be a positive int, received: {arg}={value!r}")
        return value

    def _positive_float(self, arg, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise self._error(f"{arg} must be a positive number, received: {arg}={value!r}")
        return float(value)

    def _choice(self, arg, value, choices, lower=False):
        key = value.lower() if lower and isinstance(value, str) else value
        if key not in choices:
            raise self._error(f"{arg} must be one of {choices}, received: {arg}={value!r}")
        return key

    def _check_input_shape(self, input_shape):
        """Checks rank and window fit; records (H, W) as `input_spatial_shape`; returns (H, W, C)."""
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise self._error(
                f"expects a 4-D input (batch, height, width, channels), received: input_shape={input_shape}"
            )
        height, width, channels = input_shape[1:]
        if channels is None:
            raise self._error(f"the channel dimension must be known, received: input_shape={input_shape}")
        if self.padding == "valid":
            for axis, size, pool in (("height", height, self.pool_size[0]), ("width", width, self.pool_size[1])):
                if size is not None and size < pool:
                    raise self._error(
                        f"pool_size={self.pool_size} is larger than the input {axis} {size} with "
                        f"padding='valid', received: input_shape={input_shape}"
                    )
        self.input_spatial_shape = (height, width)
        return height, width, channels

    # -- Keras protocol

    def compute_output_shape(self, input_shape):
        height, width, channels = self._check_input_shape(input_shape)
        return (
            tuple(input_shape)[0],
            windows.output_size(height, self.pool_size[0], self.strides[0], self.padding),
            windows.output_size(width, self.pool_size[1], self.strides[1], self.padding),
            channels,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            pool_size=self.pool_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
        )
        return config

    # -- weights

    def ordered_weights(self):
        own = [getattr(self, name) for name in self.OWN_WEIGHTS if hasattr(self, name)]
        return own + [w for name in self.SUBLAYERS for w in getattr(self, name).weights]

    def get_weights(self):
        return [np.asarray(w) for w in self.ordered_weights()]

    def set_weights(self, weights):
        variables = self.ordered_weights()
        if len(weights) != len(variables):
            raise self._error(f"set_weights expects {len(variables)} arrays, received: {len(weights)}")
        for variable, value in zip(variables, weights, strict=True):
            if tuple(variable.shape) != np.shape(value):
                raise self._error(
                    f"weight {variable.name} has shape {tuple(variable.shape)}, received: {np.shape(value)}"
                )
            variable.assign(np.asarray(value, dtype="float32"))

    # -- deployment

    def int8_blocker(self):
        """Why this built layer cannot run in int8 on TFLM, or None if it can."""
        if self.pool_size != self.strides:
            return (
                f"pool_size={self.pool_size} differs from strides={self.strides}: overlapping or "
                "gapped windows need EXP, which TFLM has only in float32; use pool_size == strides"
            )
        spatial = getattr(self, "input_spatial_shape", (None, None))
        if None in spatial:
            return f"input size {spatial} is not static; build the model with a fixed input size"
        return None

    def _sublayer(self, cls_name, *args, **kwargs):
        """A framework layer (Conv2D, Dense, ...) computing in this layer's dtype policy."""
        layer_cls = getattr(self._fw.keras.layers, cls_name)
        return layer_cls(*args, dtype=self.dtype_policy, **kwargs)

    @property
    def _fw(self):
        return frameworks.get(self.framework)

    def fake_quant(self, point, x):
        """`x`, or `x` through the fake quantizer that QAT attached to `point` (one of QUANT_POINTS)."""
        hooks = getattr(self, "quant_hooks", None)
        return hooks[point](x) if hooks else x

    def _pool(self, x, logits, window_norm=True):
        return windows.weighted_window_average(
            self._fw.ops, x, logits, self.pool_size, self.strides, self.padding, window_norm, self.fake_quant
        )
