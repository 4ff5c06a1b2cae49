"""The profiler against hand-computed MACs and liveness, and TFLM's measured arena."""

import math

import keras
import numpy as np
import pytest

import nlpool_keras as nk
from nlpool_keras.export import to_int8_tflite
from nlpool_keras.layers.cost import attention_tokens
from nlpool_keras.profile import graph_profile, keras_macs, profile_model
from nlpool_keras.profile.choice import lowest_peak
from nlpool_keras.profile.report import model_card


def _residual_model():
    inputs = keras.Input((10, 10, 3))
    a = keras.layers.Conv2D(8, 3, padding="same", name="a")(inputs)  # 10x10x8
    b = keras.layers.DepthwiseConv2D(3, padding="same", name="b")(a)  # 10x10x8, a stays live for the add
    c = keras.layers.Add(name="c")([a, b])
    d = keras.layers.Conv2D(4, 1, strides=2, name="d")(c)  # 5x5x4
    e = keras.layers.Flatten()(d)
    model = keras.Model(inputs, keras.layers.Dense(6, name="f")(e))
    rng = np.random.default_rng(0)  # distinct non-zero biases: the converter shares equal constants
    for layer in model.layers:
        layer.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in layer.get_weights()])
    return model


@pytest.fixture(scope="module")
def calibration(real_images):
    return real_images[0][:8, :10, :10].astype("float32")


def test_macs_and_liveness_match_hand_counts(calibration):
    report = graph_profile(to_int8_tflite(_residual_model(), calibration))
    ops = [row["op"] for row in report["ops"]]
    assert ops == ["CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    expected_macs = [100 * 8 * 27, 100 * 8 * 9, 0, 25 * 4 * 8, 0, 100 * 6]
    assert [row["macs"] for row in report["ops"]] == expected_macs
    assert report["macs"] == sum(expected_macs)
    x, a, b, c, d, flat, f = 300, 800, 800, 800, 100, 100, 6  # int8 bytes of each activation
    live = [x + a, a + b, a + b + c, c + d, d + flat, flat + f]  # the input is read by op 0 only
    assert [row["live_bytes"] for row in report["ops"]] == live
    assert report["peak_activation_bytes"] == max(live) and report["peak_op"] == 2
    weights = 8 * 27 + 8 * 4 + 8 * 9 + 8 * 4 + 4 * 8 + 4 * 4 + 100 * 6 + 6 * 4  # int8 kernels, int32 biases
    assert weights <= report["constant_bytes"] <= weights + 8  # and the reshape's shape (2 x int32)
    assert report["flash_bytes"] > report["constant_bytes"]


def test_tflm_arena_holds_at_least_the_live_tensors(calibration):
    report = profile_model(_residual_model(), calibration)
    assert report["tflm_arena_bytes"] >= report["peak_activation_bytes"]
    assert report["arena_to_peak"] == round(report["tflm_arena_bytes"] / report["peak_activation_bytes"], 3)
    assert report["tflm_ms_per_invoke"] > 0
    assert report["params"] == _residual_model().count_params() and report["attention"] == []


def test_attention_tokens_and_scores_of_a_zoo_model():
    model = nk.build_mbv2_sa((64, 64, 3), alpha=0.35, strides="4222121", classes=4, classifier_activation=None)
    report = profile_model(model, arena=False)
    pools = [layer for layer in model.layers if isinstance(layer, nk.SelfAttentivePooling2D)]
    assert [a["layer"] for a in report["attention"]] == [layer.name for layer in pools]
    for entry, layer in zip(report["attention"], pools, strict=True):
        height, width = layer.input_spatial_shape
        tokens = math.ceil(height / layer.patch_size) * math.ceil(width / layer.patch_size)
        assert entry["tokens"] == tokens and entry["score_bytes"] == layer.num_heads * tokens**2
    softmax_sizes = [np.prod(row["output_shape"]) for row in report["ops"] if row["op"] == "SOFTMAX"]
    for entry in report["attention"]:  # every attention map is in the int8 graph (one token: folded away)
        assert entry["score_bytes"] in softmax_sizes or entry["tokens"] == 1
    assert "tflm_arena_bytes" not in report
    # counted on the Keras layers (for models int8 export refuses): within 1 % of the int8 graph's
    assert abs(keras_macs(model) - report["macs"]) <= 0.01 * report["macs"]


@pytest.mark.parametrize("token_grid,tokens", [("ceil", 3 * 3), ("floor", 2 * 2)])
def test_attention_tokens_follow_the_token_grid(token_grid, tokens):
    layer = nk.SelfAttentivePooling2D(3, patch_size=2, num_heads=1, token_grid=token_grid)
    layer.build((None, 5, 5, 4))
    assert attention_tokens(layer, (None, 5, 5, 4)) == tokens == math.prod(layer.grid)


def test_profile_command_writes_report_card_and_plot(calibration, tmp_path):
    import json

    from PIL import Image

    from nlpool_keras.cli import main

    path = tmp_path / "residual.tflite"
    path.write_bytes(to_int8_tflite(_residual_model(), calibration))
    assert main(["profile", str(path), "--output", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "residual.json").read_text())
    assert report == {
        **graph_profile(path.read_bytes()),
        **{k: report[k] for k in ("tflm_arena_bytes", "arena_to_peak", "tflm_ms_per_invoke")},
    }
    card = (tmp_path / "out" / "residual.md").read_text()
    assert f"| MACs | {report['macs']:,} |" in card and f"{report['tflm_arena_bytes']:,} B" in card
    with Image.open(tmp_path / "out" / "residual.png") as image:
        assert image.size[0] > 500 and image.size[1] > 200
    assert main(["profile", str(tmp_path / "missing.tflite")]) == 2


def test_settled_batchnorm_keeps_untrained_activations_at_scale():
    """Initial BatchNorm statistics let a deep untrained network's activations vanish (int8
    scales ~1e-8, which TFLM aborts on); settled ones keep them at unit scale (ReLU6-bounded)."""
    from nlpool_keras.profile import settle_batchnorm

    model = nk.build_mbv2_sa((48, 48, 3), alpha=0.35, downsample="gaussian", strides="2222121", classes=10)
    features = keras.Model(model.inputs, model.get_layer("global_pool").output)
    pixels = np.random.default_rng(1).uniform(0, 255, (4, 48, 48, 3)).astype("float32")
    assert np.abs(features(pixels)).max() < 1e-6
    assert settle_batchnorm(model) is model
    assert 0.1 < np.abs(features(pixels)).max() <= 6.0


def test_profile_measures_top1_of_the_float_model_and_of_its_int8_form_in_tflm(real_images):
    from nlpool_keras.tflm.interpreter import TFLMModel

    images, labels = real_images[0][:24].astype("float32"), real_images[1][:24]
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1),
            keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            nk.SelfAttentivePooling2D(2),  # 256 tokens
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    report = profile_model(model, images[:8], arena=False, evaluation=(images, labels))
    int8 = TFLMModel(to_int8_tflite(model, images[:8])).predict(images)
    assert report["top1"] == {
        "images": 24,
        "int8_tflm": pytest.approx(np.mean(int8.argmax(1) == labels)),
        "float": pytest.approx(np.mean(model.predict(images, verbose=0).argmax(1) == labels)),
    }
    card = model_card(report, "tiny")
    assert f"| top-1 int8 (TFLM) (24 images) | {report['top1']['int8_tflm']:.4f} |" in card


def test_profile_command_measures_top1_on_val_images_and_refuses_it_without_images(calibration, tmp_path, capsys):
    import json

    from nlpool_keras.cli import main
    from tests.conftest import ARCHIVE

    path = tmp_path / "residual.tflite"
    path.write_bytes(to_int8_tflite(_residual_model(), calibration))
    command = [
        "profile",
        str(path),
        "--data",
        ARCHIVE,
        "--top1-per-class",
        "1",
        "--no-arena",
        "--output",
        str(tmp_path),
    ]
    assert main(command) == 0
    top1 = json.loads((tmp_path / "residual.json").read_text())["top1"]
    assert top1["images"] == 10 and 0 <= top1["int8_tflm"] <= 1 and "float" not in top1
    assert "| top-1 int8 (TFLM) (10 images) |" in (tmp_path / "residual.md").read_text()
    assert main(["profile", str(path), "--top1-per-class", "0"]) == 2
    assert "top1_per_class must be a positive number of images per class, received: 0" in capsys.readouterr().err
    assert main(["profile", str(path), "--top1-per-class", "3"]) == 2
    assert "top1_per_class=3 needs --data" in capsys.readouterr().err


def test_without_preprocessing_the_int8_graph_holds_no_rescaled_copy_of_the_input():
    from nlpool_keras.profile import settle_batchnorm

    reports = {}
    for include in (True, False):
        value_range = (0.0, 255.0) if include else (-1.0, 1.0)
        model = nk.build_mbv2_sa((32, 32, 3), alpha=0.35, downsample="conv", prepool=8, include_preprocessing=include)
        reports[include] = profile_model(
            settle_batchnorm(model, value_range=value_range), arena=False, value_range=value_range
        )
    copies = {k: [row["op"] for row in r["ops"] if row["output_shape"] == [1, 32, 32, 3]] for k, r in reports.items()}
    assert copies[True] == ["MUL", "ADD"] and copies[False] == []  # Rescaling: x * scale + offset
    image = 32 * 32 * 3  # int8 bytes: with a stride-8 stem, the image and its rescaled copy are the peak
    assert reports[True]["peak_activation_bytes"] == 2 * image
    assert image < reports[False]["peak_activation_bytes"] < 2 * image


def test_lowest_peak_skips_errors_and_the_mac_limit_and_breaks_ties_by_macs():
    rows = [
        {"layer": "a", "error": "a residual crosses the cut"},
        {"layer": "b", "peak_sram_image_streamed": 900, "mac_overhead": 1.5},
        {"layer": "c", "peak_sram_image_streamed": 1000, "mac_overhead": 1.2},
        {"layer": "d", "peak_sram_image_streamed": 1000, "mac_overhead": 1.1},
        {"layer": "e", "peak_sram_image_streamed": 1200, "mac_overhead": 1.0},
    ]
    assert lowest_peak(rows)["layer"] == "b"
    assert lowest_peak(rows, 1.3)["layer"] == "d"
    assert lowest_peak(rows, 1.0)["layer"] == "e"
    assert lowest_peak(rows, 0.9) is None and lowest_peak(rows[:1]) is None
