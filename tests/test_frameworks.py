"""The same layer source on Keras 3, tf_keras and the JAX backend."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import nlpool_keras as nk
from tests.conftest import randomize

LAYERS = [
    ("SelfAttentivePooling2D", dict(pool_size=2, padding="same", patch_size=3, num_heads=2, window_norm=True)),
    ("SelfAttentivePooling2D", dict(pool_size=3, strides=2, patch_size=1, num_heads=1, window_norm=False)),
    ("LocalImportancePooling2D", dict(pool_size=2, gate_scale=12.0)),
    ("GaussianPooling2D", dict(pool_size=2, padding="same")),
    ("SoftPooling2D", dict(pool_size=3, strides=2, padding="same")),
]


def _pair(name, kwargs, shape=(2, 9, 9, 4)):
    k3 = nk.get_layer_class(name, "keras")(**kwargs, name="pool")
    k2 = nk.get_layer_class(name, "tf_keras")(**kwargs, name="pool")
    k3.build(shape)
    k2.build(shape)
    randomize(k3, seed=4)
    k2.set_weights(k3.get_weights())
    return k3, k2


@pytest.mark.parametrize("name,kwargs", LAYERS)
def test_tf_keras_twin_gives_same_outputs(name, kwargs):
    k3, k2 = _pair(name, kwargs)
    assert [w.shape for w in k3.get_weights()] == [w.shape for w in k2.get_weights()]
    x = np.random.default_rng(0).normal(0, 1, (2, 9, 9, 4)).astype("float32")
    np.testing.assert_allclose(k3(x, training=False), k2(x, training=False), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,kwargs", LAYERS)
def test_tf_keras_save_load_round_trip(name, kwargs, tmp_path):
    import tf_keras

    layer = nk.get_layer_class(name, "tf_keras")(**kwargs)
    inputs = tf_keras.Input((9, 9, 4))
    model = tf_keras.Model(inputs, layer(tf_keras.layers.Conv2D(4, 3, padding="same")(inputs)))
    randomize(model, seed=5)
    x = np.random.default_rng(1).normal(0, 1, (3, 9, 9, 4)).astype("float32")
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = tf_keras.models.load_model(path)
    assert type(loaded.layers[-1]) is type(layer)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_unknown_framework_is_refused():
    with pytest.raises(ValueError, match="framework='torch'"):
        nk.get_layer_class("SoftPooling2D", "torch")


JAX_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    import nlpool_keras as nk
    assert keras.backend.backend() == "jax"
    assert "tensorflow" not in sys.modules, "the layers must not import TensorFlow under JAX"
    keras.utils.set_random_seed(0)  # the same initial weights on every run
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        keras.layers.Conv2D(8, 3, padding="same"),
        nk.SelfAttentivePooling2D(2, patch_size=2, padding="same", num_heads=2, window_norm=True),
        nk.LocalImportancePooling2D(3, strides=2, padding="same"),
        nk.GaussianPooling2D(2, padding="same", seed=0),
        nk.SoftPooling2D(1),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 12, 12, 3)).astype("float32"), rng.integers(0, 3, 8)
    history = model.fit(x, y, epochs=8, batch_size=4, verbose=0)
    np.save(sys.argv[1], np.array(history.history["loss"]))
    np.save(sys.argv[2], model.predict(x, verbose=0))
    model.save(sys.argv[3])
    """
)


def test_model_trains_under_jax_backend(tmp_path):
    losses, outputs, saved = (os.path.join(tmp_path, f) for f in ("loss.npy", "out.npy", "m.keras"))
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, losses, outputs, saved], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loss = np.load(losses)
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0]
    # the model saved under JAX loads under TensorFlow and gives the same outputs
    loaded = keras.saving.load_model(saved)
    x = np.random.default_rng(0).normal(size=(8, 12, 12, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), np.load(outputs), rtol=1e-4, atol=1e-4)
