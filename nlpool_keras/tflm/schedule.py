"""A patch schedule's int8 phases run in TFLM, assembled, with each phase's arena measured.

    plan = patch_phases(flatbuffer, cut_op=36, tiles=3)
    run = run_phases(plan, quantized_images)
    run.outputs          # equals the whole flatbuffer's TFLM outputs
    run.arenas           # {"pass 1": bytes, "global": ..., "pass 2": ..., "suffix": ...}

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
        {phase: bytes held outside that phase's arena while it runs: the assembled tensors
        it fills or reads later}, number of TFLM invocations per image).
    """
    stage = plan.stage
    images = np.asarray(quantized_images)
    values = {stage.graph.image: images}
    arenas, held, invokes = {}, {}, 0
    first, second = plan.passes
    if plan.global_phase is not None:
        tokens, arenas["pass 1"] = _run_tiles(first, values, stage)
        held["pass 1"] = sum(_nbytes(stage, t) for t in plan.global_phase.inputs)
        inputs = [tokens[t] for t in plan.global_phase.inputs]
        outputs = plan.global_phase.outputs
        run = run_tflm(plan.global_phase.flatbuffer, inputs, outputs=len(outputs))
        results = run.outputs if len(outputs) > 1 else [run.outputs]
        arenas["global"], held["global"] = run.arena_bytes, 0
        values.update(
            {t: r.reshape(len(images), *stage.graph.shape(t)[1:]) for t, r in zip(outputs, results, strict=True)}
        )
        invokes += len(first) + 1
    cut, arenas["pass 2"] = _run_tiles(second, values, stage)
    held["pass 2"] = _nbytes(stage, stage.cut)
    if plan.global_phase is not None:
        held["pass 2"] += sum(_nbytes(stage, t) for t in plan.global_phase.outputs)
    run = run_tflm(plan.suffix.flatbuffer, cut[stage.cut])
    arenas["suffix"], held["suffix"] = run.arena_bytes, 0
    return PhaseRun(run.outputs, arenas, held, invokes + len(second) + 1)
