"""A Keras 3 functional or Sequential model rebuilt in tf_keras (which TF-MOT needs), weights by name.

Keras 3 and tf_keras describe a model with nearly the same config; the
differences handled here: the input layer's `batch_shape`, dtype policies,
initializer configs (irrelevant once the weights are copied), Keras-3-only
arguments, and the form of inbound nodes.
"""

from nlpool_keras import frameworks

_KERAS3_ONLY = ("quantization_config", "lora_rank", "lora_alpha", "optional")


def _clean(value):
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return value["config"]["name"]
        if value.get("module") == "keras.initializers":
            return value["class_name"]
        return {k: _clean(v) for k, v in value.items() if k not in _KERAS3_ONLY}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _history(argument):
    """[[layer, node, index, {}], ...] of the Keras tensors in a node's arguments."""
    if isinstance(argument, dict) and argument.get("class_name") == "__keras_tensor__":
        layer, node, index = argument["config"]["keras_history"]
        return [[layer, node, index, {}]]
    if isinstance(argument, (list, tuple)):
        return [entry for item in argument for entry in _history(item)]
    return []


def _endpoints(value):
    return [list(v) for v in value] if value and isinstance(value[0], (list, tuple)) else [list(value)]


def tf_keras_config(config):
    """A Keras 3 functional model config as tf_keras reads it."""
    layers = []
    for layer in config["layers"]:
        converted = {"class_name": layer["class_name"], "name": layer["name"], "config": _clean(layer["config"])}
        if layer["class_name"] == "InputLayer":
            converted["config"]["batch_input_shape"] = converted["config"].pop("batch_shape")
        converted["inbound_nodes"] = [_history(node["args"]) for node in layer.get("inbound_nodes", [])]
        layers.append(converted)
    return {
        "name": config["name"],
        "layers": layers,
        "input_layers": _endpoints(config["input_layers"]),
        "output_layers": _endpoints(config["output_layers"]),
    }


def to_tf_keras(model):
    """`model` if it is a tf_keras model, else a tf_keras copy with the same layer names
    and weights. Sequential models become functional ones."""
    if frameworks.framework_of(model) == "tf_keras":
        return model
    import keras

    from nlpool_keras.layers import custom_objects

    if isinstance(model, keras.Sequential):
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    if not isinstance(model, keras.Model) or "layers" not in model.get_config():
        raise ValueError(f"model must be a functional or Sequential model, received: {type(model).__name__}")
    tf_keras = frameworks.get("tf_keras").keras
    copy = tf_keras.Model.from_config(tf_keras_config(model.get_config()), custom_objects=custom_objects("tf_keras"))
    frameworks.transfer_weights(model, copy)
    return copy
