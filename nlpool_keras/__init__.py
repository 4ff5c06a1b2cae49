"""nlpool-keras: self-attentive (non-local) pooling for networks that fit a microcontroller."""

from nlpool_keras.layers import (
    GaussianPooling2D,
    LocalImportancePooling2D,
    SelfAttentivePooling2D,
    SoftPooling2D,
    custom_objects,
    get_layer_class,
)
from nlpool_keras.models import (
    build_mbv2_sa,
    build_resnet18_sa,
    get_preset,
    list_presets,
    load_weights,
    save_weights,
)

__version__ = "0.1.0"

__all__ = [
    "build_mbv2_sa",
    "build_resnet18_sa",
    "get_preset",
    "list_presets",
    "load_weights",
    "save_weights",
    "GaussianPooling2D",
    "LocalImportancePooling2D",
    "SelfAttentivePooling2D",
    "SoftPooling2D",
    "custom_objects",
    "get_layer_class",
]
