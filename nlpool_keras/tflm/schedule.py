"""A patch schedule's program (`export.program`) run in TFLM step by step, as the firmware runs it.

    program = schedule_program(patch_phases(flatbuffer, cut_op=36, tiles=3))
    run = run_program(program, quantized_images)
    run.outputs          # equals the whole flatbuffer's TFLM outputs
    run.arenas           # {model index: TFLM arena bytes}

Shapes: quantized_images (M, H, W, 3) int8 -> outputs (M, classes) int8 (a list for several outputs).
"""

import collections

import numpy as np

from nlpool_keras.export.program import region_of
from nlpool_keras.tflm.child import TFLMWorker

ProgramRun = collections.namedtuple("ProgramRun", ["outputs", "arenas", "seconds_per_image"])


def _crop(array, region):
    (r0, r1), (c0, c1) = region
    return array[:, r0:r1, c0:c1]


def run_program(program, quantized_images, record=None):
    """Runs every step of `program` in TFLM over a batch of images; each buffer is a whole
    (M, H, W, C) array here (the firmware's pool shares memory between buffers by lifetime).

    Args:
        program: an `export.program.Program`.
        quantized_images: (M, H, W, 3) int8.
        record: a list that gets (inputs, outputs) of every step, in order, when given.

    Returns:
        ProgramRun(outputs, {model: arena bytes}, seconds of TFLM invokes per image: the sum of
        each step's median invoke time with reference kernels on this host).
    """
    images = np.asarray(quantized_images)
    count = len(images)
    values = {0: images}
    arenas, seconds = {}, 0.0
    with TFLMWorker() as worker:
        for step in program.steps:
            inputs = [_crop(values[a.buffer], region_of(program, a)) for a in step.reads]
            run = worker.run(program.models[step.model], inputs, outputs=len(step.writes))
            results = run.outputs if len(step.writes) > 1 else [run.outputs]
            arenas[step.model], seconds = run.arena_bytes, seconds + run.seconds_per_invoke
            for access, result in zip(step.writes, results, strict=True):
                height, width, channels = program.buffers[access.buffer].shape
                if access.buffer not in values:
                    values[access.buffer] = np.zeros((count, height, width, channels), result.dtype)
                (r0, r1), (c0, c1) = region_of(program, access)
                values[access.buffer][:, r0:r1, c0:c1] = result.reshape(count, r1 - r0, c1 - c0, channels)
            if record is not None:
                record.append((inputs, results))
    outputs = [values[b].reshape(count, *program_output_shape(program, b)) for b in program.outputs]
    return ProgramRun(outputs[0] if len(outputs) == 1 else outputs, arenas, seconds)


def program_output_shape(program, buffer):
    """A final output's shape without the batch axis: (classes,) for a classifier."""
    return (int(np.prod(program.buffers[buffer].shape)),)
