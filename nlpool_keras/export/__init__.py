"""Export to int8 TFLite flatbuffers."""

from nlpool_keras.export.lut import compressed_sizes, lut_compress
from nlpool_keras.export.tflite import int8_blockers, to_int8_tflite

__all__ = ["compressed_sizes", "int8_blockers", "lut_compress", "to_int8_tflite"]
