"""BATCH_MATMUL right-hand sides written the way TFLM reads them (`export.matmul`): the converter's
flatbuffer and the folded one give identical outputs in TFLM and in the TFLite interpreter, and
TFLM's arena loses at least the persistent copies it kept of every right-hand side."""

import keras
import numpy as np

import nlpool_keras as nk
from nlpool_keras.export import to_int8_tflite
from nlpool_keras.export.int8_graph import Int8Graph
from nlpool_keras.tflm.child import run_tflm
from nlpool_keras.tflm.interpreter import tflite_reference_outputs


def _attention_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    x = nk.SelfAttentivePooling2D(2, patch_size=3, num_heads=2, name="pool")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def _matmuls(flatbuffer):
    graph = Int8Graph(flatbuffer)
    return graph, [i for i, name in enumerate(graph.op_names) if name == "BATCH_MATMUL"]


def test_folded_transposes_give_the_same_outputs_without_persistent_copies():
    model = _attention_model()
    rng = np.random.default_rng(0)
    calibration = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    converted = to_int8_tflite(model, calibration, fold_transposes=False)
    folded = to_int8_tflite(model, calibration)

    graph, matmuls = _matmuls(converted)
    assert len(matmuls) == 2 and not any(graph.ops[i].builtinOptions.adjY for i in matmuls)
    copied = sum(int(np.prod(graph.shape(int(graph.ops[i].inputs[1])))) for i in matmuls)
    folded_graph, folded_matmuls = _matmuls(folded)
    assert all(folded_graph.ops[i].builtinOptions.adjY for i in folded_matmuls)
    assert folded_graph.op_names == graph.op_names  # no op added or removed

    images = rng.integers(-128, 128, (4, 32, 32, 3)).astype(np.int8)
    before, after = run_tflm(converted, images), run_tflm(folded, images)
    np.testing.assert_array_equal(after.outputs, before.outputs)
    np.testing.assert_array_equal(tflite_reference_outputs(folded, images), tflite_reference_outputs(converted, images))
    assert before.arena_bytes - after.arena_bytes >= copied
