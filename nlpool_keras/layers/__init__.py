"""Pooling layers: self-attentive pooling and the baselines it is compared with.

The classes exported here are Keras 3 layers. `get_layer_class(name, framework)`
returns the same layer for `framework="tf_keras"` (what TF-MOT needs), built
from the same source.
"""

from nlpool_keras import frameworks
from nlpool_keras.layers import gaussian, local_importance, self_attentive, soft

LAYER_SOURCES = {
    "SelfAttentivePooling2D": self_attentive.SelfAttentivePooling2D,
    "LocalImportancePooling2D": local_importance.LocalImportancePooling2D,
    "GaussianPooling2D": gaussian.GaussianPooling2D,
    "SoftPooling2D": soft.SoftPooling2D,
}


def get_layer_class(name, framework="keras"):
    """The layer class `name` for `framework` ("keras" or "tf_keras")."""
    if name not in LAYER_SOURCES:
        raise ValueError(f"name must be one of {sorted(LAYER_SOURCES)}, received: name={name!r}")
    return frameworks.bind(LAYER_SOURCES[name], frameworks.check_framework(framework))


def custom_objects(framework="keras"):
    """{class name: class} of every layer here, for `load_model(custom_objects=...)`."""
    return {name: get_layer_class(name, framework) for name in LAYER_SOURCES}


SelfAttentivePooling2D = get_layer_class("SelfAttentivePooling2D")
LocalImportancePooling2D = get_layer_class("LocalImportancePooling2D")
GaussianPooling2D = get_layer_class("GaussianPooling2D")
SoftPooling2D = get_layer_class("SoftPooling2D")
