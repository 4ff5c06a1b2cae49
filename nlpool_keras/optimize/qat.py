"""Quantization-aware training through TF-MOT, with fake quantizers inside the pooling layers.

    qat_model = quantize_aware(model)          # Keras 3 or tf_keras in, tf_keras out
    calibrate_ranges(qat_model, image_batches)  # activation ranges from data, not TF-MOT's +-6
    qat_model.compile(...); qat_model.fit(...)
    flatbuffer = to_int8_tflite(qat_model, calibration_images)

TF-MOT quantizes standard layers with its default registry; a weightless layer
it does not know (Rescaling) gets its output quantized. Each pooling layer
here gets `PoolingQuantizeConfig`: 8-bit per-tensor weights for the kernels of
its convolutions and projections, a moving-average 8-bit quantizer on each of
its `QUANT_POINTS` (the internal tensors the int8 graph holds: attention scores
and weights, sigmoid gates, window weights and products, ...) and on its output.
"""

import contextlib
import functools
import os

from nlpool_keras.optimize.legacy import to_tf_keras


@functools.cache
def _quantize_config_classes():
    import tensorflow_model_optimization as tfmot
    import tf_keras

    quantizers = tfmot.quantization.keras.quantizers

    def activation_quantizer():
        return quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)

    def kernel_layers(layer):
        return [getattr(layer, name) for name in layer.SUBLAYERS if hasattr(getattr(layer, name), "kernel")]

    class PoolingQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        """Fake quantization of a pooling layer's kernels, internal tensors and output."""

        def get_weights_and_quantizers(self, layer):
            weight = quantizers.LastValueQuantizer(num_bits=8, per_axis=False, symmetric=True, narrow_range=True)
            return [(sub.kernel, weight) for sub in kernel_layers(layer)]

        def get_activations_and_quantizers(self, layer):
            # an activation named "linear" is quantized after it is applied: at the tensor itself
            return [(tf_keras.activations.linear, activation_quantizer()) for _ in layer.QUANT_POINTS]

        def set_quantize_weights(self, layer, quantize_weights):
            for sub, weight in zip(kernel_layers(layer), quantize_weights, strict=True):
                sub.kernel = weight

        def set_quantize_activations(self, layer, quantize_activations):
            layer.quant_hooks = dict(zip(layer.QUANT_POINTS, quantize_activations, strict=True))

        def get_output_quantizers(self, layer):
            return [activation_quantizer()]

        def get_config(self):
            return {}

    class OutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        """A weightless layer TF-MOT does not know (Rescaling, ...): its output quantized."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [activation_quantizer()]

        def get_config(self):
            return {}

    return PoolingQuantizeConfig, OutputQuantizeConfig


def quantize_scope():
    """The TF-MOT scope that knows these layers and their QuantizeConfig (for loading QAT models)."""
    import tensorflow_model_optimization as tfmot

    from nlpool_keras.layers import custom_objects

    pooling_config, output_config = _quantize_config_classes()
    objects = {
        **custom_objects("tf_keras"),
        "PoolingQuantizeConfig": pooling_config,
        "OutputQuantizeConfig": output_config,
    }
    return tfmot.quantization.keras.quantize_scope(objects)


def quantize_aware(model):
    """A tf_keras copy of `model` (Keras 3 or tf_keras; functional or Sequential) with
    TF-MOT fake quantization everywhere, ready to compile and fine-tune."""
    import tensorflow_model_optimization as tfmot
    import tf_keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )

    from nlpool_keras.layers import custom_objects

    legacy = to_tf_keras(model)
    ours = tuple(custom_objects("tf_keras").values())
    pooling_config, output_config = _quantize_config_classes()
    annotate = tfmot.quantization.keras.quantize_annotate_layer
    known = registry.Default8BitQuantizeRegistry()

    def clone(layer):
        copy = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, ours):
            return annotate(copy, pooling_config())
        if not layer.weights and not isinstance(layer, tf_keras.layers.InputLayer) and not known.supports(layer):
            return annotate(copy, output_config())
        return copy

    with quantize_scope():
        annotated = tf_keras.models.clone_model(legacy, clone_function=clone)
        annotated.set_weights(legacy.get_weights())
        annotated = tfmot.quantization.keras.quantize_annotate_model(annotated)
        return tfmot.quantization.keras.quantize_apply(annotated)


@contextlib.contextmanager
def _moving_average_decay(decay):
    """TF-MOT's moving-average quantizers with another EMA decay (theirs is fixed at 0.999)."""
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    original = quant_ops.MovingAvgQuantize

    @functools.wraps(original)
    def with_decay(*args, **kwargs):
        return original(*args, **{**kwargs, "ema_decay": decay})

    quant_ops.MovingAvgQuantize = with_decay
    try:
        yield
    finally:
        quant_ops.MovingAvgQuantize = original


def calibrate_ranges(qat_model, batches, decay=0.5):
    """Sets the activation ranges of a `quantize_aware` model from data before fine-tuning.

    TF-MOT starts every moving-average range at (-6, 6) and moves it with decay
    0.999, so a short fine-tuning quantizes with ranges that fit no tensor. Here
    the model runs in training mode (eagerly, no weight update) on `batches` of
    float images with decay `decay`, which puts each range near the data's.
    """
    with _moving_average_decay(decay):
        for batch in batches:
            qat_model(batch, training=True)


QAT_FILES = ("float_model.keras", "qat_weights.npz")


def save_qat(qat_model, float_model, directory):
    """Writes a `quantize_aware(float_model)` model (its fine-tuned weights and quantizer
    ranges) to `directory` as float_model.keras + qat_weights.npz: TF-MOT's own saving
    does not reload its quantize wrappers. `load_qat(directory)` rebuilds it."""
    import numpy as np

    os.makedirs(directory, exist_ok=True)
    float_model.save(os.path.join(directory, QAT_FILES[0]))
    arrays = {f"{i:05d}": value for i, value in enumerate(qat_model.get_weights())}
    np.savez(os.path.join(directory, QAT_FILES[1]), **arrays)


def load_qat(directory):
    """The QAT tf_keras model that `save_qat` wrote to `directory`."""
    import keras
    import numpy as np

    from nlpool_keras.layers import custom_objects

    float_model = keras.saving.load_model(os.path.join(directory, QAT_FILES[0]), custom_objects=custom_objects())
    qat_model = quantize_aware(float_model)
    with np.load(os.path.join(directory, QAT_FILES[1])) as data:
        values = [data[key] for key in sorted(data.files)]
    expected = len(qat_model.get_weights())
    if len(values) != expected:
        raise ValueError(f"{directory}/{QAT_FILES[1]} holds {len(values)} arrays, the QAT model has {expected}")
    qat_model.set_weights(values)
    return qat_model
