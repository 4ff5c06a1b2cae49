"""The two Keras frameworks the library runs on, and how a layer is bound to one.

Every layer is written once, against a small `ops` namespace with the
`keras.ops` signatures. It is then bound to a framework:

- ``"keras"``: Keras 3 (`import keras`), with `keras.ops`; any backend.
- ``"tf_keras"``: Keras 2 (`import tf_keras`), which TF-MOT requires, with
  `nlpool_keras.tf_ops` (the same signatures, on TensorFlow).

Nothing here imports TensorFlow until ``"tf_keras"`` is asked for, so the
library runs under ``KERAS_BACKEND=jax`` on a machine without TensorFlow.
"""

import functools
import types

FRAMEWORKS = ("keras", "tf_keras")
SERIALIZATION_PACKAGE = "nlpool"


def check_framework(framework):
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, received: framework={framework!r}")
    return framework


def framework_of(model):
    """ "keras" for a Keras 3 model or layer, "tf_keras" for a tf_keras one."""
    import keras

    if isinstance(model, keras.layers.Layer):
        return "keras"
    if type(model).__module__.startswith("tf_keras"):
        return "tf_keras"
    tf_keras = get("tf_keras").keras
    if isinstance(model, tf_keras.layers.Layer):
        return "tf_keras"
    raise ValueError(f"expected a Keras 3 or tf_keras model or layer, received: {type(model).__name__}")


@functools.lru_cache(maxsize=None)
def get(framework):
    """Returns a namespace with `keras` (the module), `ops` and `random_normal`."""
    check_framework(framework)
    if framework == "keras":
        import keras

        def random_normal(shape, dtype, seed_generator):
            return keras.random.normal(shape, dtype=dtype, seed=seed_generator)

        return types.SimpleNamespace(
            name=framework,
            keras=keras,
            ops=keras.ops,
            random_normal=random_normal,
            seed_generator=keras.random.SeedGenerator,
            register=keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE),
        )
    import tensorflow as tf
    import tf_keras

    from nlpool_keras import tf_ops

    def random_normal(shape, dtype, seed_generator):
        return tf.random.normal(shape, dtype=dtype, seed=seed_generator)

    return types.SimpleNamespace(
        name=framework,
        keras=tf_keras,
        ops=tf_ops,
        random_normal=random_normal,
        seed_generator=lambda seed=None: seed,  # tf.random.normal takes the int seed
        register=tf_keras.utils.register_keras_serializable(package=SERIALIZATION_PACKAGE),
    )


@functools.lru_cache(maxsize=None)
def bind(layer_math, framework):
    """Returns `layer_math` as a layer class of `framework`, registered for saving.

    `layer_math` is a plain class holding a layer's arguments and math; the
    returned class derives from it and from the framework's `layers.Layer`.
    """
    fw = get(framework)
    cls = type(
        layer_math.__name__,
        (layer_math, fw.keras.layers.Layer),
        {
            "__doc__": layer_math.__doc__,
            "__module__": layer_math.__module__,
            "__qualname__": layer_math.__qualname__,
            "framework": framework,
        },
    )
    return fw.register(cls)


def transfer_weights(source, target):
    """Copies the weights of `source` into `target`, layer by layer, matched by name.

    Works across frameworks (Keras 3 <-> tf_keras). Every weighted layer of
    `target` must have a same-named layer in `source` with weights of the same
    shapes; otherwise ValueError, and `target` is left unchanged.
    """
    sources = {layer.name: layer for layer in source.layers}
    updates = []
    for layer in target.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name not in sources:
            raise ValueError(f"layer '{layer.name}' of '{target.name}' has no same-named layer in '{source.name}'")
        values = sources[layer.name].get_weights()
        shapes, expected = [v.shape for v in values], [w.shape for w in weights]
        if shapes != expected:
            raise ValueError(
                f"layer '{layer.name}': weight shapes {shapes} in '{source.name}', {expected} in '{target.name}'"
            )
        updates.append((layer, values))
    for layer, values in updates:
        layer.set_weights(values)
