"""Full-int8 TFLite conversion of a Keras 3 or tf_keras model (batch 1, static shapes)."""

import tempfile

import numpy as np

from nlpool_keras import frameworks
from nlpool_keras.export.int16_ops import widen_to_int16
from nlpool_keras.export.matmul import fold_rhs_transposes


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def int8_blockers(model):
    """{layer name: reason} for every layer that cannot run in int8 on TFLM."""
    blockers = {}
    for layer in _all_layers(model):
        reason = layer.int8_blocker() if hasattr(layer, "int8_blocker") else None
        if reason:
            blockers[layer.name] = reason
    return blockers


def to_int8_tflite(model, representative_images, num_calibration=None, fold_transposes=True, int16_ops=()):
    """Converts `model` to a full-int8 TFLite flatbuffer and returns its bytes.

    Args:
        model: a built Keras 3 or tf_keras model with one static-shape input.
        representative_images: array (M, H, W, C) of real inputs, float, in the
            model's input range; used one at a time to calibrate the ranges.
        num_calibration: how many of them to use (default: all).
        fold_transposes: write BATCH_MATMUL right-hand sides the way TFLM reads them
            (`export.matmul.fold_rhs_transposes`: the same outputs, no persistent copies);
            False leaves them as the converter wrote them.
        int16_ops: ops to run in int16 through their lookup-table kernels
            (`export.int16_ops.widen_to_int16`: WIDENED_OPS, SOFTMAX and LOGISTIC, take
            8-10x fewer instructions on a Cortex-M4 for more SRAM); the default () keeps
            every op in int8. With `fold_transposes=False` too, the converter's flatbuffer as
            it is.

    The flatbuffer has batch 1 and int8 input and output.
    Raises ValueError, naming the layers, if a layer cannot run in int8 on TFLM.
    """
    import tensorflow as tf

    blockers = int8_blockers(model)
    if blockers:
        lines = "\n".join(f"  layer '{name}': {reason}" for name, reason in blockers.items())
        raise ValueError(f"model '{model.name}' cannot be exported to int8 for TFLM:\n{lines}")
    input_shape = tuple(model.inputs[0].shape[1:])
    if None in input_shape:
        raise ValueError(f"model '{model.name}' needs a static input shape, received: {input_shape}")
    images = np.asarray(representative_images, dtype="float32")
    if images.shape[1:] != input_shape:
        raise ValueError(f"representative_images must have shape (M,) + {input_shape}, received: {images.shape}")
    images = images[:num_calibration]

    def representative_dataset():
        for image in images:
            yield [image[None]]

    with tempfile.TemporaryDirectory() as saved_model:
        _save_batch1(model, input_shape, saved_model)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        flatbuffer = converter.convert()
    if fold_transposes:
        flatbuffer = fold_rhs_transposes(flatbuffer)
    return widen_to_int16(flatbuffer, int16_ops) if int16_ops else flatbuffer


def _save_batch1(model, input_shape, path):
    """Writes a SavedModel whose one signature runs `model` at batch 1, inference mode."""
    import tensorflow as tf

    signature = [tf.TensorSpec((1,) + input_shape, tf.float32, name="input")]
    if frameworks.framework_of(model) == "keras":
        import keras

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda x: model(x, training=False), input_signature=signature)
        archive.write_out(path, verbose=False)
    else:
        module = tf.Module()
        module.model = model
        module.serve = tf.function(lambda x: model(x, training=False), input_signature=signature)
        tf.saved_model.save(module, path, signatures=module.serve)
