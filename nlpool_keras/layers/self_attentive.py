"""Self-attentive (non-local) pooling: Chen et al., WACV 2023 (arXiv 2209.07659)."""

import math
import warnings

from nlpool_keras.layers import windows
from nlpool_keras.layers.base import Pooling2D

BN_ARGS = dict(epsilon=1e-5, momentum=0.9)  # PyTorch's eps=1e-5, momentum=0.1
POSITION_ENCODINGS = ("learned", None)
# tokens of a map that a patch does not divide: "ceil" pads it ("same"), ceil(h/p) tokens, each
# repeated p x p and cropped; "floor" (the authors' module) drops the remainder, floor(h/p)
# tokens, brought back to h x w by nearest interpolation (source row floor(i * h' / h))
TOKEN_GRIDS = ("ceil", "floor")
# TFLM's int8 SOFTMAX aborts once a row's exponentials sum to 512 or more (the reference
# kernel's TFLITE_CHECK on its reciprocal's shift: 512 equal logits abort, 511 do not), and an
# int8 attention weight's step of 1/256 rounds weights under 1/512 to zero: at most 511 tokens
MAX_INT8_TOKENS = 511


def nearest_indices(size, grid):
    """Source index of each of `size` outputs interpolated from `grid` values, as PyTorch's
    'nearest' computes it (float32 scale grid/size): min(floor(i * scale), grid - 1)."""
    import numpy as np

    scale = np.float32(grid) / np.float32(size)
    indices = np.floor(np.arange(size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(indices, grid - 1)


def repeat_cells(ops, grid, p):
    """(N, h, w, C) -> (N, h*p, w*p, C), each value repeated over a p x p cell (nearest upsampling).

    A reshape to (N*h, 1, w, 1, C), a broadcast to (N*h, p, w, p, C) and a reshape back: in int8
    TFLM a BROADCAST_TO (at most 5-D) copies C channels at a time, where RESIZE_NEAREST_NEIGHBOR's
    reference kernel computes each output position's source in float (soft-float on a Cortex-M4)."""
    rows, cols, channels = grid.shape[1:]
    cells = ops.reshape(grid, (-1, 1, cols, 1, channels))
    cells = ops.broadcast_to(cells, (ops.shape(cells)[0], p, cols, p, channels))
    return ops.reshape(cells, (-1, rows * p, cols * p, channels))


def embed_width(channels, num_heads, embed_ratio):
    """E = h * max(1, round(r * C / h)): the token width, a multiple of the heads."""
    return num_heads * max(1, round(embed_ratio * channels / num_heads))


class SelfAttentivePooling2D(Pooling2D):
    """Pools each window with weights from multi-head self-attention over patches.

    Drop-in replacement for `MaxPooling2D`, `AveragePooling2D` or a strided
    convolution. With token width E (`embed_width`) and p = `patch_size`:

    1. tokens T = ReLU(BN(Conv2D(E, p, stride p)(x))), (N, H/p, W/p, E),
       plus a learned position vector [column table | row table];
    2. multi-head self-attention over the L = (H/p)(W/p) tokens (q, k, v and
       output projections with bias, scaled dot product, softmax);
    3. A = sigmoid(BN(Conv1x1(E -> C))) at token resolution, repeated p x p
       back to H x W (nearest), cropped to the input (`token_grid="ceil"`),
       or interpolated back to H x W (`"floor"`, see `TOKEN_GRIDS`);
    4. with `window_norm=True`: y = sum over each window of softmax(A) * x,
       i.e. AvgPool(x * e^A) / AvgPool(e^A); else y = AvgPool(x * e^A).

    Attention costs 2 L^2 E MACs and h L^2 scores: keep L small on a
    microcontroller (a larger `patch_size`).

    Args:
        pool_size, strides, padding, data_format: as in `AveragePooling2D`.
        patch_size: int, side of the square patch each token embeds.
        num_heads: int, attention heads; the embedding width is a multiple.
        embed_ratio: float r, token width relative to the input channels.
        window_norm: bool, normalise the weights within each window.
        position_encoding: "learned" (row and column tables) or None.
        token_grid: "ceil" (pad a map the patch does not divide: ceil(H/p) x
            ceil(W/p) tokens) or "floor" (the authors' way: floor(H/p) x
            floor(W/p) tokens, logits interpolated to H x W, nearest).

    Input: (N, H, W, C) with H, W and C known. Output: (N, H_out, W_out, C).

    Example:
        >>> model = keras.Sequential([
        ...     keras.Input((32, 32, 3)),
        ...     keras.layers.Conv2D(16, 3, padding="same"),
        ...     SelfAttentivePooling2D(pool_size=2, patch_size=2, num_heads=2),
        ... ])
        >>> model.output_shape
        (None, 16, 16, 16)
    """

    OWN_WEIGHTS = ("column_embedding", "row_embedding")
    SUBLAYERS = ("embed_conv", "embed_bn", "query", "key", "value", "attention_output", "restore_conv", "restore_bn")
    QUANT_POINTS = Pooling2D.QUANT_POINTS + (
        "tokens",
        "query",
        "key",
        "value",
        "scores",
        "attention",
        "attended",
        "logits",
    )

    def __init__(
        self,
        pool_size=2,
        strides=None,
        padding="valid",
        patch_size=1,
        num_heads=2,
        embed_ratio=1.0,
        window_norm=True,
        position_encoding="learned",
        token_grid="ceil",
        data_format=None,
        **kwargs,
    ):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)
        self.patch_size = self._positive_int("patch_size", patch_size)
        self.num_heads = self._positive_int("num_heads", num_heads)
        self.embed_ratio = self._positive_float("embed_ratio", embed_ratio)
        if not isinstance(window_norm, bool):
            raise self._error(f"window_norm must be a bool, received: window_norm={window_norm!r}")
        self.window_norm = window_norm
        self.position_encoding = self._choice("position_encoding", position_encoding, POSITION_ENCODINGS)
        self.token_grid = self._choice("token_grid", token_grid, TOKEN_GRIDS)
        if window_norm and self.pool_size == self.strides and all(patch_size % k == 0 for k in self.pool_size):
            warnings.warn(
                f"{type(self).__name__} (layer '{self.name}'): patch_size={patch_size} is a multiple of "
                f"pool_size={self.pool_size}, so every window lies in one patch, all its weights are "
                "equal and the layer computes exactly average pooling.",
                stacklevel=2,
            )

    def build(self, input_shape):
        height, width, channels = self._check_input_shape(input_shape)
        if height is None or width is None:
            raise self._error(
                f"needs a static height and width (the position tables are sized by them), "
                f"received: input_shape={tuple(input_shape)}"
            )
        if self.num_heads > self.embed_ratio * channels:
            raise self._error(
                f"num_heads={self.num_heads} does not fit an embedding of embed_ratio * channels = "
                f"{self.embed_ratio:g} * {channels}: use at most {int(self.embed_ratio * channels)} heads"
            )
        p = self.patch_size
        embed = embed_width(channels, self.num_heads, self.embed_ratio)
        if self.token_grid == "ceil":
            self.grid = (math.ceil(height / p), math.ceil(width / p))
            # "same" padding of a p-strided p x p conv: top/left offset of the patch grid
            self.grid_offset = (windows.same_padding(height, p, p)[0], windows.same_padding(width, p, p)[0])
        else:
            self.grid, self.grid_offset = (height // p, width // p), (0, 0)
            if 0 in self.grid:
                raise self._error(
                    f"token_grid='floor' needs a map of at least patch_size={p} per side, "
                    f"received: input_shape={tuple(input_shape)}"
                )
        padding = "same" if self.token_grid == "ceil" else "valid"
        self.embed_conv = self._sublayer("Conv2D", embed, p, strides=p, padding=padding, name="embed_conv")
        self.embed_bn = self._sublayer("BatchNormalization", name="embed_bn", **BN_ARGS)
        self.query = self._sublayer("Dense", embed, name="query")
        self.key = self._sublayer("Dense", embed, name="key")
        self.value = self._sublayer("Dense", embed, name="value")
        self.attention_output = self._sublayer("Dense", embed, name="attention_output")
        self.restore_conv = self._sublayer("Conv2D", channels, 1, name="restore_conv")
        self.restore_bn = self._sublayer("BatchNormalization", name="restore_bn", **BN_ARGS)

        token_shape = (input_shape[0],) + self.grid + (embed,)
        self.embed_conv.build(tuple(input_shape))
        self.embed_bn.build(token_shape)
        for dense in (self.query, self.key, self.value, self.attention_output):
            dense.build(token_shape)
        self.restore_conv.build(token_shape)
        self.restore_bn.build(token_shape[:-1] + (channels,))
        if self.position_encoding == "learned":
            uniform = self._fw.keras.initializers.RandomUniform
            self.column_embedding = self.add_weight(
                name="column_embedding", shape=(self.grid[1], embed // 2), initializer=uniform(0.0, 1.0)
            )
            self.row_embedding = self.add_weight(
                name="row_embedding", shape=(self.grid[0], embed - embed // 2), initializer=uniform(0.0, 1.0)
            )
        super().build(input_shape)

    def call(self, inputs, training=None):
        logits = self.attention_logits(inputs, training=training)
        return self._pool(inputs, logits, self.window_norm)

    def attention_logits(self, inputs, training=None):
        """A = sigmoid(restored attention), (N, H, W, C): the log pooling weights."""
        ops = self._fw.ops
        tokens = ops.relu(self.embed_bn(self.embed_conv(inputs), training=training))
        if self.position_encoding == "learned":
            tokens = tokens + self._position_table(ops, tokens.dtype)
        tokens = self.fake_quant("tokens", tokens)
        restored = self.restore_bn(self.restore_conv(self._attend(ops, tokens)), training=training)
        logits = self.fake_quant("logits", ops.sigmoid(restored))
        return self._to_input_grid(ops, logits, inputs.shape[1:3])

    def _position_table(self, ops, dtype):
        """(h', w', E): column embedding in the first ⌊E/2⌋ channels, row embedding in the rest.
        Built as one broadcasting add of the zero-padded tables: the converter folds constants
        only up to a size, and the int8 graph then holds the two small tables and an ADD, never
        a BROADCAST_TO of the whole (h', w', E) table."""
        column = ops.cast(self.column_embedding, dtype)
        row = ops.cast(self.row_embedding, dtype)
        column_dim, row_dim = column.shape[-1], row.shape[-1]
        column = ops.pad(column, [[0, 0], [0, row_dim]])
        row = ops.pad(row, [[0, 0], [column_dim, 0]])
        return column[None, :, :] + row[:, None, :]

    def _attend(self, ops, tokens):
        """Multi-head self-attention over the token grid (N, h', w', E) -> same shape."""
        rows, cols = self.grid
        length, heads = rows * cols, self.num_heads
        depth = tokens.shape[-1] // heads

        def split_heads(t, axes):
            return ops.transpose(ops.reshape(t, (-1, length, heads, depth)), axes)

        q, project = self.fake_quant, self._project
        query = split_heads(q("query", project(ops, self.query, tokens) * (1.0 / math.sqrt(depth))), (0, 2, 1, 3))
        key = split_heads(q("key", project(ops, self.key, tokens)), (0, 2, 3, 1))  # (N, h, d, L)
        value = split_heads(q("value", project(ops, self.value, tokens)), (0, 2, 1, 3))
        scores = q("attention", ops.softmax(q("scores", ops.matmul(query, key)), axis=-1))  # (N, h, L, L)
        attended = ops.transpose(q("attended", ops.matmul(scores, value)), (0, 2, 1, 3))
        return project(ops, self.attention_output, ops.reshape(attended, (-1, rows, cols, heads * depth)))

    @staticmethod
    def _project(ops, dense, grid):
        """`dense` applied to a (N, h', w', E) grid as a 1x1 convolution with its kernel and bias.

        Equal to `dense(grid)`; the int8 graph gets CONV_2D instead of FULLY_CONNECTED, whose
        TFLM and TFLite kernels round differently (tflm/README.md)."""
        kernel = ops.cast(dense.kernel, grid.dtype)[None, None]
        return ops.conv(grid, kernel, strides=1, padding="valid") + ops.cast(dense.bias, grid.dtype)

    def _to_input_grid(self, ops, logits, spatial):
        """Repeats each token p x p (nearest) and crops the patch padding away, or with
        `token_grid="floor"` interpolates the token grid to the input's size (nearest)."""
        p = self.patch_size
        if p == 1:
            return logits
        rows, cols = self.grid
        if self.token_grid == "floor" and (rows * p, cols * p) != tuple(spatial):
            for axis, (size, grid) in enumerate(zip(spatial, self.grid, strict=True), start=1):
                logits = ops.take(logits, nearest_indices(size, grid), axis=axis)
            return logits
        logits = repeat_cells(ops, logits, p)
        (top, left), (height, width) = self.grid_offset, spatial
        if (rows * p, cols * p) != (height, width):
            logits = logits[:, top : top + height, left : left + width, :]
        return logits

    def int8_blocker(self):
        if not self.window_norm:
            return "window_norm=False needs EXP, which TFLM has only in float32; use window_norm=True"
        blocker = super().int8_blocker()
        tokens = math.prod(self.grid) if self.built else 0
        if blocker is None and tokens > MAX_INT8_TOKENS:
            return (
                f"attention over {tokens} tokens ({self.grid[0]}x{self.grid[1]}, patch_size={self.patch_size}): "
                f"TFLM's int8 SOFTMAX aborts once a row's exponentials sum to 512, and int8 weights (step "
                f"1/256) cannot spread over that many; use at most {MAX_INT8_TOKENS} tokens (a larger patch_size)"
            )
        return blocker

    def get_config(self):
        config = super().get_config()
        config.update(
            patch_size=self.patch_size,
            num_heads=self.num_heads,
            embed_ratio=self.embed_ratio,
            window_norm=self.window_norm,
            position_encoding=self.position_encoding,
            token_grid=self.token_grid,
        )
        return config
