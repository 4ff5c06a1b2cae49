"""Local importance pooling (LIP): Gao, Wang and Wu, ICCV 2019."""

from nlpool_keras.layers.base import Pooling2D
from nlpool_keras.layers.self_attentive import BN_ARGS


class LocalImportancePooling2D(Pooling2D):
    """Pools each window with weights from a learned per-pixel importance map.

    logits = gate_scale * sigmoid(BN(Conv1x1(x))), C -> C channels; then
    y = AvgPool(x * e^logits) / AvgPool(e^logits) (`window_norm=True`) or
    y = AvgPool(x * e^logits). `gate_scale=1` is LIP as the self-attentive
    pooling paper compares it; the original LIP uses `gate_scale=12` (and a
    3x3 window at stride 2).

    Args:
        pool_size, strides, padding, data_format: as in `AveragePooling2D`.
        gate_scale: positive float multiplying the sigmoid gate.
        window_norm: bool, normalise the weights within each window.

    Input (N, H, W, C) -> output (N, H_out, W_out, C).

    Example:
        >>> pool = LocalImportancePooling2D(pool_size=2)
        >>> pool(np.zeros((1, 8, 8, 4))).shape
        (1, 4, 4, 4)
    """

    SUBLAYERS = ("logit_conv", "logit_bn")
    QUANT_POINTS = Pooling2D.QUANT_POINTS + ("gate",)

    def __init__(
        self, pool_size=2, strides=None, padding="valid", gate_scale=1.0, window_norm=True, data_format=None, **kwargs
    ):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)
        self.gate_scale = self._positive_float("gate_scale", gate_scale)
        if not isinstance(window_norm, bool):
            raise self._error(f"window_norm must be a bool, received: window_norm={window_norm!r}")
        self.window_norm = window_norm

    def build(self, input_shape):
        channels = self._check_input_shape(input_shape)[-1]
        self.logit_conv = self._sublayer("Conv2D", channels, 1, name="logit_conv")
        self.logit_bn = self._sublayer("BatchNormalization", name="logit_bn", **BN_ARGS)
        self.logit_conv.build(tuple(input_shape))
        self.logit_bn.build(tuple(input_shape))
        super().build(input_shape)

    def call(self, inputs, training=None):
        gate = self.fake_quant("gate", self._fw.ops.sigmoid(self.logit_bn(self.logit_conv(inputs), training=training)))
        return self._pool(inputs, gate * self.gate_scale, self.window_norm)

    def int8_blocker(self):
        if not self.window_norm:
            return "window_norm=False needs EXP, which TFLM has only in float32; use window_norm=True"
        return super().int8_blocker()

    def get_config(self):
        config = super().get_config()
        config.update(gate_scale=self.gate_scale, window_norm=self.window_norm)
        return config
