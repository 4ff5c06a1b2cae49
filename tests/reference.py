"""Independent NumPy implementations of the pooling equations (DESIGN.md §2-§3).

Nothing here imports the library: the tests copy a layer's weights into these
functions and compare outputs. All arrays are channels-last, float64.
"""

import math

import numpy as np


def same_pads(size, k, s):
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def windows(x, k, s, padding):
    """Yields (i, j, window, valid) over pooling windows; padded cells are invalid."""
    n, h, w, c = x.shape
    if padding == "same":
        (t, b), (left, r) = same_pads(h, k[0], s[0]), same_pads(w, k[1], s[1])
    else:
        t = b = left = r = 0
    xp = np.pad(x, [(0, 0), (t, b), (left, r), (0, 0)])
    valid = np.pad(np.ones((h, w)), [(t, b), (left, r)])
    out_h = (h + t + b - k[0]) // s[0] + 1
    out_w = (w + left + r - k[1]) // s[1] + 1
    for i in range(out_h):
        for j in range(out_w):
            rows, cols = slice(i * s[0], i * s[0] + k[0]), slice(j * s[1], j * s[1] + k[1])
            yield i, j, xp[:, rows, cols, :], valid[rows, cols]


def avg_pool(x, k, s, padding):
    """Average over the valid cells of each window (Keras/TF semantics)."""
    cells = list(windows(x, k, s, padding))
    out = np.zeros((x.shape[0], cells[-1][0] + 1, cells[-1][1] + 1, x.shape[3]))
    for i, j, win, valid in cells:
        out[:, i, j] = (win * valid[None, :, :, None]).sum(axis=(1, 2)) / valid.sum()
    return out


def exp_weighted_pool(x, logits, k, s, padding, window_norm):
    wt = np.exp(logits)
    num = avg_pool(x * wt, k, s, padding)
    return num / avg_pool(wt, k, s, padding) if window_norm else num


def conv2d(x, kernel, bias, stride=1, padding="valid"):
    kh, kw, _, cout = kernel.shape
    if padding == "same":
        (t, b), (left, r) = same_pads(x.shape[1], kh, stride), same_pads(x.shape[2], kw, stride)
        x = np.pad(x, [(0, 0), (t, b), (left, r), (0, 0)])
    n, h, w, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = np.zeros((n, oh, ow, cout))
    for a in range(kh):
        for b_ in range(kw):
            patch = x[:, a : a + stride * (oh - 1) + 1 : stride, b_ : b_ + stride * (ow - 1) + 1 : stride, :]
            out += patch @ kernel[a, b_]
    return out + bias


def batch_norm(x, gamma, beta, mean, var, eps=1e-5):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def torch_nearest_rows(out_size, in_size):
    """Source row of each output row of PyTorch's F.interpolate(mode="nearest"): the float32
    scale in/out, floor(dst * scale), at most in - 1."""
    scale = np.float32(in_size / out_size)
    return [min(int(np.floor(np.float32(dst) * scale)), in_size - 1) for dst in range(out_size)]


def self_attentive_pool(x, w, k, s, padding, patch, heads, window_norm, position=True, token_grid="ceil"):
    """w: dict of arrays: embed_conv (kernel, bias), embed_bn (g, b, m, v), query, key,
    value, attention_output (kernel, bias), restore_conv, restore_bn, column, row.
    token_grid "floor": the authors' module (a stride-p convolution without padding, logits
    interpolated back to h x w by nearest neighbour, PyTorch's rule)."""
    n, h, wd, c = x.shape
    embed_padding = "same" if token_grid == "ceil" else "valid"
    t = np.maximum(batch_norm(conv2d(x, *w["embed_conv"], stride=patch, padding=embed_padding), *w["embed_bn"]), 0)
    _, gh, gw, e = t.shape
    if position:
        col, row = w["column"], w["row"]
        pos = np.concatenate(
            [np.broadcast_to(col[None], (gh, gw, col.shape[1])), np.broadcast_to(row[:, None], (gh, gw, row.shape[1]))],
            axis=-1,
        )
        t = t + pos
    tokens = t.reshape(n, gh * gw, e)
    d = e // heads
    q, kk, v = (tokens @ w[name][0] + w[name][1] for name in ("query", "key", "value"))
    out = np.zeros_like(tokens)
    for head in range(heads):
        sl = slice(head * d, (head + 1) * d)
        att = softmax(q[:, :, sl] @ kk[:, :, sl].transpose(0, 2, 1) / math.sqrt(d))
        out[:, :, sl] = att @ v[:, :, sl]
    out = out @ w["attention_output"][0] + w["attention_output"][1]
    restored = conv2d(out.reshape(n, gh, gw, e), *w["restore_conv"])
    restored = batch_norm(restored, *w["restore_bn"])
    if token_grid == "floor":
        up = restored[:, torch_nearest_rows(h, gh)][:, :, torch_nearest_rows(wd, gw)]
        return exp_weighted_pool(x, sigmoid(up), k, s, padding, window_norm)
    up = np.repeat(np.repeat(restored, patch, axis=1), patch, axis=2)  # nearest, x patch
    top, left = same_pads(h, patch, patch)[0], same_pads(wd, patch, patch)[0]
    logits = sigmoid(up[:, top : top + h, left : left + wd])
    return exp_weighted_pool(x, logits, k, s, padding, window_norm)


def local_importance_pool(x, w, k, s, padding, gate_scale, window_norm):
    logits = gate_scale * sigmoid(batch_norm(conv2d(x, *w["logit_conv"]), *w["logit_bn"]))
    return exp_weighted_pool(x, logits, k, s, padding, window_norm)


def soft_pool(x, k, s, padding):
    return exp_weighted_pool(x, x, k, s, padding, True)


def gaussian_pool(x, w, k, s, padding, eps):
    """Inference form: weight = softplus(m)."""
    mu = avg_pool(x, k, s, padding)
    var = np.maximum(avg_pool(x * x, k, s, padding) - mu * mu, 0.0)
    sigma = var / np.sqrt(np.maximum(var, eps))
    gap = x.mean(axis=(1, 2), keepdims=True)
    z = np.maximum(batch_norm(conv2d(gap, *w["squeeze_conv"]), *w["squeeze_bn"]), 0)
    m = batch_norm(conv2d(z, *w["mean_conv"]), *w["mean_bn"])
    return mu + np.log1p(np.exp(m)) * sigma
