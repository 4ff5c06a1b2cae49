"""A patch schedule measured in TFLM: each phase's arena, the schedule's peak SRAM, its MACs,
and its outputs against the whole-graph int8 model.

    report = measure_schedule(flatbuffer, cut_op_of(flatbuffer, model, "block_6_pool"), 3, images)
    report["peak_sram_image_streamed"], report["whole_graph_arena_bytes"], report["mac_overhead"]
    choice, rows = search_schedules(flatbuffer, model, quantized_images[:1], max_mac_overhead=1.3)

The schedule runs as a program (`export.program`): the peak SRAM of a step is its TFLM arena
(measured; it holds the step's own inputs and outputs, the image crop included) plus the pool
of buffers alive during it (the tensors it reads or fills, and those later steps read: tokens,
the attention's logits, the cut tensor, a suffix block's output). With the whole int8 image held
in SRAM, the image is one more pool buffer, alive until the last tile has read it.
"""

import numpy as np

from nlpool_keras.export.flatbuffer import micro_flatbuffer
from nlpool_keras.export.phases import cut_op_of, patch_phases
from nlpool_keras.export.program import fit_program, program_sram, schedule_program
from nlpool_keras.profile.choice import lowest_peak
from nlpool_keras.profile.graph import graph_profile
from nlpool_keras.tflm.child import run_tflm
from nlpool_keras.tflm.schedule import run_program


def describe_setting(setting):
    """A schedule setting ({"cut", "tiles", "suffix", "query_chunks", "store_inputs"}) in words."""
    stored = "stored per resolution" if setting.get("store_inputs") else "recomputed from the image"
    return (
        f"patch stage up to {setting['cut']} in {setting['tiles']}x{setting['tiles']} tiles, suffix "
        f"{setting['suffix']}, attention in {setting['query_chunks']} query slice(s), maps {stored}"
    )


class WholeGraph:
    """The whole int8 flatbuffer run in TFLM on `images`: the reference every schedule of it is
    measured against (outputs, arena, MACs, flash), computed once per model and image set."""

    def __init__(self, flatbuffer, images):
        self.flatbuffer, self.images = flatbuffer, images
        self.run = run_tflm(flatbuffer, images)
        self.macs = graph_profile(flatbuffer)["macs"]
        self.flash_bytes = len(micro_flatbuffer(flatbuffer))


def measure_schedule(
    flatbuffer,
    cut_op,
    tiles,
    images,
    labels=None,
    suffix="whole",
    query_chunks=1,
    store_inputs=False,
    whole_graph=None,
):
    """Runs the schedule's program in TFLM on `images` (int8, (M, H, W, 3)) and compares it with
    the whole flatbuffer on the same images (`whole_graph`, a `WholeGraph` of `flatbuffer` and
    `images`, measured here when None); returns a dict of measured figures (see the module
    docstring)."""
    if whole_graph is None:
        whole_graph = WholeGraph(flatbuffer, images)
    elif whole_graph.images is not images or whole_graph.flatbuffer is not flatbuffer:
        raise ValueError(
            "whole_graph was measured on another flatbuffer or other images than the schedule's: received "
            f"whole_graph of {len(whole_graph.flatbuffer):,} B on images {whole_graph.images.shape}, "
            f"flatbuffer of {len(flatbuffer):,} B and images {images.shape}"
        )
    plan = patch_phases(flatbuffer, cut_op, tiles, suffix, query_chunks, store_inputs)
    streamed, held = schedule_program(plan), schedule_program(plan, image_in_sram=True)
    run = run_program(streamed, images)
    streamed, held = fit_program(streamed, run.arenas), fit_program(held, run.arenas)
    whole, whole_macs = whole_graph.run, whole_graph.macs
    sram = {"image_streamed": program_sram(streamed, run.arenas), "image_held": program_sram(held, run.arenas)}
    phases = {}
    for row in sram["image_streamed"]["steps"]:  # the largest step of each phase
        best = phases.get(row["label"])
        if best is None or row["arena_bytes"] + row["pool_bytes"] > best["arena_bytes"] + best["pool_bytes"]:
            phases[row["label"]] = {"arena_bytes": row["arena_bytes"], "pool_bytes": row["pool_bytes"]}
    schedule_macs = sum(graph_profile(streamed.models[step.model])["macs"] for step in streamed.steps)
    count = len(images)  # a schedule's outputs come flat; a detector's whole graph gives maps
    difference = np.abs(run.outputs.reshape(count, -1).astype(np.int64) - whole.outputs.reshape(count, -1))
    peak = sram["image_streamed"]["peak_bytes"]
    report = {
        "cut_op": cut_op,
        "cut": plan.stage.graph.describe(cut_op),
        "tiles": tiles,
        "suffix": suffix,
        "query_chunks": query_chunks,
        "store_inputs": store_inputs,
        "phases": phases,
        "steps": sram["image_streamed"]["steps"],
        "tflm_invokes_per_image": len(streamed.steps),
        "phase_models": len(streamed.models),
        "pool_bytes_image_streamed": streamed.pool_bytes,
        "peak_sram_image_streamed": int(peak),
        "peak_sram_image_held": int(sram["image_held"]["peak_bytes"]),
        "whole_graph_arena_bytes": int(whole.arena_bytes),
        "reduction_image_streamed": round(whole.arena_bytes / peak, 3),
        "macs_whole_graph": int(whole_macs),
        "macs_schedule": int(schedule_macs),
        "mac_overhead": round(schedule_macs / whole_macs, 4),
        "flash_bytes_schedule": sum(len(micro_flatbuffer(m)) for m in streamed.models),
        "flash_bytes_whole_graph": whole_graph.flash_bytes,
        "tflm_seconds_per_image_schedule": round(run.seconds_per_image, 6),
        "tflm_seconds_per_image_whole_graph": round(whole.seconds_per_invoke, 6),
        "images": int(len(images)),
        "max_lsb_vs_whole_graph": int(difference.max()),
        "argmax_agreement_vs_whole_graph": float(np.mean(run.outputs.argmax(-1) == whole.outputs.argmax(-1))),
    }
    if labels is not None:
        report["top1_schedule"] = float(np.mean(run.outputs.argmax(-1) == np.asarray(labels)))
        report["top1_whole_graph"] = float(np.mean(whole.outputs.argmax(-1) == np.asarray(labels)))
    return report


# the ends of blocks (a residual block ends at its add) and pooling layers where a patch stage may
# end, and the grid, suffix split, query slices and stored maps tried at each
BLOCK_ENDS = ("_add", "_pool", "_project_BN")
SETTINGS = tuple(
    {"tiles": tiles, "suffix": suffix, "query_chunks": chunks, "store_inputs": store}
    for tiles in (2, 3, 4)
    for suffix, chunks, store in (("whole", 1, False), ("blocks", 4, False), ("blocks", 4, True), ("blocks", 8, True))
)


def schedule_cuts(model, count=6):
    """The first `count` block ends and pooling layers of `model` (the high-resolution prefix);
    a projection that a residual add follows is not a block end."""
    names = [layer.name for layer in model.layers]
    followed_by_add = {name[: -len("add")] + "project_BN" for name in names if name.endswith("_add")}
    return [name for name in names if name.endswith(BLOCK_ENDS) and name not in followed_by_add][:count]


def search_schedules(flatbuffer, model, quantized_image, max_mac_overhead=1.3, cuts=None, log=None, settings=SETTINGS):
    """Measures every candidate schedule (`cuts`, default `schedule_cuts`, x `settings`: dicts of
    `measure_schedule`'s tiles, suffix, query_chunks and store_inputs) in TFLM on one image and
    returns (choice, rows): the lowest peak SRAM (image streamed) whose MACs are at most
    `max_mac_overhead` x the whole graph's (ties: fewer MACs), or None when no such schedule
    needs less SRAM than the whole graph's TFLM arena; rows have every candidate's
    `measure_schedule` figures, or its `error` when the int8 phases cannot run it."""
    rows, whole_graph = [], WholeGraph(flatbuffer, quantized_image)
    for cut in cuts or schedule_cuts(model):
        try:
            cut_op = cut_op_of(flatbuffer, model, cut)
        except ValueError as error:
            rows.extend({"layer": cut, **setting, "error": str(error)} for setting in settings)
            continue
        for setting in settings:
            try:
                row = measure_schedule(flatbuffer, cut_op, images=quantized_image, whole_graph=whole_graph, **setting)
            except ValueError as error:
                rows.append({"layer": cut, **setting, "error": str(error)})
                continue
            rows.append({**row, "layer": cut})
            if log:
                log(
                    f"{describe_setting({'cut': cut, **setting})}: peak "
                    f"{row['peak_sram_image_streamed']:,} B, MACs x{row['mac_overhead']}"
                )
    choice = lowest_peak(rows, max_mac_overhead)
    if choice is not None and choice["peak_sram_image_streamed"] >= choice["whole_graph_arena_bytes"]:
        choice = None
    return choice, rows
