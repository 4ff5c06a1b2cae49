"""Structured channel pruning of MobileNetV2 blocks: the thinner network, rebuilt.

Each inverted-residual block widens its input with a 1x1 "expand" conv, filters the
hidden channels depthwise and narrows them with a 1x1 "project" conv. A hidden
channel can go without touching the residual connections: its expand filter, its
BatchNormalization entries, its depthwise filter and its project input row are
removed together. TF-MOT prunes weights to zero but keeps every channel; this
removes them, so activations, arena and flash shrink.

    thinner, kept = prune_channels(model, fraction=0.3, criterion="bn_gamma")
"""

import numpy as np

CRITERIA = ("bn_gamma", "l1")


def _blocks(model):
    """Prefixes of the blocks that have an expand conv ("block_3_", ...)."""
    names = {layer.name for layer in model.layers}
    return [name[: -len("expand")] for name in sorted(names) if name.endswith("_expand") and f"{name}_BN" in names]


def channel_scores(model, prefix, criterion):
    """Importance of each hidden channel of a block."""
    if criterion == "bn_gamma":
        return np.abs(model.get_layer(prefix + "expand_BN").get_weights()[0])
    return np.abs(model.get_layer(prefix + "expand").get_weights()[0]).sum(axis=(0, 1, 2))


def prune_channels(model, fraction, criterion="bn_gamma", min_channels=8):
    """A Keras 3 copy of a zoo MobileNetV2 with the least important `fraction` of each
    block's hidden channels removed (at least `min_channels` kept per block).

    Returns:
        (the thinner model with the same layer names and the surviving weights,
        {block prefix: indices of the kept channels}).
    """
    import keras

    from nlpool_keras.layers import custom_objects

    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), received: fraction={fraction}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, received: criterion={criterion!r}")
    blocks = _blocks(model)
    if not blocks:
        raise ValueError(f"model '{model.name}' has no MobileNetV2 expand/depthwise/project blocks")
    kept = {}
    for prefix in blocks:
        scores = channel_scores(model, prefix, criterion)
        keep = max(min_channels, int(round(len(scores) * (1.0 - fraction))))
        kept[prefix] = np.sort(np.argsort(-scores, kind="stable")[: min(keep, len(scores))])
    config = model.get_config()
    for layer in config["layers"]:
        layer.pop("build_config", None)  # shapes change: each layer builds on its new input
        prefix = layer["name"][: -len("expand")] if layer["name"].endswith("_expand") else None
        if prefix in kept:
            layer["config"]["filters"] = int(len(kept[prefix]))
    thinner = keras.Model.from_config(config, custom_objects=custom_objects())
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            thinner.get_layer(layer.name).set_weights(_slice(layer.name, weights, kept))
    return thinner, kept


def _slice(name, weights, kept):
    for prefix, keep in kept.items():
        if name == prefix + "expand":  # (1, 1, in, hidden)
            return [weights[0][..., keep]]
        if name in (prefix + "expand_BN", prefix + "depthwise_BN"):
            return [w[keep] for w in weights]
        if name == prefix + "depthwise":  # (3, 3, hidden, 1)
            return [weights[0][:, :, keep, :]]
        if name == prefix + "project":  # (1, 1, hidden, out)
            return [weights[0][:, :, keep, :]]
    return weights
