"""Gaussian-based pooling: Kobayashi, CVPR 2019."""

from nlpool_keras.layers import windows
from nlpool_keras.layers.base import Pooling2D
from nlpool_keras.layers.self_attentive import BN_ARGS


class GaussianPooling2D(Pooling2D):
    """Pools each window to mean + weight * standard deviation, the weight learned.

    mu = AvgPool(x), var = AvgPool(x^2) - mu^2 per window, and
    sigma = var / sqrt(max(var, epsilon)) (= sqrt(var) unless var < epsilon);
    z = ReLU(BN(Conv1x1(GAP(x)))) with max(1, C // 2) channels;
    m = BN(Conv1x1(z)), s = sigmoid(BN(Conv1x1(z))), both C channels;
    weight = softplus(m + s * eps), eps ~ N(0, 1) per sample and channel while
    training, softplus(m) at inference; y = mu + weight * sigma.

    With `pool_size == strides` and no padding, sigma is computed per window as
    sqrt(n) * mean(d * l2_normalize(d)) for the deviations d = x - mu, and
    softplus(m) as m - log_softmax([0, m])[1]: the same values, with int8
    kernels in TFLM (L2_NORMALIZATION, LOG_SOFTMAX), which lacks SQRT, LOG, EXP.

    Args:
        pool_size, strides, padding, data_format: as in `AveragePooling2D`.
        epsilon: positive float, the variance below which sigma shrinks linearly.
        seed: int or None, seed of the training noise.

    Input (N, H, W, C) -> output (N, H_out, W_out, C).

    Example:
        >>> GaussianPooling2D(pool_size=2)(np.zeros((1, 8, 8, 4))).shape
        (1, 4, 4, 4)
    """

    SUBLAYERS = ("squeeze_conv", "squeeze_bn", "mean_conv", "mean_bn", "scale_conv", "scale_bn")
    QUANT_POINTS = ("window_mean", "window_std")

    def __init__(self, pool_size=2, strides=None, padding="valid", epsilon=1e-6, seed=None, data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)
        self.epsilon = self._positive_float("epsilon", epsilon)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise self._error(f"seed must be an int or None, received: seed={seed!r}")
        self.seed = seed
        self.seed_generator = self._fw.seed_generator(seed)

    def build(self, input_shape):
        channels = self._check_input_shape(input_shape)[-1]
        pooled_shape = (input_shape[0], 1, 1, channels)
        hidden_shape = pooled_shape[:-1] + (max(1, channels // 2),)
        self.squeeze_conv = self._sublayer("Conv2D", hidden_shape[-1], 1, name="squeeze_conv")
        self.squeeze_bn = self._sublayer("BatchNormalization", name="squeeze_bn", **BN_ARGS)
        self.mean_conv = self._sublayer("Conv2D", channels, 1, name="mean_conv")
        self.mean_bn = self._sublayer("BatchNormalization", name="mean_bn", **BN_ARGS)
        self.scale_conv = self._sublayer("Conv2D", channels, 1, name="scale_conv")
        self.scale_bn = self._sublayer("BatchNormalization", name="scale_bn", **BN_ARGS)
        for conv, bn, shape in (
            (self.squeeze_conv, self.squeeze_bn, pooled_shape),
            (self.mean_conv, self.mean_bn, hidden_shape),
            (self.scale_conv, self.scale_bn, hidden_shape),
        ):
            conv.build(shape)
            bn.build(conv.compute_output_shape(shape))
        super().build(input_shape)

    def call(self, inputs, training=None):
        ops = self._fw.ops
        mean, std = self._window_statistics(ops, inputs)
        mean, std = self.fake_quant("window_mean", mean), self.fake_quant("window_std", std)
        pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)
        hidden = ops.relu(self.squeeze_bn(self.squeeze_conv(pooled), training=training))
        weight = self.mean_bn(self.mean_conv(hidden), training=training)
        if training:
            scale = ops.sigmoid(self.scale_bn(self.scale_conv(hidden), training=training))
            noise = self._fw.random_normal(ops.shape(weight), weight.dtype, self.seed_generator)
            weight = weight + scale * noise
        return mean + _softplus(ops, weight) * std

    def _window_statistics(self, ops, x):
        """(mu, sigma) of each window, (N, H_out, W_out, C) each."""
        if windows.is_blockwise(self.pool_size, self.strides, self.padding, tuple(x.shape[1:3])):
            statistics = lambda xs, block: self._blockwise_statistics(ops, xs, block)  # noqa: E731
            return windows.tiled(ops, statistics, (x,), self.pool_size, self.padding)
        # moments of x minus its per-channel mean: the same variance, with E[x^2] - mu^2 cancelling
        # less in float32 where windows sit near that mean (a constant map gets exactly 0, not the
        # ~x^2 * 1e-7 of the raw moments)
        centre = ops.mean(x, axis=(1, 2), keepdims=True)
        shifted = x - centre
        mean = ops.average_pool(shifted, self.pool_size, self.strides, self.padding)
        second_moment = ops.average_pool(ops.square(shifted), self.pool_size, self.strides, self.padding)
        var = ops.relu(second_moment - ops.square(mean))
        return mean + centre, var * ops.rsqrt(ops.maximum(var, self.epsilon))

    def _blockwise_statistics(self, ops, x, block):
        size = block[0] * block[1]
        out_height = x.shape[1] // block[0]
        cells = windows.to_windows(ops, x, block)
        mean = windows.window_mean(ops, cells)
        # (N*Ho*Wo, C, n): the reshape also keeps TFLite from fusing square(cells - mean)
        # into SQUARED_DIFFERENCE, so that it fuses d * rsqrt(max(sum(d^2), n eps)) into
        # L2_NORMALIZATION (whose int8 kernel keeps precision where RSQRT alone would not)
        deviation = ops.reshape(cells - mean[..., None], (-1,) + tuple(cells.shape[2:]))
        unit = deviation * ops.rsqrt(
            ops.maximum(ops.sum(ops.square(deviation), axis=-1, keepdims=True), size * self.epsilon)
        )
        std = ops.reshape(windows.window_mean(ops, deviation * unit), (-1,) + tuple(mean.shape[1:]))
        std = std * size**0.5
        return windows.from_windows(ops, mean, out_height), windows.from_windows(ops, std, out_height)

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon, seed=self.seed)
        return config


def _softplus(ops, x):
    """log(1 + e^x) = x - log_softmax([0, x])[1] for x of shape (N, 1, 1, C): exact and
    stable, and LOG_SOFTMAX has an int8 kernel in TFLM, where EXP and LOG are float32-only."""
    flat = ops.reshape(x, (-1, x.shape[-1]))  # TFLM slices at most 4-D
    pair = ops.stack([ops.zeros_like(flat), flat], axis=-1)
    return x - ops.reshape(ops.log_softmax(pair, axis=-1)[..., 1], (-1, 1, 1, x.shape[-1]))
