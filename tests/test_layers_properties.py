"""Properties that hold for any input (hypothesis) and gradient flow."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nlpool_keras as nk
from tests.conftest import randomize

WINDOW_NORMED = {
    "sa": lambda k, s, pad: nk.SelfAttentivePooling2D(k, s, pad, patch_size=1, num_heads=1),
    "sa_patch2": lambda k, s, pad: nk.SelfAttentivePooling2D(k, s, pad, patch_size=2, num_heads=2),
    "lip": lambda k, s, pad: nk.LocalImportancePooling2D(k, s, pad),
    "lip12": lambda k, s, pad: nk.LocalImportancePooling2D(k, s, pad, gate_scale=12.0),
    "soft": lambda k, s, pad: nk.SoftPooling2D(k, s, pad),
}


def _window_bounds(x, k, s, padding):
    """Per-window min and max over the valid cells, via Keras' own max pooling."""
    upper = keras.layers.MaxPooling2D(k, s, padding)(x)
    lower = -keras.layers.MaxPooling2D(k, s, padding)(-x)
    return np.asarray(lower), np.asarray(upper)


window_args = st.tuples(
    st.integers(1, 3), st.integers(1, 3), st.sampled_from(["valid", "same"]), st.integers(3, 9), st.integers(3, 9)
)


@settings(max_examples=15, deadline=None)
@given(args=window_args, name=st.sampled_from(sorted(WINDOW_NORMED)), seed=st.integers(0, 10_000))
def test_window_normalised_output_lies_within_window_range(args, name, seed):
    k, s, padding, h, w = args
    x = np.random.default_rng(seed).normal(0, 2, (2, h, w, 4)).astype("float32")
    layer = WINDOW_NORMED[name](k, s, padding)
    layer.build(x.shape)
    randomize(layer, seed)
    y = np.asarray(layer(x))
    lower, upper = _window_bounds(x, k, s, padding)
    assert y.shape == lower.shape
    assert np.all(y >= lower - 1e-4) and np.all(y <= upper + 1e-4)


@settings(max_examples=10, deadline=None)
@given(args=window_args, name=st.sampled_from(sorted(WINDOW_NORMED) + ["gaussian"]), value=st.floats(-5, 5))
@example(args=(3, 1, "valid", 3, 3), name="gaussian", value=0.6)  # not blockwise: variance by moments
@example(args=(3, 1, "same", 5, 5), name="gaussian", value=-4.9)
def test_constant_window_gives_the_constant(args, name, value):
    k, s, padding, h, w = args
    x = np.full((1, h, w, 3), value, dtype="float32")
    make = WINDOW_NORMED.get(name, lambda k, s, pad: nk.GaussianPooling2D(k, s, pad, epsilon=1e-12))
    y = np.asarray(make(k, s, padding)(x))
    np.testing.assert_allclose(y, value, atol=1e-4)


@pytest.mark.parametrize("padding,size", [("valid", 8), ("same", 7), ("valid", 9)])
@pytest.mark.parametrize("patch", [1, 3])
def test_all_zero_weights_give_average_pooling(padding, size, patch):
    x = np.random.default_rng(0).normal(0, 1, (2, size, size, 4)).astype("float32")
    layer = nk.SelfAttentivePooling2D(2, padding=padding, patch_size=patch, num_heads=2)
    layer.build(x.shape)
    layer.set_weights([np.zeros(w.shape, "float32") for w in layer.weights])
    expected = keras.layers.AveragePooling2D(2, padding=padding)(x)
    np.testing.assert_allclose(layer(x, training=False), expected, atol=1e-6)


def test_weights_within_a_window_differ_by_at_most_e():
    x = np.random.default_rng(0).normal(0, 1, (1, 8, 8, 4)).astype("float32")
    layer = nk.SelfAttentivePooling2D(2, num_heads=2)
    layer.build(x.shape)
    randomize(layer, 5)
    logits = np.asarray(layer.attention_logits(x))
    weights = np.exp(logits).reshape(1, 4, 2, 4, 2, 4)
    ratio = weights.max(axis=(2, 4)) / weights.min(axis=(2, 4))
    assert np.all(ratio < np.e) and np.all(ratio >= 1.0)


@pytest.mark.parametrize("framework", ["keras", "tf_keras"])
@pytest.mark.parametrize("batch, rows, cols, p", [(1, 3, 4, 3), (2, 5, 2, 2), (3, 1, 1, 4)])
def test_repeat_cells_is_a_nearest_repeat(framework, batch, rows, cols, p):
    from nlpool_keras import frameworks
    from nlpool_keras.layers.self_attentive import repeat_cells

    grid = np.random.default_rng(0).normal(size=(batch, rows, cols, 5)).astype("float32")
    repeated = repeat_cells(frameworks.get(framework).ops, grid, p)
    np.testing.assert_array_equal(np.asarray(repeated), grid.repeat(p, axis=1).repeat(p, axis=2))


# biases whose gradient is zero up to rounding: each reaches a batch normalisation in training
# mode through affine maps only (the batch mean removes it; the attention's weights sum to 1, so
# a value bias passes through unchanged), or adds the same amount to every score of a query
# (the key's; the softmax removes it)
BIASES_WITHOUT_GRADIENT = {
    "key",
    "value",
    "attention_output",
    "embed_conv",
    "restore_conv",  # SelfAttentivePooling2D
    "logit_conv",  # LocalImportancePooling2D
    "squeeze_conv",
    "mean_conv",
    "scale_conv",  # GaussianPooling2D
}


@pytest.mark.parametrize(
    "make",
    [
        lambda: nk.SelfAttentivePooling2D(2, patch_size=2, num_heads=2, window_norm=False),
        lambda: nk.SelfAttentivePooling2D(2, padding="same", num_heads=2),
        lambda: nk.LocalImportancePooling2D(3, 2, "same"),
        lambda: nk.GaussianPooling2D(2, seed=0),
    ],
)
def test_gradients_reach_every_trainable_weight(make):
    """Every weight gets a gradient, except the biases that are zero-gradient by construction
    (`BIASES_WITHOUT_GRADIENT`). A batch of 4: Gaussian pooling normalises pooled vectors over
    the batch, and two samples normalise to ±1 whatever the convolution before."""
    x = tf.constant(np.random.default_rng(0).normal(0, 1, (4, 7, 7, 4)).astype("float32"))
    layer = make()
    layer.build(x.shape)
    randomize(layer, 2)
    target = tf.constant(np.random.default_rng(1).normal(0, 1, layer.compute_output_shape(x.shape)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(x, training=True) - target))
    grads = tape.gradient(loss, [w.value for w in layer.trainable_weights])
    assert len(grads) == len(layer.trainable_weights) > 0 and all(g is not None for g in grads)
    largest = max(float(np.abs(g).max()) for g in grads)
    for weight, grad in zip(layer.trainable_weights, grads, strict=True):
        sublayer, name = weight.path.split("/")[-2:]
        if name == "bias" and sublayer in BIASES_WITHOUT_GRADIENT:
            assert np.abs(grad).max() <= 1e-4 * largest, weight.path
        else:
            assert np.abs(grad).max() > 1e-4 * largest, weight.path
