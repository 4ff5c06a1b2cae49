"""Each layer agrees with the NumPy equations in tests/reference.py (inference mode)."""

import numpy as np
import pytest

import nlpool_keras as nk
from nlpool_keras.layers.self_attentive import nearest_indices
from tests import reference as ref
from tests.conftest import randomize, sub_weights

SHAPES = [(2, 8, 8, 6), (1, 9, 7, 5), (2, 12, 10, 4)]
WINDOWS = [((2, 2), (2, 2), "valid"), ((2, 2), (2, 2), "same"), ((3, 3), (2, 2), "same"), ((3, 2), (1, 2), "valid")]


def _input(shape, seed=1):
    return np.random.default_rng(seed).normal(0, 1, shape).astype("float32")


def _check(out, expected):
    np.testing.assert_allclose(np.asarray(out, "float64"), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pool,strides,padding", WINDOWS)
@pytest.mark.parametrize("patch,heads,window_norm", [(1, 1, True), (2, 2, False), (3, 2, True), (1, 4, True)])
def test_self_attentive_matches_numpy(shape, pool, strides, padding, patch, heads, window_norm):
    x = _input(shape)
    layer = nk.SelfAttentivePooling2D(
        pool, strides, padding, patch_size=patch, num_heads=heads, window_norm=window_norm
    )
    layer.build(shape)
    randomize(layer)
    w = sub_weights(
        layer, "embed_conv", "embed_bn", "query", "key", "value", "attention_output", "restore_conv", "restore_bn"
    )
    w["column"] = np.asarray(layer.column_embedding, "float64")
    w["row"] = np.asarray(layer.row_embedding, "float64")
    expected = ref.self_attentive_pool(x.astype("float64"), w, pool, strides, padding, patch, heads, window_norm)
    _check(layer(x, training=False), expected)


# PyTorch's F.interpolate(mode="nearest") source indices, written out: 6 -> 13, 3 -> 7, 7 -> 15
TORCH_NEAREST = {
    (13, 6): [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
    (7, 3): [0, 0, 0, 1, 1, 2, 2],
    (15, 7): [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6],
}


@pytest.mark.parametrize("size,grid", list(TORCH_NEAREST))
def test_nearest_indices_are_pytorchs(size, grid):
    assert list(nearest_indices(size, grid)) == TORCH_NEAREST[size, grid]
    assert ref.torch_nearest_rows(size, grid) == TORCH_NEAREST[size, grid]


@pytest.mark.parametrize(
    "shape,patch", [((2, 15, 15, 4), 2), ((1, 13, 11, 3), 3), ((1, 9, 7, 5), 4), ((1, 8, 8, 4), 2)]
)
def test_self_attentive_floor_token_grid_matches_the_authors_equations(shape, patch):
    """Maps a patch does not divide: floor(h/p) tokens, logits interpolated back (nearest)."""
    x = _input(shape)
    layer = nk.SelfAttentivePooling2D(2, patch_size=patch, num_heads=2, padding="same", token_grid="floor")
    layer.build(shape)
    assert layer.grid == (shape[1] // patch, shape[2] // patch)
    randomize(layer)
    w = sub_weights(
        layer, "embed_conv", "embed_bn", "query", "key", "value", "attention_output", "restore_conv", "restore_bn"
    )
    w["column"] = np.asarray(layer.column_embedding, "float64")
    w["row"] = np.asarray(layer.row_embedding, "float64")
    expected = ref.self_attentive_pool(
        x.astype("float64"), w, (2, 2), (2, 2), "same", patch, 2, True, token_grid="floor"
    )
    _check(layer(x, training=False), expected)


def test_self_attentive_odd_embedding_and_no_position():
    x = _input((1, 6, 6, 5))
    layer = nk.SelfAttentivePooling2D(2, patch_size=1, num_heads=1, position_encoding=None)
    layer.build(x.shape)
    randomize(layer, seed=3)
    assert not hasattr(layer, "column_embedding")
    w = sub_weights(
        layer, "embed_conv", "embed_bn", "query", "key", "value", "attention_output", "restore_conv", "restore_bn"
    )
    _check(
        layer(x), ref.self_attentive_pool(x.astype("float64"), w, (2, 2), (2, 2), "valid", 1, 1, True, position=False)
    )
    odd = nk.SelfAttentivePooling2D(2, num_heads=1)
    odd.build((1, 6, 6, 5))  # E = 5: column table 2 wide, row table 3 wide
    assert tuple(odd.column_embedding.shape) == (6, 2) and tuple(odd.row_embedding.shape) == (6, 3)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pool,strides,padding", WINDOWS)
@pytest.mark.parametrize("gate_scale,window_norm", [(1.0, True), (12.0, True), (1.0, False)])
def test_local_importance_matches_numpy(shape, pool, strides, padding, gate_scale, window_norm):
    x = _input(shape)
    layer = nk.LocalImportancePooling2D(pool, strides, padding, gate_scale=gate_scale, window_norm=window_norm)
    layer.build(shape)
    randomize(layer)
    w = sub_weights(layer, "logit_conv", "logit_bn")
    _check(layer(x), ref.local_importance_pool(x.astype("float64"), w, pool, strides, padding, gate_scale, window_norm))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pool,strides,padding", WINDOWS)
def test_soft_pool_matches_numpy(shape, pool, strides, padding):
    x = _input(shape) * 3.0
    _check(nk.SoftPooling2D(pool, strides, padding)(x), ref.soft_pool(x.astype("float64"), pool, strides, padding))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pool,strides,padding", WINDOWS)
def test_gaussian_pool_matches_numpy(shape, pool, strides, padding):
    x = _input(shape)
    layer = nk.GaussianPooling2D(pool, strides, padding)
    layer.build(shape)
    randomize(layer)
    w = sub_weights(layer, "squeeze_conv", "squeeze_bn", "mean_conv", "mean_bn")
    _check(layer(x, training=False), ref.gaussian_pool(x.astype("float64"), w, pool, strides, padding, 1e-6))


def test_gaussian_pool_is_stochastic_only_in_training():
    x = _input((2, 8, 8, 4))
    layer = nk.GaussianPooling2D(2, seed=1)
    a, b = layer(x, training=True), layer(x, training=True)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(layer(x, training=False), layer(x, training=False))
