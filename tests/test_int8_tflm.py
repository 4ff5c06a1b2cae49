"""Tiny models with each layer: full-int8 TFLite, run in the TFLM interpreter on real images."""

import keras
import numpy as np
import pytest

import nlpool_keras as nk
from nlpool_keras.export import int8_blockers, to_int8_tflite
from nlpool_keras.export.preflight import preflight
from nlpool_keras.layers.self_attentive import MAX_INT8_TOKENS
from nlpool_keras.tflm import TFLMModel, tflite_reference_outputs
from nlpool_keras.tflm.child import run_tflm
from nlpool_keras.tflm.interpreter import TFLMError, quantize
from tests.conftest import randomize

DEPLOYABLE = {
    "sa_p1": lambda: nk.SelfAttentivePooling2D(2, patch_size=1, num_heads=2),
    "sa_p3": lambda: nk.SelfAttentivePooling2D(2, patch_size=3, num_heads=2),
    "sa_pool3_patch2": lambda: nk.SelfAttentivePooling2D(3, patch_size=2, num_heads=2),
    "lip": lambda: nk.LocalImportancePooling2D(2),
    "lip_pool3_gate12": lambda: nk.LocalImportancePooling2D(3, gate_scale=12.0),
    "soft_same_divisible": lambda: nk.SoftPooling2D(3, padding="same"),
    "soft": lambda: nk.SoftPooling2D(2),
    "gaussian": lambda: nk.GaussianPooling2D(2),
    "gaussian_pool3": lambda: nk.GaussianPooling2D(3),
    # 15 x 15 input: padded border windows ("same"), computed region by region
    "sa_p3_same_padded": lambda: nk.SelfAttentivePooling2D(2, padding="same", patch_size=3, num_heads=2),
    "lip_same_padded": lambda: nk.LocalImportancePooling2D(2, padding="same"),
    "soft_pool4_same_padded": lambda: nk.SoftPooling2D(4, padding="same"),
    "gaussian_same_padded": lambda: nk.GaussianPooling2D(2, padding="same"),
}


def _tiny_model(pool, size=30):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, -1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)  # 15 x 15: odd
    x = pool(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


@pytest.fixture(scope="module")
def images(real_images):
    return real_images[0][:, 1:31, 1:31].astype("float32")


@pytest.mark.parametrize("name", sorted(DEPLOYABLE))
def test_tflm_matches_tflite_within_one_lsb(name, images):
    model = _tiny_model(DEPLOYABLE[name]())
    randomize(model.layers[3], seed=1) if model.layers[3].weights else None
    flatbuffer = to_int8_tflite(model, images[:16])
    micro = TFLMModel(flatbuffer)
    quantized = quantize(images, micro.input_details)
    tflm = micro.invoke_quantized(quantized).astype(int)
    tflite = tflite_reference_outputs(flatbuffer, quantized).astype(int)
    assert np.abs(tflm - tflite).max() <= 1
    assert micro.arena_bytes > 0
    # and the int8 model follows the float model on these real images
    float_out = model.predict(images, verbose=0)
    agreement = np.mean(float_out.argmax(1) == tflm.argmax(1))
    assert agreement >= 0.7, agreement


def test_large_position_table_deploys_without_broadcast_to(real_images):
    # a 16 x 16 token grid with E = 32: the converter leaves a table this size unfolded
    images = real_images[0].astype("float32")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, -1.0)(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    pool = nk.SelfAttentivePooling2D(2, patch_size=1, name="pool")
    x = keras.layers.GlobalAveragePooling2D()(pool(x))
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    randomize(pool, seed=2)
    flatbuffer = to_int8_tflite(model, images[:16])
    ops, problems = preflight(flatbuffer)
    assert problems == [] and "BROADCAST_TO" not in ops
    micro = TFLMModel(flatbuffer)
    quantized = quantize(images, micro.input_details)
    assert (
        np.abs(micro.invoke_quantized(quantized).astype(int) - tflite_reference_outputs(flatbuffer, quantized)).max()
        <= 1
    )


def test_deployable_graph_has_no_exp(images):
    import tensorflow as tf

    flatbuffer = to_int8_tflite(_tiny_model(DEPLOYABLE["sa_p3"]()), images[:4])
    interpreter = tf.lite.Interpreter(
        model_content=flatbuffer, experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF
    )
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "EXP" not in ops and {"SOFTMAX", "BATCH_MATMUL", "TRANSPOSE"} <= ops
    # the 3 x 3 repeat of the token logits: copies, not RESIZE_NEAREST_NEIGHBOR's per-position float index
    assert "BROADCAST_TO" in ops and "RESIZE_NEAREST_NEIGHBOR" not in ops


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda: nk.SelfAttentivePooling2D(3, strides=2, name="overlap"), "pool_size=(3, 3) differs from strides"),
        (lambda: nk.SelfAttentivePooling2D(2, window_norm=False, name="plain"), "window_norm=False needs EXP"),
        (lambda: nk.GaussianPooling2D(3, strides=2, name="gauss"), "differs from strides"),
    ],
)
def test_non_deployable_layers_fail_export_clearly(make, reason, images):
    layer = make()
    model = _tiny_model(layer)
    with pytest.raises(ValueError, match="cannot be exported to int8") as error:
        to_int8_tflite(model, images[:2])
    assert f"layer '{layer.name}'" in str(error.value) and reason in str(error.value)
    assert model.predict(images[:2], verbose=0).shape == (2, 10)  # still a working Keras model


@pytest.mark.parametrize("row", [MAX_INT8_TOKENS, MAX_INT8_TOKENS + 1])
def test_tflm_int8_softmax_holds_rows_up_to_the_attention_limit(row):
    # equal logits, the flattest attention row: TFLM's int8 SOFTMAX aborts from 512 entries on
    inputs = keras.Input((row,))
    model = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Dense(row, kernel_initializer="identity")(inputs)))
    flatbuffer = to_int8_tflite(model, np.random.default_rng(0).uniform(-4, 4, (8, row)))
    if row <= MAX_INT8_TOKENS:
        weights = run_tflm(flatbuffer, np.zeros((1, row), np.int8)).outputs.astype(int) + 128  # steps of 1/256
        assert np.all(weights == round(256 / row))
    else:
        with pytest.raises(TFLMError, match="crashed"):
            run_tflm(flatbuffer, np.zeros((1, row), np.int8))


@pytest.mark.parametrize("spatial,tokens", [((7, 73), MAX_INT8_TOKENS), ((8, 64), MAX_INT8_TOKENS + 1)])
def test_attention_token_limit_is_inclusive(spatial, tokens):
    # patch 1: a token per position; 7 x 73 = 511 tokens may deploy, 8 x 64 = 512 may not
    pool = nk.SelfAttentivePooling2D(2, patch_size=1, num_heads=1, padding="same", name="edge")
    inputs = keras.Input((*spatial, 4))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(pool(inputs)))
    assert pool.grid == spatial
    blockers = int8_blockers(model)
    if tokens <= MAX_INT8_TOKENS:
        assert blockers == {}
    else:
        assert list(blockers) == ["edge"] and f"attention over {tokens} tokens" in blockers["edge"]


def test_attention_over_too_many_tokens_fails_export_clearly(real_images):
    images = real_images[0][:2, :48, :48].astype("float32")
    pool = nk.SelfAttentivePooling2D(2, patch_size=1, num_heads=2, name="wide")
    model = _tiny_model(pool, size=48)  # a 24 x 24 map: 576 tokens
    with pytest.raises(ValueError, match="layer 'wide': attention over 576 tokens .* at most 511 tokens"):
        to_int8_tflite(model, images)
