"""Export to int8 TFLite flatbuffers."""

from nlpool_keras.export.lut import lut_compress
from nlpool_keras.export.tflite import int8_blockers, to_int8_tflite

__all__ = ["int8_blockers", "lut_compress", "to_int8_tflite"]
