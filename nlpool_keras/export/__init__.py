"""Export to int8 TFLite flatbuffers."""

from nlpool_keras.export.int16_ops import WIDENED_OPS, widen_to_int16
from nlpool_keras.export.lut import compressed_sizes, lut_compress
from nlpool_keras.export.tflite import int8_blockers, to_int8_tflite

__all__ = ["WIDENED_OPS", "compressed_sizes", "int8_blockers", "lut_compress", "to_int8_tflite", "widen_to_int16"]
