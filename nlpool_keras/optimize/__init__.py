"""Optimization for deployment: quantization-aware training through TF-MOT (tf_keras)."""

from nlpool_keras.optimize.legacy import to_tf_keras
from nlpool_keras.optimize.qat import quantize_aware, quantize_scope

__all__ = ["quantize_aware", "quantize_scope", "to_tf_keras"]
