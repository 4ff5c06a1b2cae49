"""tf_keras copies of Keras 3 models and TF-MOT quantization-aware training of the pooling layers."""

import keras
import numpy as np
import pytest

import nlpool_keras as nk
from nlpool_keras.export import compressed_sizes, to_int8_tflite
from nlpool_keras.export.preflight import preflight
from nlpool_keras.optimize.legacy import to_tf_keras
from nlpool_keras.optimize.qat import quantize_aware
from nlpool_keras.tflm.child import run_tflm
from nlpool_keras.tflm.interpreter import quantize
from nlpool_keras.tflm.validate import input_details
from tests.conftest import randomize

POOLS = {
    "sa": lambda: nk.SelfAttentivePooling2D(2, patch_size=3, num_heads=2, name="pool"),
    "lip": lambda: nk.LocalImportancePooling2D(2, name="pool"),
    "gaussian": lambda: nk.GaussianPooling2D(2, name="pool"),
    "softpool": lambda: nk.SoftPooling2D(2, name="pool"),
}


def _sequential(pool):
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1.0),
            keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            pool,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )


def _weighted_cnn(first, second, second_name):
    """Two convolutions around a self-attentive pooling layer, and a dense head: kernels to prune or cluster."""
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1.0),
            keras.layers.Conv2D(first, 3, strides=2, padding="same", activation="relu", name="conv"),
            nk.SelfAttentivePooling2D(2, patch_size=3, num_heads=2, name="pool"),
            keras.layers.Conv2D(second, 3, padding="same", activation="relu", name=second_name),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, name="head"),
        ]
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: _sequential(POOLS["sa"]()),
        lambda: nk.build_mbv2_sa((48, 48, 3), alpha=0.35, downsample="lip", strides="2222121", classes=10),
    ],
    ids=["sequential", "zoo"],
)
def test_tf_keras_copy_computes_the_same(make, images):
    model = make()
    for layer in model.layers:
        randomize(layer, seed=3) if isinstance(layer, nk.LocalImportancePooling2D | nk.SelfAttentivePooling2D) else None
    copy = to_tf_keras(model)
    assert type(copy).__module__.startswith("tf_keras")
    assert [layer.name for layer in copy.layers if layer.weights] == [
        layer.name for layer in model.layers if layer.weights
    ]
    x = images[0][:8] if model.input_shape[1] == 32 else np.resize(images[0][:8], (8, 48, 48, 3))
    np.testing.assert_allclose(copy.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("kind", sorted(POOLS))
def test_fake_quantizers_sit_on_every_internal_tensor(kind, images):
    import tf_keras

    qat = quantize_aware(_sequential(POOLS[kind]()))
    wrapper = qat.get_layer("quant_pool")
    layer = wrapper.layer
    assert sorted(layer.quant_hooks) == sorted(layer.QUANT_POINTS)
    ranges = [w for w in wrapper.weights if "post_activation" in w.name]
    assert len(ranges) == 2 * len(layer.QUANT_POINTS)  # a min and a max each
    before = [float(w.numpy()) for w in ranges]
    qat.compile(tf_keras.optimizers.SGD(0.0), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(images[0][:16], images[1][:16], batch_size=8, epochs=1, verbose=0)
    after = [float(w.numpy()) for w in ranges]
    moved = [b != a for b, a in zip(before, after, strict=True)]
    # every quantizer saw a tensor during training: its (min, max) left the initial (-6, 6)
    assert all(moved[i] or moved[i + 1] for i in range(0, len(moved), 2)), moved


def test_qat_model_fine_tunes_and_exports_to_tflm(images):
    import tf_keras

    qat = quantize_aware(_sequential(POOLS["sa"]()))
    qat.compile(tf_keras.optimizers.Adam(1e-3), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = qat.fit(images[0], images[1], batch_size=8, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(history).all()
    flatbuffer = to_int8_tflite(qat, images[0][:16])
    ops, problems = preflight(flatbuffer)
    assert problems == [] and {"SOFTMAX", "BATCH_MATMUL"} <= set(ops)
    outputs, arena, seconds = run_tflm(flatbuffer, quantize(images[0][:4], input_details(flatbuffer)))
    assert outputs.shape == (4, 10) and arena > 0 and seconds > 0


def test_magnitude_pruning_reaches_its_sparsity_and_compresses(images):
    import tf_keras

    from nlpool_keras.optimize.pruning import prune_magnitude, pruning_callbacks, sparsity_report, strip_pruning

    model = _weighted_cnn(32, 64, "conv2")
    dense_flatbuffer = to_int8_tflite(model, images[0][:16])
    pruned = prune_magnitude(model, final_sparsity=0.75, end_step=8, frequency=2)
    assert {layer.name for layer in pruned.layers if "prune_low_magnitude" in layer.name} == {
        "prune_low_magnitude_conv",
        "prune_low_magnitude_conv2",
        "prune_low_magnitude_head",
    }
    pruned.compile(tf_keras.optimizers.Adam(1e-3), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(images[0], images[1], batch_size=4, epochs=1, callbacks=pruning_callbacks(), verbose=0)
    stripped = strip_pruning(pruned)
    report = sparsity_report(stripped)
    for row in report["kernels"]:
        assert row["zeros"] / row["weights"] == pytest.approx(0.75, abs=0.01), row
    pruned, dense = compressed_sizes(to_int8_tflite(stripped, images[0][:16])), compressed_sizes(dense_flatbuffer)
    assert pruned["gzip_bytes"] < 0.8 * dense["gzip_bytes"]
    with pytest.raises(ValueError, match="final_sparsity must be in"):
        prune_magnitude(model, final_sparsity=1.5)


def test_calibrated_ranges_bring_the_int8_model_to_the_float_one(images):
    from nlpool_keras.optimize.qat import calibrate_ranges
    from nlpool_keras.tflm import TFLMModel

    keras.utils.set_random_seed(0)
    model = _sequential(POOLS["sa"]())
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images[0], images[1], epochs=5, verbose=0)
    reference = model.predict(images[0], verbose=0)
    errors = {}
    for calibrated in (False, True):
        qat = quantize_aware(model)
        if calibrated:
            calibrate_ranges(qat, [images[0][i : i + 8] for i in range(0, 40, 8)])
        int8 = TFLMModel(to_int8_tflite(qat, images[0][:16])).predict(images[0])
        errors[calibrated] = float(np.abs(int8 - reference).max())
    # TF-MOT's initial (-6, 6) ranges quantize logits of about +-0.5 coarsely; data ranges do not
    assert errors[True] < 0.25 * errors[False], errors


def test_channel_pruning_removes_dead_channels_exactly(images):
    from nlpool_keras.optimize.channels import prune_channels

    model = nk.build_mbv2_sa((32, 32, 3), alpha=0.35, strides="2222121", classes=10, classifier_activation=None)
    rng = np.random.default_rng(0)
    dead = {}
    for layer in model.layers:  # give every BatchNormalization real statistics, then kill 40 % of each block's channels
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n), rng.uniform(0.5, 2, n)]
            )
    for layer in model.layers:
        if layer.name.endswith("_expand_BN"):
            prefix = layer.name[: -len("expand_BN")]
            n = layer.gamma.shape[0]
            dead[prefix] = rng.permutation(n)[: int(round(0.4 * n))]
            for name in ("expand_BN", "depthwise_BN"):
                bn = model.get_layer(prefix + name)
                gamma, beta, mean, var = bn.get_weights()
                gamma[dead[prefix]], beta[dead[prefix]] = 0.0, 0.0  # the channel is 0 after each ReLU6
                mean[dead[prefix]] = 0.0 if name == "depthwise_BN" else mean[dead[prefix]]
                bn.set_weights([gamma, beta, mean, var])
    thinner, kept = prune_channels(model, fraction=0.4)
    for prefix, keep in kept.items():
        assert not set(keep) & set(dead[prefix].tolist())
        assert thinner.get_layer(prefix + "expand").filters == len(keep)
    assert thinner.count_params() < model.count_params()
    x = images[0][:8]
    np.testing.assert_allclose(thinner.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)
    with pytest.raises(ValueError, match="fraction must be in"):
        prune_channels(model, fraction=1.0)


def test_clustered_kernels_lut_compress_without_changing_tflm_outputs(images):
    import tensorflow as tf
    import tf_keras

    from nlpool_keras.export.lut import lut_compress
    from nlpool_keras.optimize.pruning import cluster_weights, sparsity_report, strip_clustering

    model = _weighted_cnn(16, 48, "wide")
    clustered = cluster_weights(model, clusters=8)
    clustered.compile(tf_keras.optimizers.Adam(1e-4), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    clustered.fit(images[0][:32], images[1][:32], batch_size=8, epochs=1, verbose=0)
    stripped = strip_clustering(clustered)
    for name in ("conv", "wide", "head"):
        assert len(np.unique(stripped.get_layer(name).kernel.numpy())) <= 8, name
    flatbuffer = to_int8_tflite(stripped, images[0][:16])
    compressed, rows = lut_compress(flatbuffer)

    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    (wide,) = [t for t in interpreter.get_tensor_details() if tuple(t["shape"]) == (48, 3, 3, 16)]
    kernel = interpreter.get_tensor(wide["index"])  # (out, kh, kw, in), one table per output channel
    distinct = max(len(np.unique(channel)) for channel in kernel)
    (row,) = [r for r in rows if r["tensor"] == wide["name"]]
    assert row["compressed"] and row["channels"] == 48
    assert 2 ** (row["index_bits"] - 1) < distinct <= 2 ** row["index_bits"]
    assert row["lut_bytes"] < row["int8_bytes"] == kernel.size
    assert len(compressed) < len(flatbuffer)
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    assert "TFLM_DECODE" in {op.opcode_name for op in model_editor.read(compressed).subgraphs[0].operators}

    inputs = quantize(images[0][:3], input_details(flatbuffer))
    plain, packed = run_tflm(flatbuffer, inputs), run_tflm(compressed, inputs)
    np.testing.assert_array_equal(packed.outputs, plain.outputs)

    sizes = compressed_sizes(flatbuffer)
    assert compressed_sizes(flatbuffer, (compressed, rows)) == sizes
    assert sizes["lut_bytes"] == len(compressed) and sizes["flash_bytes"] == len(flatbuffer)
    assert sizes["lut_tensors"] == sum(r["compressed"] for r in rows) > 0
    assert all(row["distinct"] <= 8 for row in sparsity_report(stripped)["kernels"])
    with pytest.raises(ValueError, match="clusters must be in 2..128"):
        cluster_weights(model, clusters=200)
    with pytest.raises(ValueError, match="max_index_bits must be in 1..7"):
        lut_compress(flatbuffer, max_index_bits=8)
