"""nlpool-keras: self-attentive (non-local) pooling for networks that fit a microcontroller."""

from nlpool_keras.layers import (
    GaussianPooling2D,
    LocalImportancePooling2D,
    SelfAttentivePooling2D,
    SoftPooling2D,
    custom_objects,
    get_layer_class,
)

__version__ = "0.1.0"

__all__ = [
    "GaussianPooling2D",
    "LocalImportancePooling2D",
    "SelfAttentivePooling2D",
    "SoftPooling2D",
    "custom_objects",
    "get_layer_class",
]
