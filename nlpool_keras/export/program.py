"""A patch schedule as a program: the steps a runner (Python or the firmware's `main.cc`) executes,
the buffers that carry tensors between steps, and where each buffer sits in SRAM.

    plan = patch_phases(flatbuffer, cut_op=36, tiles=3)
    program = schedule_program(plan)
    program.steps[0]        # Step(label="tiles 1", model=0, reads=[Access(0, ((0, 40), (0, 40)))], ...)
    program = fit_program(program, arenas)   # arenas: {model index: TFLM arena bytes}
    sram = program_sram(program, arenas)

A step runs one phase model once: it copies each read (a buffer's row/column region) into the
model's inputs, invokes it, and pastes each output into a buffer's region. Every buffer is a
row-major (height, width, channels) int8 map. The image is buffer 0; with `image_in_sram=False`
it is not held but streamed: the runner reads each step's crop from its source (camera, flash).
The last step's outputs are the model's outputs, handed to the caller (not held either).

Held buffers live in a pool at the top of one SRAM block; each step's TFLM arena is the block
below the buffers alive during that step. A step copies its reads from the pool into its
arena, invokes, and copies its writes out: a buffer lives from the copy-out that fills it to
the copy-in that last reads it, so a step's output may reuse the bytes of its own input. The
schedule's peak SRAM is the largest arena + pool extent over the steps. `schedule_program`
places the largest buffers nearest the top; once each step's arena is measured, `fit_program`
re-places them so that the buffers alive during the largest arenas sit nearest the top.

Shapes: an Access region is ((row0, row1), (col0, col1)), or None for the whole buffer.
"""

import collections

import numpy as np

Buffer = collections.namedtuple("Buffer", ["name", "shape", "offset"])  # offset from the pool's top; None: not held
Access = collections.namedtuple("Access", ["buffer", "region"])
Step = collections.namedtuple("Step", ["label", "model", "reads", "writes"])
Program = collections.namedtuple("Program", ["models", "buffers", "steps", "outputs", "pool_bytes"])

ALIGNMENT = 16  # pool offsets, as TFLM aligns its tensors


def aligned(size):
    """`size` rounded up to `ALIGNMENT` bytes."""
    return -(-int(size) // ALIGNMENT) * ALIGNMENT


def _map_shape(stage, tensor):
    """(height, width, channels) of a tensor as a row-major map on its row and column axes (a
    tensor after the cut: its (1, H, W, C) shape)."""
    if tensor not in stage.layouts:
        return tuple(stage.graph.shape(tensor)[1:])
    rows, cols = stage.sizes(tensor)
    return (rows, cols, int(np.prod(stage.graph.shape(tensor))) // (rows * cols))


def schedule_program(plan, image_in_sram=False):
    """The `Program` of a `export.phases.PatchPhases` plan; identical phase flatbuffers (tiles of
    the same shape and border) are one model."""
    stage = plan.stage
    graph = stage.graph
    models, model_index = [], {}
    buffers, buffer_of = [], {}

    def model(flatbuffer):
        if flatbuffer not in model_index:
            model_index[flatbuffer] = len(models)
            models.append(flatbuffer)
        return model_index[flatbuffer]

    def buffer(tensor, name, shape=None):
        if tensor not in buffer_of:
            buffer_of[tensor] = len(buffers)
            buffers.append(Buffer(name, shape or _map_shape(stage, tensor), None))
        return buffer_of[tensor]

    buffer(graph.image, "image")
    steps = []

    def tile_steps(label, phases):
        for phase in phases:
            reads = [Access(buffer(t, f"{label} input"), phase.regions[t]) for t in phase.inputs]
            writes = [Access(buffer(t, f"{label} output"), phase.regions[t]) for t in phase.outputs]
            steps.append(Step(label, model(phase.flatbuffer), reads, writes))

    def whole_step(label, phase, shapes=None):
        reads = [Access(buffer_of[t], None) for t in phase.inputs]
        writes = [Access(buffer(t, f"{label} output", shapes and shapes[k]), None) for k, t in enumerate(phase.outputs)]
        steps.append(Step(label, model(phase.flatbuffer), reads, writes))

    for k, (tiles, phase) in enumerate(zip(plan.passes, plan.global_phases, strict=False), start=1):
        tile_steps(f"tiles {k}", tiles)
        if phase is not None:  # None: a pass that stores a map, no attention after it
            whole_step(f"attention {k}", phase)
    tile_steps("cut tiles", plan.passes[-1])
    for k, phase in enumerate(plan.suffix, start=1):
        last = k == len(plan.suffix)
        shapes = [_flat_shape(graph.shape(t)) for t in phase.outputs] if last else None
        whole_step("suffix" if len(plan.suffix) == 1 else f"suffix {k}", phase, shapes)
    outputs = [access.buffer for access in steps[-1].writes]
    held = [b for b in range(len(buffers)) if b not in outputs and (b != 0 or image_in_sram)]
    spans = _lifetimes(steps)
    buffers, pool_bytes = _place(buffers, sorted(held, key=lambda b: -int(np.prod(buffers[b].shape))), spans)
    return Program(models, buffers, steps, outputs, pool_bytes)


def fit_program(program, arenas):
    """`program` with its pool placed for the lowest peak SRAM given each step's TFLM arena
    (`arenas`: {model index: bytes}): the held buffers are placed in each of a few orders (largest
    first; those alive during the largest arenas first, so that they sit nearest the top; by first
    and by last use) and the placement with the lowest `program_sram` peak is kept."""
    held = [b for b, buf in enumerate(program.buffers) if buf.offset is not None]
    spans = _lifetimes(program.steps)
    size = {b: int(np.prod(program.buffers[b].shape)) for b in held}
    during = {b: max(arenas[step.model] for s, step in enumerate(program.steps) if _alive(spans[b], s)) for b in held}
    orders = [
        sorted(held, key=lambda b: -size[b]),
        sorted(held, key=lambda b: (-during[b], -size[b])),
        sorted(held, key=lambda b: spans[b][0]),
        sorted(held, key=lambda b: -spans[b][1]),
    ]
    best = None
    for order in orders:
        buffers, pool_bytes = _place(program.buffers, order, spans)
        candidate = program._replace(buffers=buffers, pool_bytes=pool_bytes)
        peak = program_sram(candidate, arenas)["peak_bytes"]
        if best is None or peak < best[0]:
            best = (peak, candidate)
    return best[1]


def _flat_shape(shape):
    """A model output (1, ..., n) as a (1, 1, n) map."""
    return (1, 1, int(np.prod(shape)))


def _lifetimes(steps):
    """{buffer: (first, last)} time points that read or write it: step s copies its reads in at
    time 2s and its writes out at 2s + 1, so a step's output may take its input's bytes."""
    spans = {}
    for s, step in enumerate(steps):
        for time, accesses in ((2 * s, step.reads), (2 * s + 1, step.writes)):
            for access in accesses:
                first, last = spans.get(access.buffer, (time, time))
                spans[access.buffer] = (min(first, time), max(last, time))
    return spans


def _alive(span, step):
    """True when a buffer living over `span` (`_lifetimes`' time points) is in the pool during
    step `step` (its copy-in at 2 * step, its copy-out at 2 * step + 1)."""
    return span[0] <= 2 * step + 1 and 2 * step <= span[1]


def _place(buffers, order, spans):
    """Offsets from the pool's top for the held buffers, in `order`: each at the lowest aligned
    offset free of the buffers alive at the same time; the others' offsets are None."""
    placed = []  # (offset, end, first, last)
    offsets = {}
    for b in order:
        size = aligned(np.prod(buffers[b].shape))
        first, last = spans[b]
        taken = sorted((start, end) for start, end, born, dies in placed if born <= last and first <= dies)
        offset = 0
        for start, end in taken:
            if offset + size <= start:
                break
            offset = max(offset, end)
        placed.append((offset, offset + size, first, last))
        offsets[b] = offset
    pool = max((end for _, end, _, _ in placed), default=0)
    return [buf._replace(offset=offsets.get(b)) for b, buf in enumerate(buffers)], pool


def step_extents(program):
    """Bytes of the pool in use (from its top) during each step: the larger of its copy-in and
    its copy-out time."""
    spans = _lifetimes(program.steps)
    extents = []
    for s in range(len(program.steps)):
        live = [
            buf.offset + int(np.prod(buf.shape))
            for b, buf in enumerate(program.buffers)
            if buf.offset is not None and _alive(spans[b], s)
        ]
        extents.append(max(live, default=0))
    return extents


def block_bytes(program, step_arenas):
    """The one SRAM block the steps run in: per step its arena (`step_arenas`, bytes, in step
    order) below the pool in use, both rounded up to `ALIGNMENT`; the largest."""
    steps = zip(step_arenas, step_extents(program), strict=True)
    return max(aligned(arena) + aligned(extent) for arena, extent in steps)


def program_sram(program, arenas):
    """Per step: its TFLM arena (`arenas`: {model index: bytes}) and the pool in use; the peak."""
    rows = [
        {"label": step.label, "arena_bytes": int(arenas[step.model]), "pool_bytes": int(extent)}
        for step, extent in zip(program.steps, step_extents(program), strict=True)
    ]
    return {"steps": rows, "peak_bytes": max(r["arena_bytes"] + r["pool_bytes"] for r in rows)}


def region_of(program, access):
    """An access's region, ((0, height), (0, width)) for the whole buffer."""
    height, width, _ = program.buffers[access.buffer].shape
    return access.region or ((0, height), (0, width))


def program_manifest(program, model_files):
    """The program as JSON-ready data; `model_files` names each model's file."""

    def accesses(items):
        return [[a.buffer, None if a.region is None else [[int(v) for v in axis] for axis in a.region]] for a in items]

    return {
        "models": list(model_files),
        "buffers": [{"name": b.name, "shape": [int(d) for d in b.shape], "offset": b.offset} for b in program.buffers],
        "steps": [
            {
                "label": step.label,
                "model": step.model,
                "reads": accesses(step.reads),
                "writes": accesses(step.writes),
            }
            for step in program.steps
        ],
        "outputs": list(program.outputs),
        "pool_bytes": program.pool_bytes,
    }


def program_from_manifest(manifest, models):
    """The `Program` of `program_manifest(...)` data, with the models' bytes `models`."""

    def accesses(items):
        return [Access(b, None if r is None else tuple(tuple(axis) for axis in r)) for b, r in items]

    return Program(
        list(models),
        [Buffer(b["name"], tuple(b["shape"]), b["offset"]) for b in manifest["buffers"]],
        [Step(s["label"], s["model"], accesses(s["reads"]), accesses(s["writes"])) for s in manifest["steps"]],
        list(manifest["outputs"]),
        manifest["pool_bytes"],
    )
