"""Patch-based execution of a network's high-resolution prefix, self-attentive pooling kept global.

The prefix up to a cut layer (the patch stage) runs tile by tile on an n x n grid of its output:
each tile is computed from its receptive field of the input (the halo), with "same" padding
applied only where a tile meets the true border of a feature map, so the assembled output equals
the whole-graph one. Self-attentive pooling is not local, so a patch stage that holds one runs it
in two passes: pass 1 runs the tiles up to the layer's token embedding and keeps only the tokens
(a small grid); attention and restoration run once on the whole token grid, giving the pooling
logits at token resolution; pass 2 runs the tiles again and pools each window with its logits.
The rest of the network (the suffix) runs layer by layer as a whole.

    schedule = PatchSchedule(model, cut="block_6_pool", tiles=3)
    logits = schedule.predict(images)            # equals model.predict(images)

Shapes: images (N, H, W, 3) -> patch-stage output (N, Hc, Wc, C) -> model outputs.
"""

import numpy as np

from nlpool_keras.schedule import receptive


def split(size, parts):
    """`parts` contiguous spans covering range(size), sizes differing by at most one."""
    if not 1 <= parts <= size:
        raise ValueError(f"tiles must be between 1 and the cut's size {size}, received: tiles={parts}")
    edges = np.linspace(0, size, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _producer(tensor):
    history = tensor._keras_history
    node = history.operation._inbound_nodes[history.node_index]
    return history.operation, list(node.input_tensors)


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
        self.stage_layers = self._ancestors(self.stage_output)
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

    def _ancestors(self, tensor):
        """Layers that `tensor` depends on, inputs first."""
        order, seen = [], set()

        def visit(t):
            layer, inputs = _producer(t)
            if id(layer) in seen:
                return
            seen.add(id(layer))
            for inner in inputs:
                visit(inner)
            order.append(layer)

        visit(tensor)
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
        """The patch stage's output (N, Hc, Wc, C), assembled from its tiles."""
        images = np.asarray(images, self.dtype)
        self.token_logits = {}
        for layer in self.two_pass:  # pass 1 of each self-attentive layer, in order
            self.token_logits[layer.name] = self._attention_logits(layer, images)
        height, width, channels = self.stage_output.shape[1:]
        assembled = np.zeros((len(images), height, width, channels), self.dtype)
        for rows, cols in self.grid:  # pass 2 (the only pass without self-attentive pooling)
            assembled[:, rows[0] : rows[1], cols[0] : cols[1]] = self._compute(self.stage_output, (rows, cols), images)
        return assembled

    def _compute(self, tensor, region, images, memo=None):
        """`tensor` on `region` ((row span), (column span)), within its extent, from `images`."""
        memo = {} if memo is None else memo
        key = (id(tensor), region)
        if key not in memo:
            memo[key] = np.asarray(self._apply(tensor, region, images, memo))
        return memo[key]

    def _apply(self, tensor, region, images, memo):
        layer, inputs = _producer(tensor)
        (top, bottom), (left, right) = region
        kind = receptive.kind_of(layer)
        if type(layer).__name__ == "InputLayer":
            return images[:, top:bottom, left:right]
        if kind == "pointwise":
            values = [self._compute(t, region, images, memo) for t in inputs]
            return layer(values if len(values) > 1 else values[0], training=False)
        source = inputs[0]
        wanted = self._input_region(layer, region, source)
        if kind == "zero_padding":
            return self._padded(source, wanted, images, memo)
        if kind == "convolution":
            return _convolve_valid(layer, self._padded(source, wanted, images, memo))
        clipped = _clip(wanted, source.shape[1:3])
        x = self._compute(source, clipped, images, memo)
        if kind == "local_pooling":
            return layer(x, training=False)
        logits = _rows_cols(self.token_logits[layer.name], layer, clipped)
        return layer._pool(x, logits, layer.window_norm)

    def _input_region(self, layer, region, source):
        return tuple(receptive.input_span(layer, axis, region[axis], source.shape[1 + axis]) for axis in (0, 1))

    def _padded(self, tensor, wanted, images, memo):
        """`tensor` on `wanted`, zeros where `wanted` reaches past the tensor's extent."""
        clipped = _clip(wanted, tensor.shape[1:3])
        inside = self._compute(tensor, clipped, images, memo)
        pads = [(clipped[a][0] - wanted[a][0], wanted[a][1] - clipped[a][1]) for a in (0, 1)]
        return np.pad(inside, [(0, 0), *pads, (0, 0)])

    def _attention_logits(self, layer, images):
        """Pass 1: tokens of `layer`'s input, tile by tile (token tiles), then attention and
        restoration on the whole token grid -> sigmoid logits at token resolution (N, h', w', C)."""
        import keras

        ops = keras.ops
        source = layer.input
        rows, cols = layer.grid
        tokens = np.zeros((len(images), rows, cols, layer.embed_conv.filters), self.dtype)
        memo = {}
        for token_rows in split(rows, min(self.tiles, rows)):
            for token_cols in split(cols, min(self.tiles, cols)):
                region = (token_rows, token_cols)
                wanted = self._input_region(layer.embed_conv, region, source)
                patch_inputs = self._padded(source, wanted, images, memo)
                embedded = _convolve_valid(layer.embed_conv, patch_inputs)
                tokens[:, slice(*token_rows), slice(*token_cols)] = np.asarray(embedded)
        tokens = ops.relu(layer.embed_bn(tokens, training=False))
        if layer.position_encoding == "learned":
            tokens = tokens + layer._position_table(ops, tokens.dtype)
        restored = layer.restore_bn(layer.restore_conv(layer._attend(ops, tokens)), training=False)
        return np.asarray(ops.sigmoid(restored))


def _clip(region, extent):
    return tuple((max(0, a), min(size, b)) for (a, b), size in zip(region, extent, strict=True))


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
