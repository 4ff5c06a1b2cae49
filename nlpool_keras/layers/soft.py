"""SoftPool: Stergiou, Poppe and Kalliatakis, ICCV 2021."""

from nlpool_keras.layers.base import Pooling2D


class SoftPooling2D(Pooling2D):
    """Pools each window with softmax weights of the activations themselves.

    y = sum over each window of softmax(x) * x = AvgPool(x e^x) / AvgPool(e^x).
    No trainable weights; it lies between average pooling (flat inputs) and max
    pooling (peaked ones).

    Args:
        pool_size, strides, padding, data_format: as in `AveragePooling2D`.

    Input (N, H, W, C) -> output (N, H_out, W_out, C).

    Example:
        >>> SoftPooling2D(pool_size=2)(np.zeros((1, 8, 8, 4))).shape
        (1, 4, 4, 4)
    """

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        super().build(input_shape)

    def call(self, inputs):
        return self._pool(inputs, inputs)
