"""Magnitude pruning and weight clustering through TF-MOT, and what they save once compressed.

    pruned = prune_magnitude(model, final_sparsity=0.5, end_step=steps)   # tf_keras
    pruned.compile(...); pruned.fit(..., callbacks=pruning_callbacks())
    stripped = strip_pruning(pruned)
    clustered = strip_clustering(cluster_weights(stripped, clusters=16))   # optional; fine-tune between
    report = sparsity_report(clustered)                  # per-kernel zeros and distinct values
    compressed_sizes(to_int8_tflite(clustered, images))  # its flash: raw, gzip, TFLM LUT (export.lut)

TF-MOT prunes and clusters the kernels of the layers its registries know (Conv2D,
Dense, DepthwiseConv2D, ...); the pooling layers here keep their weights dense.
Zeros shrink a flatbuffer under gzip; few distinct values per channel (clustering,
or heavy pruning of wide kernels) shrink it under TFLM's LUT compression, which
a microcontroller decodes at run time (`nlpool_keras.export.lut`).
"""

import numpy as np

from nlpool_keras.optimize.legacy import to_tf_keras


def prune_magnitude(model, final_sparsity=0.5, begin_step=0, end_step=1000, frequency=100):
    """A tf_keras copy of `model` whose prunable kernels are driven to `final_sparsity`
    (zeroing the smallest magnitudes) on TF-MOT's polynomial schedule. A Keras 3 `model`
    is copied to tf_keras first; a tf_keras one shares its layers with the result."""
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


def cluster_weights(model, clusters=16, preserve_sparsity=True):
    """A tf_keras copy of `model` whose clusterable kernels take at most `clusters` distinct
    values each (k-means++ centroids, fine-tuned by `fit`); zeros stay zero when
    `preserve_sparsity`. After int8 conversion each output channel then holds at most
    `clusters` values, which TFLM's LUT compression stores as log2(clusters)-bit indices.
    A Keras 3 `model` is copied to tf_keras first; a tf_keras one shares its layers with the result."""
    import tensorflow_model_optimization as tfmot
    import tf_keras
    from tensorflow_model_optimization.python.core.clustering.keras import clustering_registry

    if not 2 <= clusters <= 128:
        raise ValueError(f"clusters must be in 2..128 (TFLM decodes 1..7-bit indices), received: clusters={clusters}")
    legacy = to_tf_keras(model)

    def wrap(layer):
        if layer.weights and clustering_registry.ClusteringRegistry.supports(layer):
            return tfmot.clustering.keras.cluster_weights(
                layer, number_of_clusters=clusters, preserve_sparsity=preserve_sparsity
            )
        return layer

    return tf_keras.models.clone_model(legacy, clone_function=wrap)


def strip_clustering(model):
    """The clustered model without its clustering wrappers (centroid values in the kernels)."""
    import tensorflow_model_optimization as tfmot

    return tfmot.clustering.keras.strip_clustering(model)


def sparsity_report(model):
    """Per-kernel sparsity and distinct values of a stripped model: {"kernels": [{"layer",
    "weights", "zeros", "distinct"}], "kernel_weights", "sparsity"}. What they save in flash
    once int8: `nlpool_keras.export.lut.compressed_sizes(flatbuffer)`."""
    kernels = [(layer.name, layer.kernel.numpy()) for layer in model.layers if hasattr(layer, "kernel")]
    rows = [
        {"layer": name, "weights": int(k.size), "zeros": int(np.sum(k == 0)), "distinct": len(np.unique(k))}
        for name, k in kernels
    ]
    total, zeros = sum(r["weights"] for r in rows), sum(r["zeros"] for r in rows)
    return {"kernels": rows, "kernel_weights": total, "sparsity": zeros / total if total else 0.0}
