"""Configuration, saving, errors, dtypes and compilation of the Keras 3 layers."""

import os
import warnings

import keras
import numpy as np
import pytest

import nlpool_keras as nk
from tests.conftest import randomize

CONFIGS = [
    (
        nk.SelfAttentivePooling2D,
        dict(
            pool_size=(2, 3),
            strides=2,
            padding="same",
            patch_size=2,
            num_heads=3,
            embed_ratio=0.5,
            window_norm=False,
            position_encoding=None,
        ),
    ),
    (nk.LocalImportancePooling2D, dict(pool_size=3, strides=2, padding="same", gate_scale=12.0, window_norm=False)),
    (nk.GaussianPooling2D, dict(pool_size=2, strides=1, padding="valid", epsilon=1e-4, seed=7)),
    (nk.SoftPooling2D, dict(pool_size=(2, 2), strides=(1, 2), padding="same")),
]


@pytest.mark.parametrize("cls,kwargs", CONFIGS)
def test_get_config_mirrors_constructor(cls, kwargs):
    layer = cls(**kwargs, name="pool")
    config = layer.get_config()
    for key, value in kwargs.items():
        expected = (value, value) if key in ("pool_size", "strides") and isinstance(value, int) else value
        assert config[key] == (tuple(expected) if isinstance(expected, tuple) else expected), key
    clone = cls.from_config(config)
    assert clone.get_config() == config


def _model(layer, shape=(10, 10, 6)):
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(keras.layers.Conv2D(6, 3, padding="same")(inputs)))


@pytest.mark.parametrize("cls,kwargs", CONFIGS)
def test_keras_file_round_trip(cls, kwargs, tmp_path):
    model = _model(cls(**kwargs))
    randomize(model)
    x = np.random.default_rng(0).normal(0, 1, (3, 10, 10, 6)).astype("float32")
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.layers[-1]) is cls
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize("cls,kwargs", CONFIGS)
def test_any_batch_size_and_declared_output_shape(cls, kwargs, batch):
    model = _model(cls(**kwargs))
    x = np.zeros((batch, 10, 10, 6), "float32")
    out = model.predict(x, verbose=0, batch_size=batch)
    assert out.shape == (batch,) + tuple(model.output_shape[1:])


@pytest.mark.parametrize("cls,kwargs", CONFIGS)
def test_jit_compile_matches_eager(cls, kwargs):
    model = _model(cls(**kwargs))
    randomize(model)
    x = np.random.default_rng(0).normal(0, 1, (2, 10, 10, 6)).astype("float32")
    model.compile(jit_compile=True)
    eager = np.asarray(model(x, training=False))
    # XLA reorders float32 sums: compare at float32 precision of the output's scale
    np.testing.assert_allclose(model.predict(x, verbose=0), eager, atol=1e-5 * np.abs(eager).max())


MIXED_CONFIGS = [
    (nk.SelfAttentivePooling2D, dict(pool_size=2, padding="same", patch_size=3, num_heads=2)),
    (nk.LocalImportancePooling2D, dict(pool_size=3, strides=2, padding="same")),
    (nk.GaussianPooling2D, dict(pool_size=2)),
    (nk.SoftPooling2D, dict(pool_size=2, padding="same")),
]


@pytest.mark.parametrize("cls,kwargs", MIXED_CONFIGS)
def test_mixed_precision_policy(cls, kwargs):
    layer = cls(**kwargs, dtype="mixed_float16")
    x = np.random.default_rng(0).normal(0, 1, (2, 10, 10, 6)).astype("float32")
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float16" and np.all(np.isfinite(np.asarray(y)))
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in layer.weights)
    full = cls.from_config({**layer.get_config(), "dtype": "float32"})
    full.build(x.shape)
    full.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x, training=False), full(x, training=False), atol=0.05, rtol=0.02)


def test_sequential_drop_in():
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, padding="same"), nk.SelfAttentivePooling2D(2, num_heads=2)]
    )
    assert model.output_shape == (None, 8, 8, 8)


BAD_ARGUMENTS = [
    (nk.SelfAttentivePooling2D, dict(pool_size=0), "pool_size=0"),
    (nk.SelfAttentivePooling2D, dict(pool_size=(2, -1)), "pool_size=(2, -1)"),
    (nk.SelfAttentivePooling2D, dict(strides="2"), "strides='2'"),
    (nk.SelfAttentivePooling2D, dict(padding="full"), "padding='full'"),
    (nk.SelfAttentivePooling2D, dict(patch_size=0), "patch_size=0"),
    (nk.SelfAttentivePooling2D, dict(num_heads=-2), "num_heads=-2"),
    (nk.SelfAttentivePooling2D, dict(embed_ratio=0), "embed_ratio=0"),
    (nk.SelfAttentivePooling2D, dict(window_norm="yes"), "window_norm='yes'"),
    (nk.SelfAttentivePooling2D, dict(position_encoding="sine"), "position_encoding='sine'"),
    (nk.SelfAttentivePooling2D, dict(data_format="channels_first"), "data_format='channels_first'"),
    (nk.LocalImportancePooling2D, dict(gate_scale=-1.0), "gate_scale=-1.0"),
    (nk.GaussianPooling2D, dict(epsilon=0.0), "epsilon=0.0"),
    (nk.GaussianPooling2D, dict(seed="a"), "seed='a'"),
    (nk.SoftPooling2D, dict(pool_size=2.5), "pool_size=2.5"),
]


@pytest.mark.parametrize("cls,kwargs,received", BAD_ARGUMENTS)
def test_bad_arguments_name_layer_argument_and_value(cls, kwargs, received):
    with pytest.raises(ValueError) as error:
        cls(**kwargs, name="bad_pool")
    message = str(error.value)
    assert cls.__name__ in message and "bad_pool" in message and received in message


BAD_INPUTS = [
    (lambda: nk.SoftPooling2D(2), (2, 8, 8), "4-D"),
    (lambda: nk.LocalImportancePooling2D(4), (1, 3, 8, 2), "larger than the input height"),
    (lambda: nk.SelfAttentivePooling2D(2), (1, None, 8, 2), "static height and width"),
    (lambda: nk.SelfAttentivePooling2D(2, num_heads=8), (1, 8, 8, 4), "num_heads=8"),
    (lambda: nk.GaussianPooling2D(2), (1, 8, 8, None), "channel dimension"),
]


@pytest.mark.parametrize("make,shape,fragment", BAD_INPUTS)
def test_incompatible_inputs_raise(make, shape, fragment):
    layer = make()
    with pytest.raises(ValueError, match=fragment) as error:
        layer.build(shape)
    assert type(layer).__name__ in str(error.value)


def test_average_pooling_degeneracy_warns():
    with pytest.warns(UserWarning, match="exactly average pooling"):
        nk.SelfAttentivePooling2D(2, patch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nk.SelfAttentivePooling2D(2, patch_size=3)
        nk.SelfAttentivePooling2D(2, patch_size=4, window_norm=False)
        nk.SelfAttentivePooling2D(3, strides=2, patch_size=3)


def test_sequential_trains_on_real_images(real_images):
    images, labels = real_images
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1.0),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            nk.SelfAttentivePooling2D(2, patch_size=3, num_heads=2),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            nk.SelfAttentivePooling2D(2, num_heads=2),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = images.astype("float32")
    before = model.evaluate(x, labels, verbose=0)
    history = model.fit(x, labels, batch_size=20, epochs=20, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.evaluate(x, labels, verbose=0) < 0.9 * before  # it learns the 40 real images
