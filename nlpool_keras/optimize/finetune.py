"""Fine-tuning a tf_keras copy (quantization-aware, pruned or clustered) of a classifier or a
detector on its training images.

`train` is a classifier's (uint8 images, labels) or a detector's `DetectionSet` (images stored
at twice the input size, for random crops); `training_images` and `calibration_images` read
either.
"""

import numpy as np

from nlpool_keras.data.pipeline import batch_dataset, center_crops, epoch_dataset, resize_square


def is_detection_set(train):
    from nlpool_keras.data.detection import DetectionSet

    return isinstance(train, DetectionSet)


def training_images(train):
    """The uint8 training images of a (images, labels) pair or a `DetectionSet`."""
    return train.images if is_detection_set(train) else train[0]


def calibration_images(train, size, count=200):
    """float32 (M <= count, size, size, 3) images of `train` spread over it, as the model sees
    them at evaluation: a classifier's centre crops, a detector's whole images resized."""
    images = training_images(train)
    picked = images[:: max(1, len(images) // count)]
    if is_detection_set(train):
        return np.stack([resize_square(image, size) for image in picked]).astype("float32")
    return center_crops(picked, size)


def recalibration_batches(train, size, seed, count):
    """Batches of about `count` training images for `recalibrate_batchnorm`: a classifier's
    seeded sample of centre crops (`calibration_batches`), a detector's whole images."""
    from nlpool_keras.train.batchnorm import calibration_batches

    if not is_detection_set(train):
        return calibration_batches(train[0], size, seed, count=count)
    images = calibration_images(train, size, count)
    return (images[k : k + 64] for k in range(0, len(images), 64))


def finetune(model, train, epochs, batch_size=32, learning_rate=1e-4, seed=0, callbacks=None, log=print):
    """Fine-tunes a tf_keras model (a `quantize_aware`, `prune_magnitude` or `cluster_weights`
    copy) with Adam: a classifier on (uint8 images, labels) with random-resized-crop + flip and
    cross-entropy, a zoo detector on a `DetectionSet` with box-aware crops and flips and its
    head's loss (`train.tasks.head_loss`)."""
    import tf_keras

    size = model.inputs[0].shape[1]
    if is_detection_set(train):
        from nlpool_keras.data.box_augment import DetectionBatches
        from nlpool_keras.train.tasks import detector_head, head_encoder, head_loss

        head = detector_head(model)
        if head is None:
            raise ValueError(f"detection data fine-tunes a zoo detector; {model.name} has no detector head")
        encode, loss = head_encoder(head, size), head_loss(head)

        def data(epoch):
            return batch_dataset(DetectionBatches(train, size, batch_size, seed, epoch, encode), workers=2)

        model.compile(tf_keras.optimizers.Adam(learning_rate), loss.call)
    else:
        images, labels = train
        one_hot = np.eye(model.outputs[0].shape[-1], dtype="float32")[labels]

        def data(epoch):
            return epoch_dataset(images, one_hot, size, batch_size, seed, epoch, workers=2)

        model.compile(
            tf_keras.optimizers.Adam(learning_rate),
            tf_keras.losses.CategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    for epoch in range(epochs):
        model.fit(data(epoch), callbacks=callbacks, verbose=2 if log else 0)
