"""nlpool-keras: self-attentive (non-local) pooling for networks that fit a microcontroller.

The public names below load on first use (PEP 562), so that `import nlpool_keras` and the
`nlpool` command start without importing Keras or TensorFlow, and a process that needs neither
(the TFLM child process, `nlpool --help`) never loads them. In a process that has imported
Keras already, `import nlpool_keras` registers the layers at once, so that
`keras.saving.load_model` finds them; otherwise touching any layer name (or passing
`custom_objects=nlpool_keras.custom_objects()`) does.
"""

import importlib
import sys

__version__ = "0.1.0"

_PUBLIC = {
    "build_centroid_detector": "nlpool_keras.models",
    "build_mbv2_sa": "nlpool_keras.models",
    "build_resnet18_sa": "nlpool_keras.models",
    "build_ssdlite_detector": "nlpool_keras.models",
    "get_preset": "nlpool_keras.models",
    "list_presets": "nlpool_keras.models",
    "load_weights": "nlpool_keras.models",
    "save_weights": "nlpool_keras.models",
    "GaussianPooling2D": "nlpool_keras.layers",
    "LocalImportancePooling2D": "nlpool_keras.layers",
    "SelfAttentivePooling2D": "nlpool_keras.layers",
    "SoftPooling2D": "nlpool_keras.layers",
    "custom_objects": "nlpool_keras.layers",
    "get_layer_class": "nlpool_keras.layers",
    "read_detections": "nlpool_keras.data",
}

__all__ = list(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'nlpool_keras' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)


if "keras" in sys.modules:  # Keras is loaded: registering the layers costs nothing more
    importlib.import_module("nlpool_keras.layers")
