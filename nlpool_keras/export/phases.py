"""A patch schedule's phases cut out of the whole-graph int8 flatbuffer itself.

Each phase reuses the whole graph's ops, weights and quantization parameters, so the
assembled result equals the whole-graph int8 model bit for bit (same kernels, same scales).

- **Tiles.** The patch stage (ops 0..cut) runs once per tile of the cut tensor. Regions are
  propagated backwards from the tile through the ops (the halo); every tensor gets its
  region's shape; a region reaching past a map's border gets an explicit PAD (the int8 zero
  point is real 0, what "SAME" padding adds) before a "VALID" window; a reader that needs less
  than a tensor holds reads it through a STRIDED_SLICE. Regions follow the row and column
  axes through the reshapes and transposes of window pooling ((1, H, W, C) -> (H/p, p, W/p,
  p, C) -> ...), so self-attentive, LIP, SoftPool and average pooling tile too.
- **Passes around attention.** Ops where rows meet columns (the attention of a self-attentive
  layer: a reshape to tokens, BATCH_MATMUL, softmax over tokens), and the ops that read only
  their results until a result is a map on the token grid again, form a *global* phase run
  once per layer. Before it, a pass of tiles of the token grid computes its inputs (the
  projections); tiles after it read its results (the logits at token resolution) as a second
  input. k self-attentive layers in the stage give k + 1 passes of tiles. A later pass starts
  from the image again, or (`store_inputs`) from the map the layer reads, which the pass before
  its attention also writes out whole; at a resolution without such a layer a pass of its own
  writes a block's output whole (multi-stage patches, for any down-sampling).
- **Suffix.** The ops after the cut, reading the assembled cut tensor: in one phase, or in
  one phase per block (`suffix="blocks"`: TFLM keeps every conv's per-channel multipliers of
  a phase in its arena). `query_chunks` runs each attention outside the tiles in slices of
  its queries (the same values; one slice's scores alive at a time).

    plan = patch_phases(flatbuffer, cut_op=36, tiles=3, suffix="blocks", query_chunks=4)
    plan.passes[-1][0].regions     # {tensor: region} the first cut tile reads and writes

Shapes: a tile phase maps crops of its inputs (image, or logits in pass 2) to tile crops of
its outputs; regions are ((row0, row1), (col0, col1)) in each tensor's own row/column axes.
"""

import collections
import copy

import numpy as np

from nlpool_keras.export.int8_graph import GraphBuilder, Int8Graph
from nlpool_keras.export.patch_stage import ELEMENTWISE, WINDOWED, Stage
from nlpool_keras.export.preflight import layer_of
from nlpool_keras.schedule.patches import clip_region, split

# a phase: its flatbuffer, the source tensors of its inputs and outputs, and the region of each
# (None: whole); `regions` maps a source tensor to ((r0, r1), (c0, c1)) on its layout axes
Phase = collections.namedtuple("Phase", ["flatbuffer", "inputs", "outputs", "regions"])
PatchPhases = collections.namedtuple("PatchPhases", ["passes", "global_phases", "suffix", "stage"])
# suffix="whole": the ops after the cut in one phase; "blocks": one phase per stretch of ops that
# only one feature map leaves
SUFFIX_SPLITS = ("whole", "blocks")
# ops between the two products of an attention, each row-wise over the keys (int16 softmax: CAST, SOFTMAX, QUANTIZE)
ATTENTION_ROW_OPS = ("CAST", "SOFTMAX", "QUANTIZE")


def _region_shape(stage, tensor, region):
    shape = stage.graph.shape(tensor)
    for axis, (lo, hi) in zip(stage.layouts[tensor], region, strict=True):
        shape[axis] = hi - lo
    return shape


def _table_axes(stage, op_index, constant):
    """[(0 rows or 1 columns, axis)] of a constant operand of an element-wise op whose axes run
    along the output's rows or columns (aligned from the right, as broadcasting aligns them), or
    None when it is broadcast over both."""
    graph = stage.graph
    if graph.op_names[op_index] not in ELEMENTWISE:
        return None
    output = graph.output(op_index)
    out_shape, shape = graph.shape(output), graph.shape(constant)
    offset = len(out_shape) - len(shape)
    axes = [(k, axis - offset) for k, axis in enumerate(stage.layouts[output]) if axis >= offset]
    axes = [(k, axis) for k, axis in axes if shape[axis] > 1]
    return axes or None


def _tile_phase(stage, seeds, stored=()):
    """One tile: the ops that produce `seeds` ({tensor: region}) from the image, the global
    outputs and the `stored` maps, on regions; returns a `Phase`."""
    graph = stage.graph
    holds, reads = stage.regions(seeds, stored)
    builder = GraphBuilder(graph)
    sources = [t for t in [graph.image, *stage.global_outputs, *stored] if t in holds and t not in seeds]
    new = {t: builder.tensor_like(t, _region_shape(stage, t, holds[t])) for t in sources}
    for i in range(stage.cut_op + 1):
        output = graph.output(i)
        if output not in holds or i in stage.global_ops or output in new:
            continue
        source, name = graph.ops[i], graph.op_names[i]
        inputs = []
        for t in source.inputs:
            t = int(t)
            if t < 0:
                inputs.append(-1)
                continue
            if (i, t) not in reads:  # a constant: a per-position table is cut to the op's region
                axes = _table_axes(stage, i, t)
                if axes is None:
                    inputs.append(builder.tensor_like(t))
                else:
                    region = [holds[output][k] for k, _ in axes]
                    inputs.append(builder.constant_crop(t, [axis for _, axis in axes], region))
                continue
            span = reads[(i, t)]
            inside = clip_region(span, stage.extent(t))
            begin = [0] * len(graph.shape(t))
            for axis, (lo, _), (held_lo, _) in zip(stage.layouts[t], inside, holds[t], strict=True):
                begin[axis] = lo - held_lo
            read = builder.crop(new[t], _region_shape(stage, t, inside), begin, t)
            padding = tuple((lo_in - lo, hi - hi_in) for (lo, hi), (lo_in, hi_in) in zip(span, inside, strict=True))
            inputs.append(builder.pad(read, padding, t) if name in WINDOWED + ("PAD",) else read)
        out_shape = _region_shape(stage, output, holds[output])
        if name in ("PAD", "STRIDED_SLICE"):  # the crop and pad above already are this op
            new[output] = inputs[0]
            continue
        new[output] = builder.tensor_like(output, out_shape)
        options = source.builtinOptions
        if name in WINDOWED:
            options = copy.copy(options)
            options.padding = builder.schema.Padding.VALID
        elif name == "RESHAPE":
            if options is not None:
                options = copy.copy(options)
                options.newShape = np.asarray(out_shape, np.int32)
            inputs = inputs[:1] + [builder.constant_int32(out_shape)]
        elif name == "RESIZE_NEAREST_NEIGHBOR":
            inputs = inputs[:1] + [builder.constant_int32(out_shape[1:3])]
        elif name == "BROADCAST_TO":
            inputs = inputs[:1] + [builder.constant_int32(out_shape)]
        builder.copy_op(source, inputs, [new[output]], options)
    outputs = list(seeds)
    flatbuffer = builder.finish([new[t] for t in sources], [new[t] for t in outputs])
    return Phase(flatbuffer, sources, outputs, {t: holds[t] for t in sources + outputs})


def _attention_chains(graph, op_indices):
    """{second BATCH_MATMUL: (first BATCH_MATMUL, [the ops between])} of each scores -> softmax ->
    weighted sum chain among `op_indices`, softmax(q k^T) v; between the two products a SOFTMAX,
    in int8 or in int16 between its CAST and QUANTIZE (`export.int16_ops`)."""
    ops, chains = set(op_indices), {}
    for i in op_indices:
        if graph.op_names[i] != "BATCH_MATMUL":
            continue
        between, tensor = [], graph.output(i)
        while len(graph.readers[tensor]) == 1 and graph.op_names[graph.readers[tensor][0]] in ATTENTION_ROW_OPS:
            between.append(graph.readers[tensor][0])
            tensor = graph.output(between[-1])
        readers = graph.readers[tensor]
        if (
            "SOFTMAX" in (graph.op_names[b] for b in between)
            and set(between) <= ops
            and len(readers) == 1
            and graph.op_names[readers[0]] == "BATCH_MATMUL"
            and readers[0] in ops
            and int(graph.ops[readers[0]].inputs[0]) == tensor
        ):
            chains[readers[0]] = (i, between)
    return chains


def _chunked_attention(builder, graph, new, chain, query_chunks):
    """Emits softmax(q k^T) v in `query_chunks` slices of the queries and concatenates them:
    the same values, with one slice's scores alive at a time."""
    schema = builder.schema
    weighted, (scores, between) = chain
    query, keys = (int(t) for t in graph.ops[scores].inputs[:2])
    values, attended = int(graph.ops[weighted].inputs[1]), graph.output(weighted)
    shape = graph.shape(query)  # (1, heads, L, depth)
    tokens = graph.shape(graph.output(scores))[3]  # keys: (1, heads, depth, L), or (1, heads, L, depth) with adj_y
    pieces = []
    for start, stop in split(shape[2], min(query_chunks, shape[2])):
        rows = stop - start
        sliced = builder.crop(new[query], [*shape[:2], rows, shape[3]], [0, 0, start, 0], query)
        logits = builder.tensor_like(graph.output(scores), [*shape[:2], rows, tokens])
        builder.copy_op(graph.ops[scores], [sliced, new[keys]], [logits])
        for op in between:  # row-wise: the softmax and its int16 casts
            probabilities = builder.tensor_like(graph.output(op), [*shape[:2], rows, tokens])
            builder.copy_op(graph.ops[op], [logits], [probabilities])
            logits = probabilities
        piece = builder.tensor_like(attended, [*graph.shape(attended)[:2], rows, graph.shape(attended)[3]])
        builder.copy_op(graph.ops[weighted], [logits, new[values]], [piece])
        pieces.append(piece)
    new[attended] = builder.tensor_like(attended)
    options = schema.ConcatenationOptionsT()
    options.axis = 2
    builder.op(
        builder.code(schema.BuiltinOperator.CONCATENATION),
        pieces,
        [new[attended]],
        schema.BuiltinOptions.ConcatenationOptions,
        options,
    )


def _whole_phase(graph, op_indices, inputs, outputs, query_chunks=1):
    """Ops `op_indices` on whole tensors, from `inputs` to `outputs` (tensor indices); with
    `query_chunks` > 1, each attention's queries in that many slices (`_chunked_attention`)."""
    builder = GraphBuilder(graph)
    new = {t: builder.tensor_like(t) for t in inputs}
    chains = _attention_chains(graph, op_indices) if query_chunks > 1 else {}
    deferred = {op for scores, between in chains.values() for op in [scores, *between]}
    for i in op_indices:
        if i in deferred:
            continue
        if i in chains:
            _chunked_attention(builder, graph, new, (i, chains[i]), query_chunks)
            continue
        source = graph.ops[i]
        reads = [-1 if t < 0 else new[int(t)] if int(t) in new else builder.tensor_like(int(t)) for t in source.inputs]
        for t in source.outputs:
            new[int(t)] = builder.tensor_like(int(t))
        builder.copy_op(source, reads, [new[int(t)] for t in source.outputs])
    flatbuffer = builder.finish([new[t] for t in inputs], [new[t] for t in outputs])
    return Phase(flatbuffer, list(inputs), list(outputs), {})


def _live_after(graph, first, last):
    """For each op j in first..last-1, the tensors an op produced at or before j that an op
    after j, up to `last`, reads."""
    last_reader = {}
    for i in range(first, last + 1):
        for t in graph.ops[i].inputs:
            if t >= 0 and int(t) in graph.producer:
                last_reader[int(t)] = i
    return {
        j: sorted(t for t, reader in last_reader.items() if graph.producer[t] <= j < reader) for j in range(first, last)
    }


def _boundaries(graph, first, last):
    """Ops in first..last-1 after which only feature maps are still needed: the op's output
    and at most one map of another resolution from before it that a later op reads (a
    detector head's input at an earlier stride, held meanwhile; a residual block's input is
    of its block's resolution, so no point inside a block qualifies), the whole no larger than
    at the nearest such points before and after it: block outputs and pooled maps, not the
    expanded maps inside a block (a phase's inputs and outputs are copied in and out)."""
    live = _live_after(graph, first, last)

    def qualifies(j):
        output, held = graph.output(j), [t for t in live[j] if t != graph.output(j)]
        maps = all(len(graph.shape(t)) == 4 and graph.shape(t)[0] == 1 for t in live[j])
        other_resolution = all(graph.shape(t)[1:3] != graph.shape(output)[1:3] for t in held)
        return output in live[j] and len(held) <= 1 and maps and other_resolution

    ends = [j for j in range(first, last) if qualifies(j)]
    size = [sum(int(np.prod(graph.shape(t))) for t in live[j]) for j in ends]
    return [
        j
        for k, j in enumerate(ends)
        if (k == 0 or size[k] <= size[k - 1]) and (k == len(ends) - 1 or size[k] <= size[k + 1])
    ]


def _suffix_phases(graph, cut_op, split_mode, query_chunks=1):
    """The ops after the cut as one phase, or one per block (`SUFFIX_SPLITS`). A phase reads
    the maps its ops need from earlier phases and writes those later phases need."""
    last = len(graph.ops) - 1
    ends = _boundaries(graph, cut_op + 1, last) if split_mode == "blocks" else []
    live = _live_after(graph, cut_op + 1, last)
    live[cut_op] = [graph.output(cut_op)]
    starts = [cut_op + 1] + [j + 1 for j in ends]
    stops = ends + [last]
    phases = []
    for start, stop in zip(starts, stops, strict=True):
        ops = range(start, stop + 1)
        read = {int(t) for i in ops for t in graph.ops[i].inputs if t >= 0}
        inputs = [t for t in live[start - 1] if t in read]
        if stop == last:
            outputs = [int(t) for t in graph.graph.outputs]
        else:  # the maps it makes that later phases read; others stay where they are
            outputs = [t for t in live[stop] if graph.producer[t] >= start]
        phases.append(_whole_phase(graph, ops, inputs, outputs, query_chunks))
    return phases


def _stored_pieces(stage, stored_map, token_seeds, stored):
    """The region of `stored_map` each tile of a pass writes: what its tokens read, stretched to
    the map's border at the grid's edges, so the pieces cover the map."""
    rows, cols = stage.sizes(stored_map)
    spans = [stage.regions(seeds, stored)[0][stored_map] for seeds in token_seeds]
    pieces = []
    for span in spans:
        piece = []
        for axis, ((lo, hi), size) in enumerate(zip(span, (rows, cols), strict=True)):
            lo = 0 if lo == min(s[axis][0] for s in spans) else lo
            hi = size if hi == max(s[axis][1] for s in spans) else hi
            piece.append((lo, hi))
        pieces.append(tuple(piece))
    covered = np.zeros((rows, cols), bool)
    for (r0, r1), (c0, c1) in pieces:
        covered[r0:r1, c0:c1] = True
    if not covered.all():
        raise ValueError(f"the tiles' reads of {stage.graph.describe(stage.graph.producer[stored_map])} leave gaps")
    return pieces


def patch_phases(flatbuffer, cut_op, tiles, suffix="whole", query_chunks=1, store_inputs=False):
    """The phases of a patch schedule of an int8 flatbuffer: the stage up to op `cut_op` on a
    `tiles` x `tiles` grid (in one pass, or in two around a self-attentive layer's attention),
    and the suffix (`suffix`: "whole" or "blocks", see `SUFFIX_SPLITS`), with the whole graph's
    weights and quantization. `query_chunks` > 1 runs every attention after the tiles (global
    phases, suffix) in that many slices of its queries: exact, scores `query_chunks` x smaller.
    `store_inputs` keeps one map per resolution the stage passes through whole in SRAM
    (`Stage.store_points`): the map each self-attentive layer reads, written by the tiles before
    its attention, and at a resolution without one a block's output, written by a pass of tiles
    of its own (at the cut's own resolution only one that a window separates from the cut);
    later tiles start from it instead of recomputing it from the image: fewer MACs (smaller
    halos), one more map held.

    Returns:
        PatchPhases(passes: one list of tile phases per self-attentive layer in the stage (its
        token grid) or other stored map (its own grid), and a last one of the cut's tiles,
        global_phases: the attention of each such layer, None for a stored map's pass, suffix:
        its phases in order, the `Stage` (graph, layouts, cut)).

    Raises ValueError naming the op when an op of the stage cannot run tile by tile or a later op
    reads a tensor from before the cut.
    """
    if not isinstance(query_chunks, int) or query_chunks < 1:
        raise ValueError(f"query_chunks must be a positive integer, received: query_chunks={query_chunks!r}")
    if suffix not in SUFFIX_SPLITS:
        raise ValueError(f"suffix must be one of {SUFFIX_SPLITS}, received: suffix={suffix!r}")
    graph = Int8Graph(flatbuffer)
    if not 0 <= cut_op < len(graph.ops) - 1:
        raise ValueError(f"cut_op must be in 0..{len(graph.ops) - 2}, received: cut_op={cut_op}")
    stage = Stage(graph, cut_op)
    cut_rows, cut_cols = stage.sizes(stage.cut)
    grid = [(r, c) for r in split(cut_rows, tiles) for c in split(cut_cols, tiles)]
    passes, global_phases, stored = [], [], []
    points = stage.store_points() if store_inputs else []
    group_inputs = [stage.group_input(g) for g in range(len(stage.groups))]
    group_inputs = [t if t in points else graph.image for t in group_inputs]
    # in op order: each self-attentive layer's attention, and each other stored map
    events = [(min(ops), "attention", g) for g, (ops, _, _) in enumerate(stage.groups)]
    events += [(graph.producer[t], "store", t) for t in points if t not in group_inputs]
    for _, event, item in sorted(events):
        if event == "store":  # a pass of tiles of the map itself, kept whole for the later passes
            rows, cols = stage.sizes(item)
            tiles_of_map = [(r, c) for r in split(rows, min(tiles, rows)) for c in split(cols, min(tiles, cols))]
            passes.append([_tile_phase(stage, {item: tile}, tuple(stored)) for tile in tiles_of_map])
            global_phases.append(None)
            stored.append(item)
            continue
        ops, inputs, outputs = stage.groups[item]  # token tiles, then the attention
        token_sizes = {stage.sizes(t) for t in inputs}
        if len(token_sizes) != 1:
            raise ValueError(f"the attention at {graph.describe(ops[0])} reads grids of different sizes: {token_sizes}")
        rows, cols = token_sizes.pop()
        token_grid = [(r, c) for r in split(rows, min(tiles, rows)) for c in split(cols, min(tiles, cols))]
        seeds = [{t: tile for t in inputs} for tile in token_grid]
        stored_map = group_inputs[item]
        if stored_map != graph.image:
            pieces = _stored_pieces(stage, stored_map, seeds, stored)
            seeds = [{**s, stored_map: piece} for s, piece in zip(seeds, pieces, strict=True)]
        passes.append([_tile_phase(stage, s, tuple(stored)) for s in seeds])
        global_phases.append(_whole_phase(graph, ops, inputs, outputs, query_chunks))
        if stored_map != graph.image:
            stored.append(stored_map)
    passes.append([_tile_phase(stage, {stage.cut: tile}, tuple(stored)) for tile in grid])
    return PatchPhases(passes, global_phases, _suffix_phases(graph, cut_op, suffix, query_chunks), stage)


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
