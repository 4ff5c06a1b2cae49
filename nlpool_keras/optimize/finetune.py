"""Fine-tuning a tf_keras copy (quantization-aware, pruned or clustered) on images and labels."""

import numpy as np

from nlpool_keras.data.pipeline import epoch_dataset


def finetune(model, images, labels, epochs, batch_size=32, learning_rate=1e-4, seed=0, callbacks=None, log=print):
    """Fine-tunes a tf_keras model (a `quantize_aware`, `prune_magnitude` or `cluster_weights`
    copy) on uint8 training images (random-resized-crop + flip) with Adam."""
    import tf_keras

    size = model.inputs[0].shape[1]
    classes = model.outputs[0].shape[-1]
    model.compile(
        tf_keras.optimizers.Adam(learning_rate),
        tf_keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    one_hot = np.eye(classes, dtype="float32")[labels]
    for epoch in range(epochs):
        data = epoch_dataset(images, one_hot, size, batch_size, seed, epoch, workers=2)
        model.fit(data, callbacks=callbacks, verbose=2 if log else 0)
