"""The model zoo: networks that down-sample with the pooling layers, and their weights."""

from nlpool_keras.models.centroid_detector import build_centroid_detector
from nlpool_keras.models.mobilenet_v2 import build_mbv2_sa
from nlpool_keras.models.resnet import build_resnet18_sa
from nlpool_keras.models.ssdlite_detector import build_ssdlite_detector
from nlpool_keras.models.weights import get_preset, list_presets, load_weights, save_weights

__all__ = [
    "build_centroid_detector",
    "build_mbv2_sa",
    "build_resnet18_sa",
    "build_ssdlite_detector",
    "get_preset",
    "list_presets",
    "load_weights",
    "save_weights",
]
