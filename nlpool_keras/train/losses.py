"""Losses the tasks train with, serializable with the models that use them."""

import keras


@keras.saving.register_keras_serializable(package="nlpool_keras")
class CentroidLoss(keras.losses.Loss):
    """Cross-entropy of a per-cell class map, object cells weighted `object_weight` times the
    background (most cells are background: unweighted, a detector learns to find nothing).

    y_true: int (N, G, G) class indices, 0 = background; y_pred: (N, G, G, C + 1) probabilities.

    Example:
        >>> model.compile("adam", CentroidLoss(object_weight=10.0))
    """

    def __init__(self, object_weight=10.0, name="centroid_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if not object_weight > 0:
            raise ValueError(f"object_weight must be positive, received: object_weight={object_weight!r}")
        self.object_weight = float(object_weight)

    def call(self, y_true, y_pred):
        ops = keras.ops
        y_true = ops.cast(y_true, "int32")
        cross_entropy = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        weights = ops.where(y_true > 0, self.object_weight, 1.0)
        return ops.mean(ops.reshape(cross_entropy * weights, (ops.shape(y_true)[0], -1)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "object_weight": self.object_weight}
