"""Zoo builders: shapes, keras.applications parity, frameworks, weights and presets."""

import json
import math
import os

import keras
import numpy as np
import pytest

import nlpool_keras as nk
from nlpool_keras.frameworks import transfer_weights
from nlpool_keras.models import weights as weights_lib
from nlpool_keras.models.downsampling import DOWNSAMPLE_KINDS

KINDS = DOWNSAMPLE_KINDS


def _feature_side(size, stem, stage_strides):
    """Side of the last feature map: each stride-s step gives ceil(side / s)."""
    for s in (stem,) + tuple(stage_strides):
        size = math.ceil(size / s)
    return size


def _run(model, size):
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    return model(x, training=False)


@pytest.mark.parametrize("framework", ["keras", "tf_keras"])
@pytest.mark.parametrize("kind", KINDS)
def test_mbv2_every_pattern_and_prepool_builds_and_runs(kind, framework):
    size = 48
    for strides, prepool in [("1222121", None), ("2222121", None), ("4222121", None)] + [
        ("1222121", s) for s in (2, 4, 6, 8)
    ]:
        model = nk.build_mbv2_sa(
            (size, size, 3),
            alpha=0.35,
            downsample=kind,
            strides=strides,
            prepool=prepool,
            include_top=False,
            framework=framework,
        )
        out = np.asarray(_run(model, size))
        side = _feature_side(size, prepool or 2, [int(c) for c in strides])
        assert out.shape == (2, side, side, 1280), (strides, prepool)
        assert np.all(np.isfinite(out))


@pytest.mark.parametrize("framework", ["keras", "tf_keras"])
@pytest.mark.parametrize("kind", KINDS)
def test_resnet18_every_pattern_and_prepool_builds_and_runs(kind, framework):
    size = 32
    for strides, prepool in [("1222", None), ("2222", None), ("4222", None), ("1222", 2), ("1222", 4)]:
        model = nk.build_resnet18_sa(
            (size, size, 3), downsample=kind, strides=strides, prepool=prepool, classes=7, framework=framework
        )
        out = np.asarray(_run(model, size))
        assert out.shape == (2, 7) and np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
        features = model.get_layer("stage4_block2_out").output.shape
        side = _feature_side(size, prepool or 1, [2 if prepool is None else 1, 2] + [int(c) for c in strides])
        assert tuple(features[1:]) == (side, side, 512), (strides, prepool)


@pytest.mark.parametrize("alpha,size", [(0.35, 96), (1.0, 128)])
def test_conv_downsampling_matches_keras_applications(alpha, size):
    ours = nk.build_mbv2_sa((size, size, 3), alpha=alpha, downsample="conv", classes=10)
    reference = keras.applications.MobileNetV2((size, size, 3), alpha=alpha, weights=None, classes=10)

    def shapes(model):
        return [(layer.name, [w.shape for w in layer.get_weights()]) for layer in model.layers if layer.weights]

    assert shapes(ours) == shapes(reference)
    assert ours.count_params() == reference.count_params()
    assert ours.output_shape == reference.output_shape
    # same weights, same function (ours rescales [0, 255] inside; the reference takes [-1, 1])
    transfer_weights(reference, ours)
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    np.testing.assert_allclose(ours(x), reference(x / 127.5 - 1.0), atol=1e-5)
    bare = nk.build_mbv2_sa((size, size, 3), alpha=alpha, downsample="conv", classes=10, include_preprocessing=False)
    transfer_weights(reference, bare)
    assert "rescale" not in [layer.name for layer in bare.layers]
    np.testing.assert_allclose(bare(x / 127.5 - 1.0), reference(x / 127.5 - 1.0), atol=1e-5)


def test_sa_layers_sit_where_the_paper_puts_them():
    model = nk.build_mbv2_sa((96, 96, 3), alpha=0.35, strides="4222121", pool_kwargs={"num_heads": "paper"})
    pools = [layer for layer in model.layers if isinstance(layer, nk.SelfAttentivePooling2D)]
    assert [p.name for p in pools] == ["block_0_pool", "block_1_pool", "block_3_pool", "block_6_pool", "block_13_pool"]
    assert [p.pool_size for p in pools] == [(4, 4), (2, 2), (2, 2), (2, 2), (2, 2)]
    assert model.get_layer("expanded_conv_depthwise").strides == (1, 1)
    assert model.get_layer("block_1_depthwise").strides == (1, 1)
    assert model.get_layer("block_2_depthwise").strides == (1, 1)
    for pool in pools:  # automatic patches keep L <= 144 and avoid the average-pooling degeneracy
        side = pool.input_spatial_shape[0]
        assert math.ceil(side / pool.patch_size) ** 2 <= 144 and pool.patch_size % pool.pool_size[0] != 0
    # the paper's heads 2/4/8/16/64 for these stages, capped at their 8/8/16/24/56 channels
    assert [p.num_heads for p in pools] == [2, 4, 8, 16, 56]


def _lip_params(channels):
    # logits = BatchNorm(Conv1x1(x)): C*C kernel + C bias, then gamma, beta, mean, variance
    return channels * channels + channels + 4 * channels


@pytest.mark.parametrize("kind", ["lip", "sa"])
def test_pooling_before_the_block_pools_its_input(kind):
    after = nk.build_mbv2_sa((96, 96, 3), alpha=0.35, downsample=kind, strides="2222121", classes=10)
    before = nk.build_mbv2_sa(
        (96, 96, 3), alpha=0.35, downsample=kind, strides="2222121", classes=10, placement="before"
    )
    names = ["block_0_pool", "block_1_pool", "block_3_pool", "block_6_pool", "block_13_pool"]
    blocks = ["expanded_conv", "block_1", "block_3", "block_6", "block_13"]
    for pool, block in zip(names, blocks, strict=True):
        first = f"{block}_expand" if block != "expanded_conv" else f"{block}_depthwise"
        # before: the pool reads what fed the block and feeds the block's first conv
        assert before.get_layer(first).input is before.get_layer(pool).output
        producer = before.get_layer(pool).input._keras_history[0].name  # the previous block's output
        assert producer == "Conv1_relu" or producer.endswith(("_project_BN", "_add")), producer
        # after: the pool reads the block's projection (BatchNorm); the block's first conv does not read it
        assert after.get_layer(pool).input is after.get_layer(f"{block}_project_BN").output
        assert after.get_layer(first).input is not after.get_layer(pool).output
        # every block runs at stride 1 in both: the same output size at the pool's stride
        assert before.get_layer(f"{block}_depthwise").strides == (1, 1) == after.get_layer(f"{block}_depthwise").strides
        assert before.get_layer(pool).output.shape[1] == math.ceil(before.get_layer(pool).input.shape[1] / 2)
    # the block's input channels (before) against its output channels (after), alpha 0.35:
    # stem 16 -> stage 0 8 -> stage 1 8 -> stage 2 16 -> stage 3 24 -> stage 5 56 (block 13 reads 32)
    pooled_in, pooled_out = [16, 8, 8, 16, 32], [8, 8, 16, 24, 56]
    assert [before.get_layer(n).input.shape[-1] for n in names] == pooled_in
    assert [after.get_layer(n).input.shape[-1] for n in names] == pooled_out
    assert before.output_shape == after.output_shape == (None, 10)
    if kind == "lip":
        expected = sum(_lip_params(c) for c in pooled_in) - sum(_lip_params(c) for c in pooled_out)
        assert before.count_params() - after.count_params() == expected
    assert before.name.endswith("_before") and not after.name.endswith("_before")


def test_paper_pool_kwargs_name_the_authors_settings():
    model = nk.build_mbv2_sa((96, 96, 3), alpha=0.35, strides="2222121", pool_kwargs="paper", classes=10)
    pools = [layer for layer in model.layers if isinstance(layer, nk.SelfAttentivePooling2D)]
    assert {p.patch_size for p in pools} == {1} and all(p.token_grid == "floor" and p.window_norm for p in pools)
    assert [p.num_heads for p in pools] == [2, 4, 8, 16, 56]  # 2/4/8/16/64 per stage, capped at the channels
    assert [p.grid for p in pools] == [(48, 48), (24, 24), (12, 12), (6, 6), (3, 3)]  # a token per position
    fixed = nk.build_mbv2_sa((96, 96, 3), alpha=0.35, strides="2222121", pool_kwargs="paper-headfix2", classes=10)
    assert {p.num_heads for p in fixed.layers if isinstance(p, nk.SelfAttentivePooling2D)} == {2}


def test_placement_and_per_stage_settings_refuse_what_they_cannot_mean():
    with pytest.raises(ValueError, match="downsample='conv', placement='before'"):
        nk.build_mbv2_sa((96, 96, 3), alpha=0.35, downsample="conv", placement="before", classes=10)
    # the prepool layer belongs to no stage: per-stage heads have no value for it
    with pytest.raises(ValueError, match=r"pool_kwargs\['num_heads'\]='paper' gives one value per stage"):
        nk.build_mbv2_sa((96, 96, 3), alpha=0.35, prepool=2, pool_kwargs="paper", classes=10)
    with pytest.raises(ValueError, match=r"pool_kwargs\['num_heads'\]=\(2, 2, 2, 2, 2, 2, 2\)"):
        nk.build_mbv2_sa((96, 96, 3), alpha=0.35, prepool=2, pool_kwargs={"num_heads": (2,) * 7}, classes=10)


def test_weights_move_between_keras_and_tf_keras(tmp_path):
    k3 = nk.build_mbv2_sa((48, 48, 3), alpha=0.35, strides="2222121", classes=5, classifier_activation=None)
    path = os.path.join(tmp_path, "w.npz")
    digest = nk.save_weights(k3, path)
    assert digest == weights_lib.sha256(path)
    k2 = nk.build_mbv2_sa(
        (48, 48, 3),
        alpha=0.35,
        strides="2222121",
        classes=5,
        classifier_activation=None,
        weights=path,
        framework="tf_keras",
    )
    x = np.random.default_rng(1).uniform(0, 255, (3, 48, 48, 3)).astype("float32")
    np.testing.assert_allclose(k3.predict(x, verbose=0), k2.predict(x, verbose=0), atol=1e-4)


@pytest.fixture
def preset(tmp_path, monkeypatch):
    """A registered preset of a tiny ResNet, trained weights replaced by random ones."""
    arguments = {"input_shape": [32, 32, 3], "downsample": "sa", "strides": "2222"}
    model = nk.build_resnet18_sa(**arguments, classes=4)
    for layer in model.layers:
        layer.set_weights(
            [np.random.default_rng(2).normal(0, 0.1, w.shape).astype("float32") for w in layer.get_weights()]
        )
    digest = nk.save_weights(model, os.path.join(tmp_path, "tiny.npz"))
    manifest = {
        "name": "tiny_resnet_test",
        "builder": "build_resnet18_sa",
        "arguments": arguments,
        "classes": 4,
        "weights_file": "tiny.npz",
        "sha256": digest,
    }
    with open(os.path.join(tmp_path, "tiny_resnet_test.json"), "w") as f:
        json.dump(manifest, f)
    monkeypatch.setattr(weights_lib, "PRESET_DIRECTORIES", [str(tmp_path)])
    return model, tmp_path


def test_preset_loads_with_verified_hash(preset):
    source, _ = preset
    assert nk.list_presets() == ["tiny_resnet_test"] and nk.list_presets("build_mbv2_sa") == []
    model = nk.build_resnet18_sa(weights="tiny_resnet_test")
    x = np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model(x), source(x), atol=1e-6)
    features = nk.build_resnet18_sa(weights="tiny_resnet_test", include_top=False, pooling="avg")
    assert features.output_shape == (None, 512)
    np.testing.assert_array_equal(
        features.get_layer("stage1_block1_conv1").get_weights()[0],
        source.get_layer("stage1_block1_conv1").get_weights()[0],
    )


def test_corrupted_preset_is_refused(preset):
    _, directory = preset
    path = os.path.join(directory, "tiny.npz")
    with open(path, "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="corrupted"):
        nk.build_resnet18_sa(weights="tiny_resnet_test")


def test_preset_argument_conflicts_are_refused(preset):
    with pytest.raises(ValueError, match="classes=7"):
        nk.build_resnet18_sa(weights="tiny_resnet_test", classes=7)
    with pytest.raises(ValueError, match="strides='4222'"):
        nk.build_resnet18_sa(weights="tiny_resnet_test", strides="4222")
    with pytest.raises(ValueError, match="is for build_resnet18_sa"):
        nk.build_mbv2_sa(weights="tiny_resnet_test")


def test_weights_file_of_another_architecture_loads_nothing(preset, tmp_path):
    source, directory = preset
    other = nk.build_resnet18_sa((32, 32, 3), strides="2222", downsample="lip", classes=4)
    before = [w.copy() for w in other.get_weights()]
    with pytest.raises(ValueError, match="nothing was loaded"):
        nk.load_weights(other, os.path.join(directory, "tiny.npz"))
    assert all(np.array_equal(a, b) for a, b in zip(before, other.get_weights(), strict=True))
    wrong_head = nk.build_resnet18_sa((32, 32, 3), strides="2222", classes=9)
    with pytest.raises(ValueError, match="classes differ"):
        nk.load_weights(wrong_head, os.path.join(directory, "tiny.npz"))
    with open(os.path.join(tmp_path, "garbage.npz"), "wb") as f:
        f.write(b"not a zip file")
    with pytest.raises(
        ValueError, match=r"not a weights file: expected an .npz .* found a file starting with b'not a zi"
    ):
        nk.load_weights(wrong_head, os.path.join(tmp_path, "garbage.npz"))


def _randomized(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.mark.parametrize("downsample", ["sa", "max"])
def test_keras_weights_h5_files_load_like_npz(downsample, tmp_path):
    """`weights=` takes Keras 3's own `.weights.h5` (Keras 3 stores layers by position; they
    arrive by name) and a tf_keras `.h5` (by layer name), giving the model that wrote them."""
    from nlpool_keras.frameworks import transfer_weights

    arguments = dict(input_shape=(32, 32, 3), alpha=0.35, downsample=downsample, classes=3)
    source = _randomized(nk.build_mbv2_sa(**arguments), seed=1)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = source.predict(images, verbose=0)
    source.save_weights(tmp_path / "w.weights.h5")
    loaded = nk.build_mbv2_sa(**arguments, weights=str(tmp_path / "w.weights.h5"))
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-6)
    with pytest.raises(ValueError, match="loads into Keras 3 models only"):
        nk.build_mbv2_sa(**arguments, framework="tf_keras", weights=str(tmp_path / "w.weights.h5"))
    with pytest.raises(ValueError, match="does not fit model"):
        nk.build_mbv2_sa(**dict(arguments, classes=4), weights=str(tmp_path / "w.weights.h5"))
    if downsample == "max":  # tf_keras cannot write an .h5 of layers whose sub-layers share weight names
        legacy = nk.build_mbv2_sa(**arguments, framework="tf_keras")
        transfer_weights(source, legacy)
        legacy.save_weights(str(tmp_path / "w.h5"))
        for framework in ("keras", "tf_keras"):
            model = nk.build_mbv2_sa(**arguments, framework=framework, weights=str(tmp_path / "w.h5"))
            np.testing.assert_allclose(np.asarray(model(images)), expected, atol=1e-5)


BAD = [
    (dict(alpha=0), "alpha=0"),
    (dict(downsample="stride"), "downsample='stride'"),
    (dict(strides="122212"), "strides='122212'"),
    (dict(strides="1202121"), "strides='1202121'"),
    (dict(prepool=0), "prepool=0"),
    (dict(pool_kwargs={"heads": 2}), "unknown keys"),
    (dict(pool_kwargs={"num_heads": (2, 4)}), "one value per stage"),
    (dict(pooling="sum", include_top=False), "pooling='sum'"),
    (dict(classes=0), "classes=0"),
    (dict(input_shape=(None, None, 3)), "input_shape=(None, None, 3)"),
    (dict(input_shape=(96, 96, 1)), "input_shape=(96, 96, 1)"),
    (dict(weights="no_such_preset"), "weights='no_such_preset'"),
    (dict(weights="https://example.org/w.npz"), "sha256"),
    (dict(framework="torch"), "framework='torch'"),
    (dict(include_preprocessing="yes"), "include_preprocessing='yes'"),
    (dict(placement="inside"), "placement='inside'"),
    (dict(pool_kwargs="authors"), "pool_kwargs='authors'"),
]


@pytest.mark.parametrize("kwargs,fragment", BAD)
def test_bad_builder_arguments(kwargs, fragment):
    with pytest.raises(ValueError) as error:
        nk.build_mbv2_sa(**{"input_shape": (32, 32, 3), "alpha": 0.35, **kwargs})
    assert fragment in str(error.value)


def test_shipped_presets_verify_load_and_classify_real_images():
    from nlpool_keras.data import read_image_archive
    from nlpool_keras.data.pipeline import center_crops
    from tests.conftest import ARCHIVE

    presets = nk.list_presets("build_mbv2_sa")
    assert presets, "the zoo ships MobileNetV2 presets"
    images, labels, _ = read_image_archive(ARCHIVE, split="val", per_class=5)
    for name in presets:
        manifest = nk.get_preset(name)
        path = os.path.join(manifest["directory"], manifest["weights_file"])
        assert weights_lib.sha256(path) == manifest["sha256"]
        model = nk.build_mbv2_sa(weights=name)
        size = manifest["input_size"]
        batch = center_crops(images, size)
        top1 = np.mean(model.predict(batch, verbose=0).argmax(axis=1) == labels)
        # 50 real val images; the manifests report top-1 on all 3,925
        assert top1 >= manifest["metrics"]["val_top1"] - 0.2, (name, top1)


def test_shipped_detector_presets_verify_load_and_reach_their_f1():
    from nlpool_keras.data import read_detections
    from nlpool_keras.detection import MATCH_CELLS, THRESHOLD, centroid_scores, decode_centroids

    presets = nk.list_presets("build_centroid_detector")
    assert {"centroids_sa_035_96_bccd", "centroids_sa_035_96_raccoon"} <= set(presets)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in presets:
        manifest = nk.get_preset(name)
        detector = nk.build_centroid_detector(weights=name)
        assert detector.output_shape[-1] == manifest["classes"] + 1
        metrics = manifest["metrics"]
        val = read_detections(os.path.join(root, manifest["dataset"]), metrics["val_split"], manifest["input_size"])
        assert val.classes == manifest["class_names"] and len(val) == metrics["val_images"]
        scores = detector.predict(val.images.astype("float32"), verbose=0)
        found = [decode_centroids(s, THRESHOLD) for s in scores]
        f1 = centroid_scores(found, val.boxes, val.labels, val.classes, MATCH_CELLS / scores.shape[1])["f1"]
        assert abs(f1 - metrics["val_f1"]) < 0.01, (name, f1, metrics["val_f1"])


def test_shipped_ssdlite_preset_verifies_loads_and_reaches_its_ap():
    from nlpool_keras.data import read_detections
    from nlpool_keras.detection import box_average_precision, decode_detections, ssdlite_anchors

    assert "ssdlite_sa_035_96_bccd" in nk.list_presets("build_ssdlite_detector")
    manifest = nk.get_preset("ssdlite_sa_035_96_bccd")
    detector = nk.build_ssdlite_detector(weights="ssdlite_sa_035_96_bccd")
    metrics, size = manifest["metrics"], manifest["input_size"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    val = read_detections(os.path.join(root, manifest["dataset"]), metrics["val_split"], size)
    outputs = detector.predict(val.images.astype("float32"), verbose=0)
    found = [decode_detections(rows, ssdlite_anchors(size)) for rows in outputs]
    report = box_average_precision(found, val.boxes, val.labels, val.classes, size)
    assert abs(report["ap50"] - metrics["val_ap50"]) < 0.01, (report["ap50"], metrics["val_ap50"])
    assert abs(report["map"] - metrics["boxes"]["map"]) < 0.01
