"""Patch-based execution of a network's high-resolution prefix, self-attentive pooling kept global.

The prefix up to a cut layer (the patch stage) runs tile by tile on an n x n grid of its output.
For each tile, the region every tensor must hold is propagated backwards from the tile (the
bounding box of what its readers need: the halo), then each layer runs forwards on its region,
with "same" padding applied only where a region meets the true border of a feature map, so the
assembled output equals the whole-graph one. Self-attentive pooling is not local, so a patch
stage that holds one runs it in two passes: pass 1 runs the tiles up to the layer's token
embedding and keeps only the tokens (a small grid); attention and restoration run once on the
whole token grid, giving the pooling logits at token resolution; pass 2 runs the tiles again and
pools each window with its logits. The rest of the network (the suffix) runs as a whole.

    schedule = PatchSchedule(model, cut="block_6_pool", tiles=3)
    logits = schedule.predict(images)            # equals model.predict(images)

Shapes: images (N, H, W, 3) -> patch-stage output (N, Hc, Wc, C) -> model outputs.
"""

import collections

import numpy as np

from nlpool_keras.schedule import receptive

# one layer run on one tile: its output region's shape, the layers whose outputs it reads
Step = collections.namedtuple("Step", ["layer", "shape", "reads"])


def split(size, parts):
    """`parts` contiguous spans covering range(size), sizes differing by at most one."""
    if not 1 <= parts <= size:
        raise ValueError(f"tiles must be between 1 and the cut's size {size}, received: tiles={parts}")
    edges = np.linspace(0, size, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def inputs_of(layer):
    """The layers whose outputs `layer` reads (its first call in the functional graph)."""
    return [tensor._keras_history.operation for tensor in layer._inbound_nodes[0].input_tensors]


class PatchSchedule:
    """A Keras 3 functional `model` run as a patch stage (up to and including layer `cut`, on a
    `tiles` x `tiles` grid of its output) followed by the rest of the network.

    Args:
        model: a Keras 3 functional model with one image input (N, H, W, C), static H and W.
        cut: name of the last layer of the patch stage; nothing after it may read a tensor
            from before it (no residual connection crosses the cut).
        tiles: the tile grid side n (n x n tiles of the cut's output map).

    Raises ValueError naming the layer when a layer of the patch stage cannot run tile by tile
    (Gaussian pooling, dense layers, overlapping windows) or the cut is crossed.
    """

    def __init__(self, model, cut, tiles):
        import keras

        self.model, self.tiles = model, tiles
        self.cut = model.get_layer(cut)
        self.stage_output = self.cut.output
        self.stage_layers = self._ancestors(self.cut)
        for layer in self.stage_layers:
            receptive.kind_of(layer)
        try:
            self.suffix = keras.Model(self.stage_output, model.outputs, name=f"{model.name}_suffix")
        except ValueError:
            raise ValueError(
                f"cut={cut!r}: later layers also read tensors from before it (a residual connection crosses "
                "the cut); cut at the end of a block"
            ) from None
        height, width = self.stage_output.shape[1:3]
        self.grid = [(rows, cols) for rows in split(height, tiles) for cols in split(width, tiles)]
        self.two_pass = [layer for layer in self.stage_layers if receptive.kind_of(layer) == "two_pass"]
        self.dtype = keras.backend.standardize_dtype(self.stage_output.dtype)

    @staticmethod
    def _ancestors(last):
        """`last` and the layers it depends on, in an order where inputs come first."""
        order, seen = [], set()

        def visit(layer):
            if id(layer) not in seen:
                seen.add(id(layer))
                for source in inputs_of(layer):
                    visit(source)
                order.append(layer)

        visit(last)
        return order

    # -- running

    def predict(self, images, batch_size=32):
        """Model outputs for `images`, the prefix run tile by tile."""
        outputs = [
            self.suffix.predict(self.run_stage(images[i : i + batch_size]), verbose=0)
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(outputs)

    def run_stage(self, images):
        """The patch stage's output (N, Hc, Wc, C), assembled from its tiles. Afterwards
        `traces` holds (phase, tile region, `Step`s in execution order) per tile (see `cost`)."""
        images = np.asarray(images, self.dtype)
        self.token_logits, self.traces = {}, []
        for layer in self.two_pass:  # pass 1 of each self-attentive layer, in order
            self.token_logits[layer.name] = self._attention_logits(layer, images)
        height, width, channels = self.stage_output.shape[1:]
        assembled = np.zeros((len(images), height, width, channels), self.dtype)
        for region in self.grid:  # pass 2: every tile through the whole patch stage
            (top, bottom), (left, right) = region
            assembled[:, top:bottom, left:right] = self._run_tile("pass 2", self.cut, region, images)
        return assembled

    def _run_tile(self, phase, last, region, images):
        """`last`'s output on `region`, computed from `images` through the regions it needs."""
        needed = self._needed_regions(last, region)
        values, steps = {}, []
        order = [layer for layer in self.stage_layers if id(layer) in needed]
        for layer in order:
            values[id(layer)] = np.asarray(self._apply(layer, needed, values, images))
            steps.append(Step(layer, values[id(layer)].shape[1:], inputs_of(layer)))
        self.traces.append((phase, region, steps))
        return values[id(last)]

    def _needed_regions(self, last, region):
        """{id(layer): the region of its output that the tile needs}, from `last` backwards."""
        needed = {id(last): region}
        for layer in reversed(self._ancestors(last)):
            if type(layer).__name__ == "InputLayer":
                continue
            for source in inputs_of(layer):
                wanted = clip_region(self._input_region(layer, needed[id(layer)], source), _extent(source))
                needed[id(source)] = union_regions(needed.get(id(source)), wanted)
        return needed

    def _apply(self, layer, needed, values, images):
        """`layer`'s output on its needed region, from its inputs' computed regions."""
        region = needed[id(layer)]
        if type(layer).__name__ == "InputLayer":
            (top, bottom), (left, right) = region
            return images[:, top:bottom, left:right]
        kind = receptive.kind_of(layer)
        sources = inputs_of(layer)

        def read(source, wanted):  # a source's values on `wanted`, zeros outside its extent
            inside = clip_region(wanted, _extent(source))
            have = needed[id(source)]
            crop = values[id(source)][
                :,
                inside[0][0] - have[0][0] : inside[0][1] - have[0][0],
                inside[1][0] - have[1][0] : inside[1][1] - have[1][0],
            ]
            return _pad_to(crop, inside, wanted)

        if kind == "pointwise":
            inputs = [read(source, region) for source in sources]
            return layer(inputs if len(inputs) > 1 else inputs[0], training=False)
        wanted = self._input_region(layer, region, sources[0])
        if kind == "zero_padding":
            return read(sources[0], wanted)
        if kind == "convolution":
            return _convolve_valid(layer, read(sources[0], wanted))
        inside = clip_region(wanted, _extent(sources[0]))
        x = read(sources[0], inside)
        if kind == "local_pooling":
            return layer(x, training=False)
        logits = _rows_cols(self.token_logits[layer.name], layer, inside)
        return layer._pool(x, logits, layer.window_norm)

    def _input_region(self, layer, region, source):
        size = _extent(source)
        return tuple(receptive.input_span(layer, axis, region[axis], size[axis][1]) for axis in (0, 1))

    def _attention_logits(self, layer, images):
        """Pass 1: tokens of `layer`'s input, tile by tile (token tiles), then attention and
        restoration on the whole token grid -> sigmoid logits at token resolution (N, h', w', C)."""
        import keras

        ops = keras.ops
        (source,) = inputs_of(layer)
        rows, cols = layer.grid
        tokens = np.zeros((len(images), rows, cols, layer.embed_conv.filters), self.dtype)
        for token_rows in split(rows, min(self.tiles, rows)):
            for token_cols in split(cols, min(self.tiles, cols)):
                wanted = self._input_region(layer.embed_conv, (token_rows, token_cols), source)
                inside = clip_region(wanted, _extent(source))
                crop = self._run_tile(f"pass 1 of {layer.name}", source, inside, images)
                embedded = np.asarray(_convolve_valid(layer.embed_conv, _pad_to(crop, inside, wanted)))
                self.traces[-1][2].append(Step(layer.embed_conv, embedded.shape[1:], [source]))
                tokens[:, slice(*token_rows), slice(*token_cols)] = embedded
        tokens = ops.relu(layer.embed_bn(tokens, training=False))
        if layer.position_encoding == "learned":
            tokens = tokens + layer._position_table(ops, tokens.dtype)
        restored = layer.restore_bn(layer.restore_conv(layer._attend(ops, tokens)), training=False)
        return np.asarray(ops.sigmoid(restored))


def _extent(layer):
    height, width = layer.output.shape[1:3]
    return ((0, height), (0, width))


def clip_region(region, extent):
    """`region` ((r0, r1), (c0, c1)) cut to `extent` ((0, H), (0, W))."""
    return tuple((max(a, lo), min(b, hi)) for (a, b), (lo, hi) in zip(region, extent, strict=True))


def _pad_to(values, inside, wanted):
    """`values` (N, h, w, C) held on region `inside`, zero-padded out to region `wanted`."""
    pads = [(inside[a][0] - wanted[a][0], wanted[a][1] - inside[a][1]) for a in (0, 1)]
    return np.pad(values, [(0, 0), *pads, (0, 0)])


def union_regions(region, other):
    """The bounding box of two regions; `region` may be None (nothing yet)."""
    if region is None:
        return other
    return tuple((min(a[0], b[0]), max(a[1], b[1])) for a, b in zip(region, other, strict=True))


def _rows_cols(token_logits, layer, region):
    """Token-resolution logits repeated to the input rows and columns of `region` (nearest)."""
    p = layer.patch_size
    index = [(np.arange(a, b) + offset) // p for (a, b), offset in zip(region, layer.grid_offset, strict=True)]
    return token_logits[:, index[0]][:, :, index[1]]


def _convolve_valid(layer, x):
    """`layer` (Conv2D or DepthwiseConv2D) on an input already padded: 'valid' padding."""
    import keras

    ops = keras.ops
    if type(layer).__name__ == "DepthwiseConv2D":
        y = ops.depthwise_conv(x, layer.kernel, strides=layer.strides, padding="valid")
    else:
        y = ops.conv(x, layer.kernel, strides=layer.strides, padding="valid")
    if layer.use_bias:
        y = y + layer.bias
    return layer.activation(y)
