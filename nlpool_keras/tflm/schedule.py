"""A patch schedule's int8 phases run in TFLM, assembled, with each phase's arena measured.

    plan = patch_phases(flatbuffer, cut_op=36, tiles=3)
    run = run_phases(plan, quantized_images)
    run.outputs          # equals the whole flatbuffer's TFLM outputs
    run.arenas           # {"tiles 1": bytes, "attention 1": ..., "cut tiles": ..., "suffix": ...}

Shapes: quantized_images (M, H, W, 3) int8 -> outputs (M, classes) int8.
"""

import collections

import numpy as np

from nlpool_keras.tflm.child import run_tflm

PhaseRun = collections.namedtuple("PhaseRun", ["outputs", "arenas", "held_bytes", "invokes"])


def _crop(array, region):
    """Rows and columns `region` of an (M, H, W, C) array."""
    (r0, r1), (c0, c1) = region
    return array[:, r0:r1, c0:c1]


def _nbytes(stage, tensor):
    return int(np.prod(stage.graph.shape(tensor)))  # int8


def _run_tiles(phases, values, stage):
    """Runs each tile phase on its crops of `values`; pastes its outputs into new whole arrays."""
    assembled, arena = {}, 0
    for phase in phases:
        inputs = [_crop(values[t], phase.regions[t]) for t in phase.inputs]
        run = run_tflm(phase.flatbuffer, inputs, outputs=len(phase.outputs))
        results = run.outputs if len(phase.outputs) > 1 else [run.outputs]
        arena = max(arena, run.arena_bytes)
        for tensor, result in zip(phase.outputs, results, strict=True):
            if tensor not in assembled:
                assembled[tensor] = np.zeros((len(inputs[0]), *stage.graph.shape(tensor)[1:]), result.dtype)
            (r0, r1), (c0, c1) = phase.regions[tensor]
            assembled[tensor][:, r0:r1, c0:c1] = result.reshape(len(result), r1 - r0, c1 - c0, -1)
    return assembled, arena


def run_phases(plan, quantized_images):
    """Runs `plan` (`export.phases.patch_phases`) in TFLM, phase by phase, over a batch.

    Returns:
        PhaseRun(outputs (M, ...) of the suffix, {phase: largest TFLM arena measured},
        {phase: bytes held outside that phase's arena while it runs: the assembled tensors it
        fills and the attention results later tiles read}, TFLM invocations per image).
    """
    stage = plan.stage
    images = np.asarray(quantized_images)
    values = {stage.graph.image: images}
    arenas, held, invokes, kept = {}, {}, 0, 0  # kept: attention results held for later tiles
    for k, (tiles, phase) in enumerate(zip(plan.passes, plan.global_phases, strict=False), start=1):
        tokens, arenas[f"tiles {k}"] = _run_tiles(tiles, values, stage)
        held[f"tiles {k}"] = kept + sum(_nbytes(stage, t) for t in phase.inputs)
        run = run_tflm(phase.flatbuffer, [tokens[t] for t in phase.inputs], outputs=len(phase.outputs))
        results = run.outputs if len(phase.outputs) > 1 else [run.outputs]
        arenas[f"attention {k}"], held[f"attention {k}"] = run.arena_bytes, kept
        for tensor, result in zip(phase.outputs, results, strict=True):
            values[tensor] = result.reshape(len(images), *stage.graph.shape(tensor)[1:])
        kept += sum(_nbytes(stage, t) for t in phase.outputs)
        invokes += len(tiles) + 1
    cut, arenas["cut tiles"] = _run_tiles(plan.passes[-1], values, stage)
    held["cut tiles"] = kept + _nbytes(stage, stage.cut)
    value = cut[stage.cut]
    for k, phase in enumerate(plan.suffix, start=1):
        name = "suffix" if len(plan.suffix) == 1 else f"suffix {k}"
        run = run_tflm(phase.flatbuffer, value)
        arenas[name], held[name], value = run.arena_bytes, 0, run.outputs
    return PhaseRun(value, arenas, held, invokes + len(plan.passes[-1]) + len(plan.suffix))
