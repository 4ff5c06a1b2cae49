"""Patch schedules of int8 flatbuffers in TFLM: the phases, cut out of the whole-graph int8
flatbuffer with its weights and scales, must give exactly the whole graph's TFLM outputs
(0 LSB) for one-pass and two-pass (self-attentive) stages, odd sizes and 2x2 to 4x4 tiles."""

import keras
import numpy as np
import pytest

from nlpool_keras import build_mbv2_sa
from nlpool_keras.export import to_int8_tflite
from nlpool_keras.export.int8_graph import Int8Graph
from nlpool_keras.export.int16_ops import widen_to_int16
from nlpool_keras.export.phases import cut_op_of, patch_phases
from nlpool_keras.export.program import schedule_program
from nlpool_keras.layers import SelfAttentivePooling2D
from nlpool_keras.profile import settle_batchnorm
from nlpool_keras.profile.schedule import SETTINGS, WholeGraph, measure_schedule, schedule_cuts, search_schedules
from nlpool_keras.schedule.patches import split

CASES = [
    # kind, input size, strides, cut, tiles
    ("sa", 48, "1222121", "block_1_pool", 2),  # two passes around the attention, position table cut per tile
    ("sa", 48, "1222121", "block_3_pool", 2),  # two self-attentive layers: three tile passes
    ("sa", 64, "2222121", "block_0_pool", 3),
    ("lip", 40, "1222121", "block_2_add", 2),
    ("max", 40, "2222121", "block_1_pool", 4),
    ("conv", 37, "1222121", "block_2_add", 3),
]


def _int8(kind, size, strides):
    keras.utils.set_random_seed(0)
    model = build_mbv2_sa(
        (size, size, 3), alpha=0.35, downsample=kind, strides=strides, classes=10, classifier_activation=None
    )
    settle_batchnorm(model)
    rng = np.random.default_rng(0)
    flatbuffer = to_int8_tflite(model, rng.uniform(0, 255, (8, size, size, 3)).astype("float32"))
    images = rng.integers(-128, 128, (3, size, size, 3)).astype(np.int8)
    return model, flatbuffer, images


@pytest.mark.parametrize("kind, size, strides, cut, tiles", CASES)
def test_phases_reproduce_the_whole_graph_in_tflm(kind, size, strides, cut, tiles):
    model, flatbuffer, images = _int8(kind, size, strides)
    cut_op = cut_op_of(flatbuffer, model, cut)
    graph = Int8Graph(flatbuffer)
    assert graph.shape(graph.output(cut_op))[1:] == list(model.get_layer(cut).output.shape[1:])
    report = measure_schedule(flatbuffer, cut_op, tiles, images)
    assert report["max_lsb_vs_whole_graph"] == 0 and report["argmax_agreement_vs_whole_graph"] == 1.0
    assert ("attention 1" in report["phases"]) == (kind == "sa")
    attentions = len([name for name in report["phases"] if name.startswith("attention")])
    # per self-attentive layer a pass of tiles (token grids of at least 6x6 here) and its attention
    assert report["tflm_invokes_per_image"] == tiles**2 + attentions * (tiles**2 + 1) + 1
    assert report["mac_overhead"] >= 1.0  # halos are recomputed, nothing is skipped
    stage_arena = max(p["arena_bytes"] for name, p in report["phases"].items() if name != "suffix")
    assert stage_arena < report["whole_graph_arena_bytes"]
    held = report["phases"]["cut tiles"]["pool_bytes"]
    assert held >= int(np.prod(model.get_layer(cut).output.shape[1:]))  # the assembled cut tensor
    assert report["peak_sram_image_held"] >= report["peak_sram_image_streamed"]


@pytest.mark.parametrize("cut, layers", [("block_1_pool", 1), ("block_3_pool", 2)])
def test_stored_inputs_replace_the_recomputed_prefix(cut, layers):
    """With store_inputs the map each self-attentive layer reads is kept after the first pass:
    outputs stay exact, later tiles read that map (the Keras layer's input) instead of the
    image, and the prefix is not computed twice."""
    model, flatbuffer, images = _int8("sa", 48, "1222121")
    cut_op = cut_op_of(flatbuffer, model, cut)
    recomputed = measure_schedule(flatbuffer, cut_op, 2, images)
    stored = measure_schedule(flatbuffer, cut_op, 2, images, store_inputs=True)
    assert stored["max_lsb_vs_whole_graph"] == 0 and stored["argmax_agreement_vs_whole_graph"] == 1.0
    assert stored["macs_whole_graph"] <= stored["macs_schedule"] < recomputed["macs_schedule"]
    assert stored["tflm_invokes_per_image"] == recomputed["tflm_invokes_per_image"]
    program = schedule_program(patch_phases(flatbuffer, cut_op, 2, store_inputs=True))
    readers_of_image = {step.label for step in program.steps if any(a.buffer == 0 for a in step.reads)}
    assert readers_of_image == {"tiles 1"}
    pools = [layer for layer in model.layers if isinstance(layer, SelfAttentivePooling2D)][:layers]
    assert pools[-1].name == cut
    for label, pool in zip([f"tiles {k}" for k in range(2, layers + 1)] + ["cut tiles"], pools, strict=True):
        read = {program.buffers[a.buffer].shape for step in program.steps if step.label == label for a in step.reads}
        assert tuple(pool.input.shape[1:]) in read


@pytest.mark.parametrize(
    "kind, cut, stored_layers",
    [
        ("lip", "block_3_pool", ("block_1_project_BN", "block_2_add")),
        ("conv", "block_3_project_BN", ("expanded_conv_project_BN", "block_2_add")),
        # at the cut's own resolution: block_2's 3x3 window lies between block_1's output and the cut
        ("conv", "block_2_add", ("expanded_conv_project_BN", "block_1_project_BN")),
    ],
)
def test_local_down_sampling_stores_a_block_output_per_resolution(kind, cut, stored_layers):
    """Without self-attentive layers, store_inputs keeps the smallest block output of each
    resolution after the image's (written by a pass of tiles of its own), at the cut's own
    resolution only one that a window separates from the cut (none before block_3's 1x1
    projection, none inside LIP's pooling cells): the outputs stay exact, each later pass reads
    only the map before it, and fewer MACs are spent on halos."""
    model, flatbuffer, images = _int8(kind, 48, "1222121")
    cut_op = cut_op_of(flatbuffer, model, cut)
    recomputed = measure_schedule(flatbuffer, cut_op, 2, images)
    stored = measure_schedule(flatbuffer, cut_op, 2, images, store_inputs=True)
    assert stored["max_lsb_vs_whole_graph"] == 0 and stored["argmax_agreement_vs_whole_graph"] == 1.0
    assert stored["macs_whole_graph"] <= stored["macs_schedule"] < recomputed["macs_schedule"]
    plan = patch_phases(flatbuffer, cut_op, 2, store_inputs=True)
    assert plan.global_phases == [None, None]
    program = schedule_program(plan)
    passes = ["tiles 1", "tiles 2", "cut tiles"]
    assert [label for label in dict.fromkeys(step.label for step in program.steps)][:3] == passes
    assert stored["tflm_invokes_per_image"] == 3 * 2**2 + len(plan.suffix)
    shapes = [tuple(model.get_layer(name).output.shape[1:]) for name in stored_layers]
    for k, label in enumerate(passes):
        reads = {program.buffers[a.buffer].shape for step in program.steps if step.label == label for a in step.reads}
        assert reads == ({tuple(model.inputs[0].shape[1:])} if k == 0 else {shapes[k - 1]})


def test_maps_larger_than_the_image_are_not_stored():
    """A resolution whose smallest map outweighs the image (the 24 x 24 x 16 stem output of a
    48 px "2222121" network against its 48 x 48 x 3 image) is recomputed, not stored: storing
    it would hold more than streaming the image costs."""
    model, flatbuffer, images = _int8("conv", 48, "2222121")
    cut_op = cut_op_of(flatbuffer, model, "block_3_project_BN")
    stage = patch_phases(flatbuffer, cut_op, 2, store_inputs=True).stage
    shapes = [stage.graph.shape(t) for t in stage.store_points()]
    assert [tuple(shape[1:3]) for shape in shapes] == [(12, 12), (6, 6)]
    assert all(np.prod(shape) <= 48 * 48 * 3 for shape in shapes)
    assert tuple(model.get_layer("Conv1").output.shape[1:]) == (24, 24, 16)
    stored = measure_schedule(flatbuffer, cut_op, 2, images, store_inputs=True)
    assert stored["max_lsb_vs_whole_graph"] == 0


def test_what_cannot_run_in_tiles_is_named():
    model, flatbuffer, _ = _int8("sa", 48, "1222121")
    with pytest.raises(ValueError, match="a connection crosses the cut"):
        patch_phases(flatbuffer, cut_op_of(flatbuffer, model, "block_2_project_BN"), 2)
    odd, odd_flatbuffer, _ = _int8("lip", 37, "1222121")  # pooling an odd map concatenates border segments
    with pytest.raises(ValueError, match=r"CONCATENATION .*\(block_1_pool\S*/.* cannot run tile by tile"):
        patch_phases(odd_flatbuffer, cut_op_of(odd_flatbuffer, odd, "block_1_pool"), 2)
    with pytest.raises(ValueError, match="cut_op must be in"):
        patch_phases(flatbuffer, 10_000, 2)
    with pytest.raises(ValueError, match="is not a layer"):
        cut_op_of(flatbuffer, model, "no_such_layer")
    with pytest.raises(ValueError, match="tiles must be between 1"):
        split(5, 6)


def test_suffix_per_block_and_query_slices_stay_exact_and_lower_the_peak():
    """The suffix split into blocks and every attention run in query slices give the same
    outputs; each phase then holds only its own tensors and per-channel data, and one slice of
    attention scores at a time."""
    model, flatbuffer, images = _int8("sa", 48, "1222121")
    cut_op = cut_op_of(flatbuffer, model, "block_1_pool")
    plain = measure_schedule(flatbuffer, cut_op, 2, images)
    lean = measure_schedule(flatbuffer, cut_op, 2, images, suffix="blocks", query_chunks=3)
    assert lean["max_lsb_vs_whole_graph"] == 0 and plain["max_lsb_vs_whole_graph"] == 0
    assert len([name for name in lean["phases"] if name.startswith("suffix")]) > 5
    assert lean["peak_sram_image_streamed"] < plain["peak_sram_image_streamed"]
    assert lean["phases"]["attention 1"]["arena_bytes"] < plain["phases"]["attention 1"]["arena_bytes"]
    chunks = patch_phases(flatbuffer, cut_op, 2, query_chunks=3).global_phases[0].flatbuffer
    assert Int8Graph(chunks).op_names.count("SOFTMAX") == 3 * 1  # one attention, three query slices
    # SOFTMAX in int16 (export.int16_ops): each slice keeps its CAST and its int16 product with the
    # values (CAST once), and stays exact
    wide = widen_to_int16(flatbuffer)
    wide_cut = cut_op_of(wide, model, "block_1_pool")
    wide_chunks = Int8Graph(patch_phases(wide, wide_cut, 2, query_chunks=3).global_phases[0].flatbuffer)
    assert wide_chunks.op_names.count("SOFTMAX") == 3 and wide_chunks.op_names.count("CAST") == 3 + 1
    assert measure_schedule(wide, wide_cut, 2, images, suffix="blocks", query_chunks=3)["max_lsb_vs_whole_graph"] == 0
    with pytest.raises(ValueError, match="suffix must be one of"):
        patch_phases(flatbuffer, cut_op, 2, suffix="layers")
    with pytest.raises(ValueError, match="query_chunks must be a positive integer"):
        patch_phases(flatbuffer, cut_op, 2, query_chunks=0)


def test_candidate_cuts_are_block_ends_that_no_residual_crosses():
    model, flatbuffer, _ = _int8("sa", 48, "1222121")
    cuts = schedule_cuts(model, 8)
    assert len(cuts) == 8 and "block_3_project_BN" in cuts and "block_2_project_BN" not in cuts
    for cut in cuts:  # the int8 stage checks that no tensor before the cut is read after it
        patch_phases(flatbuffer, cut_op_of(flatbuffer, model, cut), 2)


def test_search_takes_the_lowest_measured_peak_within_the_mac_limit():
    model, flatbuffer, images = _int8("sa", 48, "1222121")
    choice, rows = search_schedules(flatbuffer, model, images[:1], 1.6, cuts=["block_1_pool"])
    assert len(rows) == len(SETTINGS)
    fitting = [r for r in rows if "error" not in r and r["mac_overhead"] <= 1.6]
    fitting = [r for r in fitting if r["peak_sram_image_streamed"] < r["whole_graph_arena_bytes"]]
    assert fitting and choice["peak_sram_image_streamed"] == min(r["peak_sram_image_streamed"] for r in fitting)
    assert all(r["max_lsb_vs_whole_graph"] == 0 for r in fitting)


def test_a_whole_graph_reference_of_other_images_is_refused():
    model, flatbuffer, images = _int8("max", 40, "2222121")
    cut_op = cut_op_of(flatbuffer, model, "block_1_pool")
    with pytest.raises(ValueError, match=r"whole_graph was measured on another flatbuffer or other images.*\(1, 40"):
        measure_schedule(flatbuffer, cut_op, 2, images, whole_graph=WholeGraph(flatbuffer, images[:1]))


def test_a_reshape_carries_rows_through_a_repeat_and_refuses_mixing():
    from fractions import Fraction

    from nlpool_keras.export.patch_stage import _reshape_layout

    repeated = [8, 3, 8, 3, 4]  # a BROADCAST_TO's (rows, copies, columns, copies, channels)
    # merged back into a map: one token row gives 3 rows
    assert _reshape_layout(repeated, (0, 2), [1, 24, 24, 4], copies=True) == ((1, 2), (Fraction(1, 3),) * 2)
    # merged and cut into rows of 2-row windows at once (the converter fuses the two reshapes):
    # a window row is 2/3 of a token row
    assert _reshape_layout(repeated, (0, 2), [12, 2, 12, 8], copies=True) == ((0, 2), (Fraction(2, 3),) * 2)
    # the same shapes without copies mix rows with what lies beside them
    assert _reshape_layout(repeated, (0, 2), [1, 24, 24, 4]) == (None, None)
    # a border column (width 1) is not merged into the channels
    assert _reshape_layout([1, 18, 1, 8], (1, 2), [9, 2, 1, 8]) == (None, None)
    # splits as before: 2 rows a unit
    assert _reshape_layout([1, 24, 24, 8], (1, 2), [12, 2, 12, 16]) == ((0, 2), (Fraction(2),) * 2)
