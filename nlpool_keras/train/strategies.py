"""tf.distribute strategies by name (TensorFlow backend)."""

import contextlib

STRATEGIES = ("one", "mirrored", "multiworker", "tpu")


def make_strategy(name):
    """ "one": the default device; "mirrored": all local GPUs (or logical devices);
    "multiworker": MultiWorkerMirroredStrategy configured by TF_CONFIG; "tpu": TPUStrategy."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, received: strategy={name!r}")
    if name == "one":
        return _NoStrategy()
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"strategy={name!r} needs the TensorFlow backend, not {keras.backend.backend()!r}")
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


class _NoStrategy:
    def scope(self):
        return contextlib.nullcontext()
