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


@keras.saving.register_keras_serializable(package="nlpool_keras")
class SSDLoss(keras.losses.Loss):
    """SSD's loss: the cross-entropy of every positive anchor and of the `negative_ratio`
    times as many hardest negatives (the background anchors scored most wrongly), plus
    `box_weight` times the Huber loss of the positives' box offsets, divided by the image's
    positives (at least one).

    y_true: (N, A, 5) class index (0 = background) and (dx, dy, dw, dh), as
    `detection.box_targets` gives; y_pred: (N, A, 4 + C + 1) offsets and logits.

    Example:
        >>> model.compile("adam", SSDLoss())
    """

    def __init__(self, negative_ratio=3.0, box_weight=1.0, name="ssd_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        for key, value in (("negative_ratio", negative_ratio), ("box_weight", box_weight)):
            if not value > 0:
                raise ValueError(f"{key} must be positive, received: {key}={value!r}")
        self.negative_ratio, self.box_weight = float(negative_ratio), float(box_weight)

    def call(self, y_true, y_pred):
        ops = keras.ops
        labels = ops.cast(y_true[..., 0], "int32")
        positive = ops.cast(labels > 0, y_pred.dtype)
        cross_entropy = keras.losses.sparse_categorical_crossentropy(labels, y_pred[..., 4:], from_logits=True)
        positives = ops.sum(positive, axis=-1)
        negative_loss = cross_entropy * (1.0 - positive)
        rank = ops.argsort(ops.argsort(-negative_loss, axis=-1), axis=-1)  # 0 = hardest negative
        limit = self.negative_ratio * ops.maximum(positives, 1.0)[:, None]
        hardest = ops.cast(ops.cast(rank, y_pred.dtype) < limit, y_pred.dtype) * (1.0 - positive)
        classification = ops.sum(cross_entropy * (positive + hardest), axis=-1)
        error = ops.abs(y_true[..., 1:] - y_pred[..., :4])
        huber = ops.sum(ops.where(error < 1.0, 0.5 * error * error, error - 0.5), axis=-1)
        box = ops.sum(huber * positive, axis=-1)
        return (classification + self.box_weight * box) / ops.maximum(positives, 1.0)

    def get_config(self):
        return {**super().get_config(), "negative_ratio": self.negative_ratio, "box_weight": self.box_weight}
