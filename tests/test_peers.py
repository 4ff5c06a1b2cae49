"""The peer engine's measurement (benchmarks/peers.py): TinyEngine, generated and built from the
pinned archives for the emulated Cortex-M4, runs a small MobileNetV2-like int8 network with
outputs equal to TFLite's reference kernels when the network is padded symmetrically, and the
harness sees the wrong outputs TinyEngine gives on keras' own (0, 1) padding.

TinyEngine's code generator gets a virtual environment of its own (numpy < 2) in build/peers."""

import os
import sys

import keras
import numpy as np
import pytest

from nlpool_keras.export.tflite import to_int8_tflite

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import peers  # noqa: E402


def _small_mobilenet():
    """Conv 3x3/2 (keras' "same"), depthwise 3x3, 1x1, (0, 1) padding + depthwise 3x3/2, 1x1, global
    pool, classifier with a bias: 16 x 16 x 3 -> 10."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = keras.layers.Conv2D(8, 1)(x)
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, activation="relu6")(x)
    x = keras.layers.Conv2D(16, 1, activation="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, bias_initializer=keras.initializers.RandomNormal(0.0, 0.3))(x)
    return keras.Model(inputs, outputs, name="small")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    net = _small_mobilenet()
    symmetric = keras.models.clone_model(net, clone_function=peers._symmetric_layer)
    symmetric.set_weights(net.get_weights())
    rng = np.random.default_rng(0)
    calibration = rng.uniform(-1, 1, (8, 16, 16, 3)).astype("float32")
    inputs = rng.integers(-128, 128, (3, 16, 16, 3)).astype(np.int8)
    folder = tmp_path_factory.mktemp("peers")
    runs = {}
    for name, model in (("keras", net), ("symmetric", symmetric)):
        path = str(folder / f"{name}.tflite")
        with open(path, "wb") as f:
            f.write(to_int8_tflite(model, calibration))
        runs[name] = (path, peers.reference_outputs(path, inputs))
    return folder, inputs, runs


def test_symmetric_copy_computes_the_same_function_where_padding_agrees():
    keras.utils.set_random_seed(1)
    net = _small_mobilenet()
    symmetric = keras.models.clone_model(net, clone_function=peers._symmetric_layer)
    symmetric.set_weights(net.get_weights())
    assert [type(layer).__name__ for layer in symmetric.layers].count("Sequential") == 2  # the conv, the pool
    x = np.zeros((1, 16, 16, 3), "float32")  # zero input: padding values do not matter
    np.testing.assert_allclose(symmetric(x), net(x), atol=1e-5)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    assert not np.allclose(symmetric(x), net(x), atol=1e-3)  # the padding moves the windows


def test_tinyengine_equals_tflite_reference_on_the_symmetric_copy(exported):
    folder, inputs, runs = exported
    tflite, reference = runs["symmetric"]
    report = peers.measure_tinyengine(str(folder / "te_symmetric"), tflite, {}, inputs, reference)
    assert report["max_lsb_diff_vs_tflite_reference"] == 0
    assert report["images"] == 3 and report["instructions_per_image"] > 0
    assert report["sram_bytes"] > report["activation_buffer_bytes"] > 0
    assert report["image_buffer_bytes"] == 0 and report["sram_bytes_streamed"] == report["sram_bytes"]


def test_tinyengine_gives_wrong_outputs_on_keras_padding(exported):
    folder, inputs, runs = exported
    tflite, reference = runs["keras"]
    report = peers.measure_tinyengine(str(folder / "te_keras"), tflite, {}, inputs, reference)
    assert report["max_lsb_diff_vs_tflite_reference"] > 0
