"""Magnitude pruning through TF-MOT, and what it saves once compressed.

    pruned = prune_magnitude(model, final_sparsity=0.5, end_step=steps)   # tf_keras
    pruned.compile(...); pruned.fit(..., callbacks=pruning_callbacks())
    stripped = strip_pruning(pruned)
    report = sparsity_report(stripped)

TF-MOT prunes the kernels of the layers its registry knows (Conv2D, Dense,
DepthwiseConv2D, ...); the pooling layers here keep their weights dense.
"""

import gzip

import numpy as np

from nlpool_keras.optimize.legacy import to_tf_keras


def prune_magnitude(model, final_sparsity=0.5, begin_step=0, end_step=1000, frequency=100):
    """A tf_keras copy of `model` whose prunable kernels are driven to `final_sparsity`
    (zeroing the smallest magnitudes) on TF-MOT's polynomial schedule."""
    import tensorflow_model_optimization as tfmot
    import tf_keras
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    if not 0.0 < final_sparsity < 1.0:
        raise ValueError(f"final_sparsity must be in (0, 1), received: final_sparsity={final_sparsity}")
    if not 0 <= begin_step < end_step:
        raise ValueError(f"need 0 <= begin_step < end_step, received: begin_step={begin_step}, end_step={end_step}")
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, final_sparsity, begin_step, end_step, frequency=frequency)
    legacy = to_tf_keras(model)

    def wrap(layer):  # the layer itself (weights kept), wrapped when TF-MOT can prune it
        if layer.weights and prune_registry.PruneRegistry.supports(layer):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    return tf_keras.models.clone_model(legacy, clone_function=wrap)


def pruning_callbacks():
    """The callback TF-MOT needs during `fit` to advance the pruning schedule."""
    import tensorflow_model_optimization as tfmot

    return [tfmot.sparsity.keras.UpdatePruningStep()]


def strip_pruning(model):
    """The pruned model without its pruning wrappers (zeros kept in the kernels)."""
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.strip_pruning(model)


def sparsity_report(model, flatbuffer=None, dense_flatbuffer=None):
    """Per-kernel and total sparsity of a stripped model; with flatbuffers, their raw and
    gzip-compressed sizes (zeros compress: the gain a sparse model brings to flash)."""
    kernels = [(layer.name, layer.kernel.numpy()) for layer in model.layers if hasattr(layer, "kernel")]
    rows = [{"layer": name, "weights": int(k.size), "zeros": int(np.sum(k == 0))} for name, k in kernels]
    total, zeros = sum(r["weights"] for r in rows), sum(r["zeros"] for r in rows)
    report = {"kernels": rows, "kernel_weights": total, "sparsity": zeros / total if total else 0.0}
    for key, data in (("pruned", flatbuffer), ("dense", dense_flatbuffer)):
        if data is not None:
            report[f"{key}_flash_bytes"] = len(data)
            report[f"{key}_gzip_bytes"] = len(gzip.compress(bytes(data), compresslevel=9))
    return report
