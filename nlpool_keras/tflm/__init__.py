"""Running int8 flatbuffers in the TensorFlow Lite Micro interpreter."""

from nlpool_keras.tflm.interpreter import TFLMError, TFLMModel, tflite_reference_outputs

__all__ = ["TFLMError", "TFLMModel", "tflite_reference_outputs"]
