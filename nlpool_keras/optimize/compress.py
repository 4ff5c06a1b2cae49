"""`nlpool prune`: a float model -> pruned, thinned or clustered, fine-tuned, as a Keras 3 model.

    model, report = compress_model(model, "magnitude", (images, labels), amount=0.5, epochs=1)
    model.save("pruned.keras")          # what `nlpool export` takes

TF-MOT works on tf_keras copies; the result comes back into a Keras 3 model with the same
layer names (for "channels": the thinner architecture), BatchNorm statistics re-estimated on
training images after fine-tuning.
"""

import numpy as np

METHODS = {
    # method: (what `amount` is, its default)
    "magnitude": ("final sparsity of the prunable kernels, in (0, 1)", 0.5),
    "channels": ("fraction of each block's hidden channels removed, in [0, 1)", 0.3),
    "cluster": ("distinct values per kernel, an int >= 2", 16),
}


def compress_model(
    model,
    method,
    train,
    amount=None,
    criterion="bn_gamma",
    epochs=1,
    batch_size=32,
    learning_rate=1e-4,
    seed=0,
    log=print,
):
    """Prunes (`method="magnitude"`), removes channels ("channels", with `criterion`
    "bn_gamma" or "l1") or clusters ("cluster") a Keras 3 float `model`, then fine-tunes
    it `epochs` epochs on `train`: a classifier's (uint8 images, labels) or a detector's
    `DetectionSet` (`finetune`).

    Returns:
        (Keras 3 model, report dict: method, amount, params before/after, per-kernel
        sparsity and distinct values).
    """
    import keras

    from nlpool_keras import frameworks
    from nlpool_keras.optimize import channels, pruning
    from nlpool_keras.optimize.finetune import finetune, recalibration_batches, training_images
    from nlpool_keras.optimize.legacy import to_tf_keras
    from nlpool_keras.train.batchnorm import recalibrate_batchnorm

    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, received: method={method!r}")
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"compress a Keras 3 float model (a preset, .keras file or training run), received: {type(model).__name__}"
        )
    amount = METHODS[method][1] if amount is None else amount
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, received: epochs={epochs!r}")
    count = len(training_images(train))
    steps = epochs * int(np.ceil(count / batch_size))
    callbacks = None
    if method == "magnitude":
        if steps == 0:
            raise ValueError("magnitude pruning zeroes kernels during fine-tuning: epochs must be >= 1, received: 0")
        legacy = pruning.prune_magnitude(model, amount, end_step=max(1, steps // 2), frequency=max(1, steps // 20))
        callbacks, strip, result = (
            [*pruning.pruning_callbacks()],
            pruning.strip_pruning,
            keras.models.clone_model(model),
        )
    elif method == "cluster":
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 2:
            raise ValueError(f"cluster needs amount = {METHODS[method][0]}, received: amount={amount!r}")
        legacy = pruning.cluster_weights(model, clusters=amount)
        strip, result = pruning.strip_clustering, keras.models.clone_model(model)
    else:
        result, _ = channels.prune_channels(model, amount, criterion=criterion)
        legacy, strip = to_tf_keras(result), (lambda m: m)
    log(f"{method} (amount {amount}): fine-tuning {epochs} epoch(s) on {count} images")
    if epochs:
        finetune(legacy, train, epochs, batch_size, learning_rate, seed, callbacks, log=log)
    frameworks.transfer_weights(strip(legacy), result)
    recalibrate_batchnorm(result, recalibration_batches(train, result.inputs[0].shape[1], seed, count=512))
    report = pruning.sparsity_report(result)
    report.update(method=method, amount=amount, params_before=int(model.count_params()))
    report.update(params=int(result.count_params()), finetune_epochs=epochs, train_images=count)
    if method == "channels":
        report["criterion"] = criterion
    return result, report


def prune_command(
    model, data, output, method="magnitude", amount=None, criterion="bn_gamma", epochs=1, batch_size=32,
    learning_rate=1e-4, seed=0, per_class=None, val_per_class=None, val_split=None, data_dir=None, command=None,
    log=print,
):  # fmt: skip
    """`nlpool prune`: `compress_model` of `model` (a model spec) on the train split of `data`,
    the float metric before and after on its evaluation split (a classifier's top-1, a
    detector's centroid F1 or box AP@0.5: `report["metric"]`); writes OUTPUT/model.keras and
    OUTPUT/prune_report.json and returns the report."""
    import json
    import os

    from nlpool_keras.data.evaluation import evaluation_images, training_set
    from nlpool_keras.detection.heads import HEAD_METRICS
    from nlpool_keras.loading import load_model
    from nlpool_keras.train.tasks import detection_scores, detector_head

    model = load_model(model)
    size, head = model.inputs[0].shape[1], detector_head(model)
    train = training_set(data, size, per_class, data_dir)
    images, truth = evaluation_images(data, size, val_per_class, val_split, data_dir)
    name = HEAD_METRICS.get(head, "top1")

    def metric(m):
        outputs = m.predict(images, verbose=0, batch_size=64)
        if head is None:
            return float(np.mean(outputs.argmax(1) == truth))
        return detection_scores(head, outputs, truth, size)[name]

    before = metric(model)
    result, report = compress_model(
        model, method, train, amount, criterion, epochs, batch_size, learning_rate, seed, log=log
    )
    after = metric(result)
    report.update(metric=name, val_images=int(len(images)), command=command)
    report[f"{name}_float"] = {"before": before, "after": after}
    os.makedirs(output, exist_ok=True)
    result.save(os.path.join(output, "model.keras"))
    with open(os.path.join(output, "prune_report.json"), "w") as f:
        json.dump(report, f, indent=2)
    log(
        f"{method}: params {report['params_before']:,} -> {report['params']:,}, kernel sparsity "
        f"{report['sparsity']:.3f}; float {name} {before:.4f} -> {after:.4f} on {len(images)} images"
    )
    log(f"written: {output}/model.keras (for nlpool qat/export), {output}/prune_report.json")
    return report
