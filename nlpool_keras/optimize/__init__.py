"""Optimization for deployment: QAT and magnitude pruning through TF-MOT (tf_keras), channel pruning."""

from nlpool_keras.optimize.channels import prune_channels
from nlpool_keras.optimize.legacy import to_tf_keras
from nlpool_keras.optimize.pruning import prune_magnitude, pruning_callbacks, sparsity_report, strip_pruning
from nlpool_keras.optimize.qat import calibrate_ranges, quantize_aware, quantize_scope

__all__ = [
    "calibrate_ranges",
    "prune_channels",
    "prune_magnitude",
    "pruning_callbacks",
    "quantize_aware",
    "quantize_scope",
    "sparsity_report",
    "strip_pruning",
    "to_tf_keras",
]
