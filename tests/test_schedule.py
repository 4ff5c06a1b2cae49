"""Patch-based execution against the whole graph: the assembled patch-stage output and the model's
outputs must equal the whole model's, for every kind that can run in tiles, odd sizes, 2x2 to 4x4
tiles, cuts before and after pooling; what cannot run in tiles is a clear error.

The models compute in float64, so the comparison sees the schedule, not float32 rounding (which
an untrained network amplifies through depth): tiles must agree with the whole graph to 1e-9."""

import keras
import numpy as np
import pytest

from nlpool_keras import build_mbv2_sa
from nlpool_keras.profile import settle_batchnorm
from nlpool_keras.schedule import PatchSchedule
from nlpool_keras.schedule.patches import split

CASES = [
    # kind, input size, strides, cut, tiles
    ("sa", 48, "1222121", "block_6_pool", 2),
    ("sa", 37, "1222121", "block_2_add", 3),
    ("sa", 45, "2222121", "block_1_pool", 4),
    ("sa", 64, "4222121", "block_3_project_BN", 3),
    ("lip", 37, "1222121", "block_2_add", 4),
    ("max", 64, "2222121", "block_1_pool", 4),
    ("avg", 45, "1222121", "block_1_pool", 2),
    ("softpool", 40, "1222121", "expanded_conv_project_BN", 4),
    ("conv", 37, "1222121", "block_2_add", 3),
    ("conv", 64, "4222121", "block_5_add", 2),
]


@pytest.fixture(autouse=True)
def float64():
    policy, floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_floatx("float64")  # the inputs, and the suffix's input at the cut
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_dtype_policy(policy)
    keras.config.set_floatx(floatx)


def _model(kind, size, strides, **kwargs):
    pool_kwargs = {"patch_size": 3} if kind == "sa" else None
    model = build_mbv2_sa(
        (size, size, 3), alpha=0.35, downsample=kind, strides=strides, classes=5, pool_kwargs=pool_kwargs, **kwargs
    )
    return settle_batchnorm(
        model, value_range=(-1.0, 1.0) if kwargs.get("include_preprocessing") is False else (0, 255)
    )


# float32 tiles and the whole map: TensorFlow's CPU kernels (the pooling layers' average pools)
# may add in an order that depends on the tensor's shape, a few float32 steps apart; the int8
# schedules (test_schedule_int8.py) are compared bit for bit
FLOAT_TILING = 1e-5


def _images(size, low=0.0, high=255.0):
    return np.random.default_rng(size).uniform(low, high, (3, size, size, 3))


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
@pytest.mark.parametrize("kind, size, strides, cut, tiles", CASES)
def test_tiles_assemble_to_the_whole_graph(kind, size, strides, cut, tiles):
    model = _model(kind, size, strides)
    images = _images(size)
    schedule = PatchSchedule(model, cut, tiles)
    whole_stage = keras.Model(model.inputs, model.get_layer(cut).output).predict(images, verbose=0)
    np.testing.assert_allclose(schedule.run_stage(images), whole_stage, rtol=0, atol=FLOAT_TILING)
    np.testing.assert_allclose(schedule.predict(images), model.predict(images, verbose=0), rtol=0, atol=FLOAT_TILING)
    # the tiles cover the cut's map exactly once
    covered = np.zeros(whole_stage.shape[1:3], int)
    for (top, bottom), (left, right) in schedule.grid:
        covered[top:bottom, left:right] += 1
    assert (covered == 1).all() and len(schedule.grid) == tiles * tiles


def test_without_preprocessing_and_with_prepool():
    model = _model("sa", 40, "1222121", include_preprocessing=False, prepool=2)
    images = _images(40, -1.0, 1.0)
    schedule = PatchSchedule(model, "block_2_add", 3)
    np.testing.assert_allclose(schedule.predict(images), model.predict(images, verbose=0), rtol=0, atol=FLOAT_TILING)
    assert [layer.name for layer in schedule.two_pass] == ["prepool", "block_1_pool"]


def test_what_cannot_run_in_tiles_is_named():
    gaussian = _model("gaussian", 40, "1222121")
    with pytest.raises(ValueError, match=r"layer 'block_1_pool' \(GaussianPooling2D\).*cannot run tile by tile"):
        PatchSchedule(gaussian, "block_2_add", 2)
    conv = _model("conv", 40, "1222121")
    with pytest.raises(ValueError, match="cut='block_2_project_BN'.*residual connection crosses the cut"):
        PatchSchedule(conv, "block_2_project_BN", 2)
    with pytest.raises(ValueError, match="cannot run tile by tile"):
        PatchSchedule(conv, "predictions", 2)
    with pytest.raises(ValueError, match="tiles must be between 1 and the cut's size 10, received: tiles=11"):
        PatchSchedule(conv, "block_2_add", 11)


def test_split_covers_the_range_in_near_equal_parts():
    for size in (1, 7, 10, 48):
        for parts in range(1, size + 1):
            spans = split(size, parts)
            lengths = [b - a for a, b in spans]
            assert spans[0][0] == 0 and spans[-1][1] == size and max(lengths) - min(lengths) <= 1
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))


@pytest.mark.parametrize("kind", ["conv", "max", "lip", "sa"])
def test_cost_counts_match_the_int8_graph(kind):
    """The schedule's MAC and liveness counts, run whole, against the int8 flatbuffer's graph
    (`profile_model`, from the TFLite converter's ops): MACs equal; liveness equal where no
    self-attentive layer holds the peak (inside one, the int8 graph's reshapes and transposes
    hold more than the estimate counts)."""
    from nlpool_keras.profile import profile_model
    from nlpool_keras.schedule import schedule_cost

    keras.config.set_dtype_policy("float32")
    keras.config.set_floatx("float32")
    model = _model(kind, 48, "1222121")
    schedule = PatchSchedule(model, "block_2_add", 1)
    schedule.run_stage(_images(48)[:1].astype("float32"))
    cost = schedule_cost(schedule)
    graph = profile_model(model, arena=False)
    assert cost["whole_macs"] == graph["macs"]
    if kind != "sa":
        assert cost["mac_overhead"] == 1.0  # one tile: no halo, no second pass
        assert cost["whole_graph_peak_bytes"] == graph["peak_activation_bytes"]


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
def test_auto_choice_and_the_profile_command(tmp_path, capsys):
    import json

    from nlpool_keras.cli import main
    from nlpool_keras.schedule import choose_schedule

    model = _model("sa", 40, "1222121")
    choice, candidates = choose_schedule(model, max_mac_overhead=1.5, sram_budget=8 * 1024, tiles=(2, 3))
    allowed = [c for c in candidates if c["mac_overhead"] <= 1.5]
    assert choice == min(allowed, key=lambda c: (c["peak_bytes_image_streamed"], c["macs"]))
    assert choice["peak_bytes_image_streamed"] < choice["whole_graph_peak_bytes"]
    assert all(c["peak_bytes_image_streamed"] >= c["suffix_peak_bytes"] for c in candidates)
    assert {c["tiles"] for c in candidates} == {2, 3} and all("fits_budget" in c for c in candidates)

    keras.config.set_dtype_policy("float32")
    keras.config.set_floatx("float32")
    path = tmp_path / "model.keras"
    _model("sa", 40, "1222121").save(path)
    command = [
        "profile",
        str(path),
        "--schedule",
        "block_2_add:2",
        "--suffix",
        "blocks",
        "--query-chunks",
        "2",
        "--store-inputs",
    ]
    assert main(command + ["--output", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "patch stage up to block_2_add in 2x2 tiles" in printed and "measured in TFLM" in printed
    assert "maps stored per resolution" in printed
    written = json.loads(next(tmp_path.glob("*.schedule.json")).read_text())
    measured = written["measured"]  # the int8 phases in TFLM: the whole graph's outputs exactly
    assert measured["layer"] == "block_2_add" and measured["tiles"] == 2 and measured["suffix"] == "blocks"
    assert measured["max_lsb_vs_whole_graph"] == 0 and measured["query_chunks"] == 2 and measured["store_inputs"]
    assert measured["peak_sram_image_streamed"] < measured["whole_graph_arena_bytes"]
    estimate = ["profile", str(path), "--schedule", "auto", "--no-arena", "--sram-budget", "4k"]
    assert main(estimate + ["--max-mac-overhead", "1.5", "--output", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "estimated (Keras, int8 tensor liveness; --no-arena)" in printed and "the SRAM budget of 4,096 B" in printed
    assert main(["profile", str(path), "--schedule", "block_2_add"]) == 2
    assert "schedule must be 'auto' or CUT:TILES" in capsys.readouterr().err
    assert main(["profile", str(path), "--schedule", "auto", "--sram-budget", "lots"]) == 2
    assert "sram_budget must be bytes" in capsys.readouterr().err
