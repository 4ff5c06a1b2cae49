"""What a patch schedule costs: MACs against the whole graph, and int8 activation bytes.

    schedule.run_stage(images[:1])          # records what each tile computes
    figures = schedule_cost(schedule)

The memory figures are int8 tensor liveness, counted the way `nlpool_keras.profile` counts the
whole graph (one byte per element, a tensor live from the step that makes it to the last step
that reads it, scratch buffers excluded): a lower bound for an allocator, not a TFLM arena.
Per tile, the live tensor regions; between tiles, the buffers that persist: the assembled
patch-stage output (pass 2) and, for each self-attentive layer, its token grid (pass 1) and its
pooling logits at token resolution. The input image is counted two ways: streamed tile by tile
from its source (only each tile's crop is in SRAM) and held whole in SRAM.
"""

import math

import numpy as np

from nlpool_keras.layers.cost import attention_tokens, pooling_macs
from nlpool_keras.layers.self_attentive import embed_width
from nlpool_keras.schedule.patches import Step, inputs_of


def layer_macs(layer, output_shape, input_shape):
    """MACs of one layer producing `output_shape` (h, w, c) from `input_shape` (h, w, c), counted
    as `nlpool_keras.profile` counts the int8 graph: convolutions and matrix products only
    (elementwise ops, BatchNorm and the pooling's window weighting count none). A
    self-attentive layer's token embedding and attention are counted apart (pass 1)."""
    name = type(layer).__name__
    out = int(np.prod(output_shape))
    if name == "Conv2D":
        return out * int(np.prod(layer.kernel.shape[:3]))
    if name == "DepthwiseConv2D":
        return out * int(np.prod(layer.kernel.shape[:2]))
    if name == "LocalImportancePooling2D":  # its 1x1 convolution
        return int(np.prod(input_shape)) * int(input_shape[-1])
    return 0


def attention_macs(layer):
    """MACs of a self-attentive layer's global part: projections, attention, restoration."""
    height, width, channels = layer.input.shape[1:]
    e = embed_width(channels, layer.num_heads, layer.embed_ratio)
    tokens = attention_tokens(layer, (None, height, width, channels))
    return 4 * tokens * e * e + 2 * tokens * tokens * e + tokens * e * channels


# layers whose int8 form is fused into the producer or runs in place (the converter folds an
# explicit ZeroPadding2D into the strided convolution after it)
IN_PLACE = ("BatchNormalization", "ReLU", "Activation", "Dropout", "Rescaling", "ZeroPadding2D")


def working_bytes(layer, input_shape, whole):
    """int8 bytes a self-attentive layer holds while it runs beside its input and output: the
    pooling logits and window weights at input resolution and, run `whole`, the attention's
    tokens, queries, keys, values and scores (heads x L^2)."""
    if type(layer).__name__ != "SelfAttentivePooling2D":
        return 0
    held = 2 * int(np.prod(input_shape))
    if whole:
        tokens = math.prod(layer.grid)
        held += 4 * tokens * layer.embed_conv.filters + layer.num_heads * tokens**2
    return held


def trace_figures(steps, whole=False):
    """(MACs, peak live int8 bytes, input crop bytes) of `Step`s in execution order: a tensor
    is live from the step that makes it to the last step that reads it; the output of a
    BatchNorm, ReLU or other one-input elementwise layer is its input's tensor (the int8 graph
    fuses them into the convolution or runs them in place); a self-attentive layer adds its
    `working_bytes` (`whole`: with its attention, as in a whole graph or the suffix)."""
    owner = {}
    for step in steps:
        single = type(step.layer).__name__ in IN_PLACE and len(step.reads) == 1
        owner[id(step.layer)] = owner.get(id(step.reads[0]), id(step.reads[0])) if single else id(step.layer)
    born, last_read, sizes, shapes = {}, {}, {}, {}
    for index, step in enumerate(steps):
        key = owner[id(step.layer)]
        born.setdefault(key, index)
        last_read[key] = max(last_read.get(key, index), index)
        sizes.setdefault(key, int(np.prod(step.shape)))
        shapes[id(step.layer)] = step.shape
        for source in step.reads:
            if id(source) in owner:
                last_read[owner[id(source)]] = index
    macs, peak = 0, 0
    for index, step in enumerate(steps):
        working = 0
        if step.reads and id(step.reads[0]) in shapes:
            macs += layer_macs(step.layer, step.shape, shapes[id(step.reads[0])])
            working = working_bytes(step.layer, shapes[id(step.reads[0])], whole)
        live = sum(size for key, size in sizes.items() if born[key] <= index <= last_read[key])
        peak = max(peak, live + working)
    crop = sum(int(np.prod(step.shape)) for step in steps if type(step.layer).__name__ == "InputLayer")
    return macs, peak, crop


def graph_steps(layers, start=None):
    """`Step`s of `layers` (inputs first) run whole; `start`: a layer whose output is given."""
    steps = [Step(start, tuple(start.output.shape[1:]), [])] if start is not None else []
    for layer in layers:
        if layer is not start:
            steps.append(Step(layer, tuple(layer.output.shape[1:]), inputs_of(layer)))
    return steps


def full_macs(layer):
    """MACs of one layer of a functional model run whole (convolutions, dense, pooling weights)."""
    name = type(layer).__name__
    if name in ("SelfAttentivePooling2D", "GaussianPooling2D"):  # less the window weighting, elementwise
        return pooling_macs(layer, layer.input.shape) - int(np.prod(layer.input.shape[1:]))
    if name == "Dense":
        return int(np.prod(layer.output.shape[1:])) * int(layer.kernel.shape[0])
    if name in ("Conv2D", "DepthwiseConv2D", "LocalImportancePooling2D"):
        return layer_macs(layer, layer.output.shape[1:], layer.input.shape[1:])
    return 0


def schedule_cost(schedule):
    """Figures of a schedule after `schedule.run_stage(...)` (one image is enough).

    Returns:
        dict: `cut`, `tiles`; `macs` and `whole_macs` of the model (patch stage with all its
        passes and halos + suffix, and the model run whole) and their ratio `mac_overhead`;
        per phase the largest tile's live bytes and the buffers persisting meanwhile; the
        int8 liveness peaks `stage_peak_bytes_image_streamed` / `..._image_in_sram` of the
        patch stage, `suffix_peak_bytes`, the schedule's `peak_bytes_image_streamed` and
        `peak_bytes_image_in_sram` (their maxima), and `whole_graph_peak_bytes` (the model run
        whole, counted the same way).
    """
    if not getattr(schedule, "traces", None):
        raise ValueError("run the schedule first (schedule.run_stage(images)) so that its tiles are traced")
    model = schedule.model
    height, width, channels = schedule.stage_output.shape[1:]
    image = int(np.prod(model.inputs[0].shape[1:]))
    stage_output = height * width * channels
    tokens = {layer.name: math.prod(layer.grid) * layer.embed_conv.filters for layer in schedule.two_pass}
    logits = {layer.name: math.prod(layer.grid) * layer.input.shape[-1] for layer in schedule.two_pass}
    phases, stage_macs = {}, sum(attention_macs(layer) for layer in schedule.two_pass)
    for phase, _, steps in schedule.traces:
        tile_macs, live, crop = trace_figures(steps)
        stage_macs += tile_macs
        # persistent while a phase runs: the logits of the self-attentive layers before it, and
        # the tokens (pass 1) or the assembled stage output (pass 2) being filled
        finished = [name for name in logits if f"pass 1 of {name}" in phases and not phase.endswith(name)]
        persistent = sum(logits[name] for name in finished)
        persistent += tokens[phase[len("pass 1 of ") :]] if phase.startswith("pass 1") else stage_output
        row = phases.setdefault(phase, {"largest_tile_bytes": 0, "persistent_bytes": persistent, "crop_bytes": 0})
        row["largest_tile_bytes"] = max(row["largest_tile_bytes"], live)
        row["crop_bytes"] = max(row["crop_bytes"], crop)
    suffix_layers = [layer for layer in model.layers if layer not in schedule.stage_layers]
    suffix_peak = trace_figures(graph_steps(suffix_layers, start=schedule.cut), whole=True)[1]
    whole_peak = trace_figures(graph_steps(model.layers), whole=True)[1]
    whole_macs = sum(full_macs(layer) for layer in model.layers)
    suffix_macs = sum(full_macs(layer) for layer in suffix_layers)
    streamed = max(row["largest_tile_bytes"] + row["persistent_bytes"] for row in phases.values())
    held = max(
        row["largest_tile_bytes"] - row["crop_bytes"] + row["persistent_bytes"] + image for row in phases.values()
    )
    return {
        "cut": schedule.cut.name,
        "tiles": schedule.tiles,
        "macs": int(stage_macs + suffix_macs),
        "whole_macs": int(whole_macs),
        "mac_overhead": round((stage_macs + suffix_macs) / whole_macs, 4),
        "phases": phases,
        "stage_output_bytes": stage_output,
        "stage_peak_bytes_image_streamed": int(streamed),
        "stage_peak_bytes_image_in_sram": int(held),
        "suffix_peak_bytes": int(suffix_peak),
        "peak_bytes_image_streamed": int(max(streamed, suffix_peak)),
        "peak_bytes_image_in_sram": int(max(held, suffix_peak)),
        "whole_graph_peak_bytes": int(whole_peak),
    }
