"""Export to int8 TFLite flatbuffers."""

from nlpool_keras.export.tflite import int8_blockers, to_int8_tflite

__all__ = ["int8_blockers", "to_int8_tflite"]
