"""A patch schedule measured in TFLM: each phase's arena, the schedule's peak SRAM, its MACs,
and its outputs against the whole-graph int8 model.

    report = measure_schedule(flatbuffer, cut_op_of(flatbuffer, model, "block_6_pool"), 3, images)
    report["peak_sram_image_streamed"], report["whole_graph_arena_bytes"], report["mac_overhead"]

The peak SRAM of a phase is its TFLM arena (measured; it holds the phase's own inputs, the
image crop included) plus what stays in SRAM outside it while it runs: the assembled tensors
it fills (tokens, cut tensor) or reads later (the attention's logits). With the whole int8
image held in SRAM, the image's bytes are added to every phase before the suffix.
"""

import numpy as np

from nlpool_keras.export.int8_graph import Int8Graph
from nlpool_keras.export.phases import patch_phases
from nlpool_keras.export.preflight import layer_of
from nlpool_keras.profile.graph import graph_profile
from nlpool_keras.tflm.child import run_tflm
from nlpool_keras.tflm.schedule import run_phases


def cut_op_of(flatbuffer, model, cut):
    """The int8 op that ends the patch stage at Keras layer `cut` of `model` (the flatbuffer's
    tensor names must be there): the last op whose tensor comes from `cut` or a layer before it."""
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    if cut not in order:
        raise ValueError(f"cut={cut!r} is not a layer of model '{model.name}'")
    graph = Int8Graph(flatbuffer)
    positions, position = [], -1
    for i in range(len(graph.ops)):  # an op whose tensor names no layer goes with the op before it
        layer = layer_of((graph.tensor(graph.output(i)).name or b"").decode(), order)
        position = order[layer] if layer is not None else position
        positions.append(position)
    if max(positions) < 0:
        raise ValueError("the flatbuffer's tensors name no layer of the model (names stripped?)")
    before = [i for i, position in enumerate(positions) if position <= order[cut]]
    if not before:
        raise ValueError(f"cut={cut!r}: no int8 op comes from it or a layer before it")
    return before[-1]


def _phase_macs(plan):
    phases = [p for group in plan.passes for p in group] + plan.global_phases + plan.suffix
    return sum(graph_profile(p.flatbuffer)["macs"] for p in phases)


def measure_schedule(flatbuffer, cut_op, tiles, quantized_images, labels=None, suffix="whole", query_chunks=1):
    """Runs the schedule's phases in TFLM on `quantized_images` (int8, (M, H, W, 3)) and the
    whole flatbuffer beside it; returns a dict of measured figures (see the module docstring)."""
    plan = patch_phases(flatbuffer, cut_op, tiles, suffix, query_chunks)
    run = run_phases(plan, quantized_images)
    whole = run_tflm(flatbuffer, quantized_images)
    graph = plan.stage.graph
    image_bytes = int(np.prod(graph.shape(graph.image)))
    phases = {name: {"arena_bytes": run.arenas[name], "held_bytes": run.held_bytes[name]} for name in run.arenas}
    streamed = max(p["arena_bytes"] + p["held_bytes"] for p in phases.values())
    held = max(
        p["arena_bytes"] + p["held_bytes"] + (0 if name.startswith("suffix") else image_bytes)
        for name, p in phases.items()
    )
    whole_macs = graph_profile(flatbuffer)["macs"]
    schedule_macs = _phase_macs(plan)
    difference = np.abs(run.outputs.astype(np.int64) - whole.outputs.astype(np.int64))
    report = {
        "cut_op": cut_op,
        "cut": graph.describe(cut_op),
        "tiles": tiles,
        "suffix": suffix,
        "query_chunks": query_chunks,
        "phases": phases,
        "tile_flatbuffers": [len(tiles) for tiles in plan.passes],
        "tflm_invokes_per_image": run.invokes,
        "peak_sram_image_streamed": int(streamed),
        "peak_sram_image_held": int(held),
        "whole_graph_arena_bytes": int(whole.arena_bytes),
        "reduction_image_streamed": round(whole.arena_bytes / streamed, 3),
        "macs_whole_graph": int(whole_macs),
        "macs_schedule": int(schedule_macs),
        "mac_overhead": round(schedule_macs / whole_macs, 4),
        "images": int(len(quantized_images)),
        "max_lsb_vs_whole_graph": int(difference.max()),
        "argmax_agreement_vs_whole_graph": float(np.mean(run.outputs.argmax(-1) == whole.outputs.argmax(-1))),
    }
    if labels is not None:
        report["top1_schedule"] = float(np.mean(run.outputs.argmax(-1) == np.asarray(labels)))
        report["top1_whole_graph"] = float(np.mean(whole.outputs.argmax(-1) == np.asarray(labels)))
    return report
