"""Optimization for deployment: QAT, magnitude pruning and weight clustering through TF-MOT (tf_keras);
structured channel pruning."""

from nlpool_keras.optimize.channels import prune_channels
from nlpool_keras.optimize.legacy import to_tf_keras
from nlpool_keras.optimize.pruning import (
    cluster_weights,
    prune_magnitude,
    pruning_callbacks,
    sparsity_report,
    strip_clustering,
    strip_pruning,
)
from nlpool_keras.optimize.qat import calibrate_ranges, quantize_aware, quantize_scope

__all__ = [
    "calibrate_ranges",
    "cluster_weights",
    "prune_channels",
    "prune_magnitude",
    "pruning_callbacks",
    "quantize_aware",
    "quantize_scope",
    "sparsity_report",
    "strip_clustering",
    "strip_pruning",
    "to_tf_keras",
]
