"""SOFTMAX and LOGISTIC run in int16 through their lookup-table kernels (`export.int16_ops`):
the rewritten graph holds CAST -> op -> QUANTIZE around int16 tensors, TFLM and the TFLite
interpreter agree on it bit for bit, and its outputs match NumPy's softmax and sigmoid of the
op's int8 input within the int8 output's rounding."""

import keras
import numpy as np
import pytest

from nlpool_keras.export import to_int8_tflite
from nlpool_keras.export.int8_graph import Int8Graph
from nlpool_keras.export.int16_ops import WIDENED_OPS, widen_to_int16
from nlpool_keras.export.preflight import preflight
from nlpool_keras.tflm.child import run_tflm
from nlpool_keras.tflm.diff import truncated
from nlpool_keras.tflm.interpreter import tflite_reference_outputs

ROWS, ROW = 6, 37


def _quantization(graph, tensor):
    q = graph.tensor(tensor).quantization
    return float(q.scale[0]), int(q.zeroPoint[0])


def _types(graph, op_index):
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    op = graph.ops[op_index]
    return [names[graph.tensor(int(t)).type] for t in (*op.inputs, *op.outputs)]


def _softmax_model():
    inputs = keras.Input((ROWS, ROW))
    return keras.Model(inputs, keras.layers.Softmax()(inputs))


def _logistic_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 4))
    return keras.Model(inputs, keras.layers.Conv2D(8, 1, activation="sigmoid", name="gate")(inputs))


def test_softmax_runs_in_int16_and_matches_numpy():
    rng = np.random.default_rng(0)
    model = _softmax_model()
    flatbuffer = to_int8_tflite(model, rng.uniform(-6, 3, (16, ROWS, ROW)), int16_ops=WIDENED_OPS)
    graph = Int8Graph(flatbuffer)
    assert graph.op_names == ["CAST", "SOFTMAX", "QUANTIZE"]
    assert _types(graph, 0) == ["INT8", "INT16"] and _types(graph, 1) == ["INT16", "INT16"]
    assert _types(graph, 2) == ["INT16", "INT8"]
    assert _quantization(graph, graph.output(2)) == (1 / 256, -128)  # the int8 softmax's own
    assert preflight(flatbuffer)[1] == []

    inputs = rng.integers(-128, 128, (20, ROWS, ROW), dtype=np.int8)
    micro = run_tflm(flatbuffer, inputs).outputs
    np.testing.assert_array_equal(micro, tflite_reference_outputs(flatbuffer, inputs))
    scale, zero_point = _quantization(graph, graph.image)
    logits = scale * (inputs.astype(np.float64) - zero_point)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected = np.clip(np.round(expected / expected.sum(-1, keepdims=True) * 256) - 128, -128, 127)
    difference = np.abs(micro.astype(int) - expected)
    assert difference.max() <= 1 and (difference == 0).mean() > 0.95


def test_logistic_runs_in_int16_on_a_symmetric_input_and_matches_numpy():
    model = _logistic_model()
    calibration = np.random.default_rng(1).normal(0, 1, (16, 6, 6, 4))
    flatbuffer = to_int8_tflite(model, calibration, int16_ops=WIDENED_OPS)
    widened, int8 = Int8Graph(flatbuffer), Int8Graph(to_int8_tflite(model, calibration))
    assert int8.op_names == ["CONV_2D", "LOGISTIC"]
    assert widened.op_names == ["CONV_2D", "CAST", "LOGISTIC", "QUANTIZE"]
    scale, zero_point = _quantization(widened, widened.output(0))
    old_scale, old_zero_point = _quantization(int8, int8.output(0))
    assert zero_point == 0  # the convolution writes a symmetric range covering the old one
    assert scale * 127 == pytest.approx(old_scale * max(128 + old_zero_point, 127 - old_zero_point), rel=1e-6)

    inputs = np.random.default_rng(2).integers(-128, 128, (20, 6, 6, 4), dtype=np.int8)
    micro = run_tflm(flatbuffer, inputs).outputs
    np.testing.assert_array_equal(micro, tflite_reference_outputs(flatbuffer, inputs))
    # NumPy: the sigmoid of the int8 convolution's output, in the int8 output's steps of 1/256
    gate_in = run_tflm(truncated(flatbuffer, 0), inputs).outputs.astype(np.float64)
    expected = np.clip(np.round(256 / (1 + np.exp(-scale * gate_in))) - 128, -128, 127)
    difference = np.abs(micro.astype(int) - expected)
    assert difference.max() <= 1 and (difference == 0).mean() > 0.95


def test_logistic_with_a_shared_input_stays_int8():
    inputs = keras.Input((6, 6, 4))
    pre = keras.layers.Conv2D(8, 1)(inputs)
    model = keras.Model(inputs, keras.layers.Add()([keras.layers.Activation("sigmoid")(pre), pre]))
    calibration = np.random.default_rng(0).normal(0, 1, (8, 6, 6, 4))
    graph = Int8Graph(to_int8_tflite(model, calibration, int16_ops=WIDENED_OPS))
    assert "CAST" not in graph.op_names and "LOGISTIC" in graph.op_names


def test_only_known_ops_are_widened():
    flatbuffer = to_int8_tflite(_softmax_model(), np.zeros((2, ROWS, ROW)))
    with pytest.raises(
        ValueError, match=r"ops must be names from \('SOFTMAX', 'LOGISTIC'\), received: ops=\('TANH',\)"
    ):
        widen_to_int16(flatbuffer, ops=("TANH",))
    assert widen_to_int16(flatbuffer, ops=()) == flatbuffer


def _attention_model(grid=(3, 4), width=8):
    """softmax(q k^T) v over a grid's tokens, its projections 1x1 convolutions (as
    SelfAttentivePooling2D's: TFLM's and TFLite's FULLY_CONNECTED round differently)."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input(grid + (width,))
    query, key, value = (
        keras.layers.Reshape((-1, width))(keras.layers.Conv2D(width, 1, name=name)(inputs))
        for name in ("query", "key", "value")
    )
    scores = keras.ops.softmax(keras.ops.matmul(query, keras.ops.transpose(key, (0, 2, 1))), axis=-1)
    return keras.Model(inputs, keras.ops.matmul(scores, value))


def test_attention_weights_meet_the_values_in_int16_and_match_numpy():
    """softmax(q k^T) v with the softmax in int16: the weights go into the product as the softmax
    wrote them (no int8 copy), the values are CAST from a symmetric int8 tensor, and the product
    is QUANTIZEd to the int8 tensor of before; NumPy's product of the int16 weights and the int8
    values, rounded the same way, gives its integers."""
    import tensorflow as tf

    from nlpool_keras.export.int16_ops import INT16_OUTPUT_SCALE

    rng = np.random.default_rng(4)
    model = _attention_model()
    flatbuffer = to_int8_tflite(model, rng.normal(0, 1, (16, 3, 4, 8)), int16_ops=WIDENED_OPS)
    graph = Int8Graph(flatbuffer)
    product = [i for i, name in enumerate(graph.op_names) if name == "BATCH_MATMUL"][-1]
    assert _types(graph, product) == ["INT16", "INT16", "INT16"]
    assert graph.op_names[product - 1] == "CAST" and graph.op_names[product + 1] == "QUANTIZE"
    assert graph.op_names.count("QUANTIZE") == 1  # the L x L weights are not rounded to int8
    weights, values = (int(t) for t in graph.ops[product].inputs)
    assert _quantization(graph, weights) == (INT16_OUTPUT_SCALE, 0) and _quantization(graph, values)[1] == 0
    assert preflight(flatbuffer)[1] == []

    inputs = rng.integers(-128, 128, (10, 3, 4, 8), dtype=np.int8)
    micro = run_tflm(flatbuffer, inputs).outputs
    np.testing.assert_array_equal(micro, tflite_reference_outputs(flatbuffer, inputs))
    interpreter = tf.lite.Interpreter(
        model_content=flatbuffer,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    interpreter.allocate_tensors()
    (value_scale, _), (out_scale, out_zero) = _quantization(graph, values), _quantization(graph, graph.output(-1))
    for item, got in zip(inputs, micro, strict=True):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], item[None])
        interpreter.invoke()
        held = [interpreter.get_tensor(t).astype(np.float64) for t in (weights, values)]
        real = (held[0] * INT16_OUTPUT_SCALE) @ (held[1] * value_scale)
        expected = np.clip(np.round(real / out_scale) + out_zero, -128, 127)
        assert np.abs(got.astype(int) - expected).max() <= 1
