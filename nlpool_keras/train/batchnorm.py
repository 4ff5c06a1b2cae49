"""Re-estimating BatchNorm statistics after training ("precise BN")."""

import numpy as np


def batchnorm_layers(model):
    found = []
    for layer in model.layers:
        if "BatchNormalization" in type(layer).__name__:
            found.append(layer)
        for name in getattr(layer, "SUBLAYERS", ()):
            sub = getattr(layer, name)
            if "BatchNormalization" in type(sub).__name__:
                found.append(sub)
    return found


def recalibrate_batchnorm(model, batches):
    """Sets every BatchNorm's moving mean and variance to the average of its batch
    statistics over `batches` (iterable of input arrays), in place.

    A moving average with momentum 0.999 (MobileNetV2's) still carries early-training
    statistics after a few thousand steps; inference then fails although training
    accuracy is high. Averaging the statistics of the final weights fixes that.
    """
    layers = batchnorm_layers(model)
    momenta = [layer.momentum for layer in layers]
    try:
        for step, batch in enumerate(batches):
            for layer in layers:
                layer.momentum = step / (step + 1)  # running mean of the batch statistics
            model(batch, training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


def calibration_batches(images, image_size, seed, count=2048, batch_size=64):
    """Centre crops (float pixels) of a seeded sample of `count` uint8 training images, in
    batches, for `recalibrate_batchnorm`."""
    from nlpool_keras.data.pipeline import center_crops

    pick = np.random.default_rng([seed, 12345]).permutation(len(images))[:count]
    for start in range(0, len(pick), batch_size):
        yield center_crops(images[pick[start : start + batch_size]], image_size)
