"""Where the memory and the compute of a deployed model go: per op, peak, arena, flash.

report = profile_model(settle_batchnorm(build_mbv2_sa(strides="4222121")))   # Keras model -> int8 -> figures
report = profile_tflite(open("model.tflite", "rb").read())
"""

import numpy as np

from nlpool_keras.profile.graph import graph_profile


def profile_tflite(flatbuffer, arena=True, evaluation=None, float_model=None):
    """`graph_profile` of an int8 flatbuffer plus, with `arena=True`, the arena TFLM
    needs (measured in a child process), its ratio to the liveness peak, and the
    time of one invoke with TFLM's reference kernels on this host (a relative figure).
    TFLM gets max(4 MiB, 4 x the liveness peak + 1 MiB) to plan in; it reports what it used.

    With `evaluation=(images, labels)` (float pixels, integer labels), `report["top1"]`
    holds the int8 top-1 in TFLM on them and, given `float_model`, the float top-1."""
    from nlpool_keras.tflm.child import DEFAULT_ARENA, run_tflm

    report = graph_profile(flatbuffer)
    arena_size = max(DEFAULT_ARENA, 4 * report["peak_activation_bytes"] + 2**20)
    if arena:
        run = run_tflm(flatbuffer, arena_size=arena_size)
        report["tflm_arena_bytes"] = run.arena_bytes
        report["arena_to_peak"] = round(run.arena_bytes / report["peak_activation_bytes"], 3)
        report["tflm_ms_per_invoke"] = round(run.seconds_per_invoke * 1000, 2)
    if evaluation is not None:
        from nlpool_keras.tflm.validate import validate

        checked = validate(flatbuffer, *evaluation, float_model, arena_size=arena_size, progress=False)
        report["top1"] = {"images": checked["images"], "int8_tflm": checked["top1_tflm"]}
        if float_model is not None:
            report["top1"]["float"] = checked["top1_float"]
    return report


def settle_batchnorm(model, batches=2, batch_size=16, seed=0, value_range=(0.0, 255.0)):
    """Sets the BatchNorm statistics of an untrained `model` from uniform random inputs
    in `value_range` (pixels; (-1, 1) for a model built with include_preprocessing=False),
    in place. With the initial statistics (mean 0, variance 1) activations shrink through
    a deep network until int8 scales reach ~1e-8, on which TFLM's kernels abort; memory
    and MAC figures do not depend on the values, so profile untrained models settled.
    Returns `model`."""
    from nlpool_keras.train.batchnorm import recalibrate_batchnorm

    rng = np.random.default_rng(seed)
    shape = (batch_size, *model.input_shape[1:])
    recalibrate_batchnorm(model, [rng.uniform(*value_range, shape).astype("float32") for _ in range(batches)])
    return model


def random_pixels(model, count=16, seed=0, value_range=(0.0, 255.0)):
    """`count` uniform random inputs of `model`: calibration when memory and MACs are what
    matters (they do not depend on the values)."""
    shape = (count, *model.input_shape[1:])
    return np.random.default_rng(seed).uniform(*value_range, shape).astype("float32")


def profile_model(model, images=None, arena=True, seed=0, evaluation=None, value_range=(0.0, 255.0)):
    """Exports `model` to int8 (calibrated on `images`, or on uniform random inputs in
    `value_range` when None: memory and MAC figures do not depend on the values) and
    profiles it, adding the Keras parameter count and, per self-attentive pooling
    layer, its token count L and int8 attention-score bytes (heads x L^2). With
    `evaluation=(images, labels)`, top-1 of the float model and of its int8 form in TFLM."""
    from nlpool_keras.export.tflite import to_int8_tflite

    if images is None:
        images = random_pixels(model, seed=seed, value_range=value_range)
    report = profile_tflite(to_int8_tflite(model, images), arena, evaluation, model if evaluation is not None else None)
    report["params"] = int(model.count_params())
    report["attention"] = attention_scores(model)
    return report


def keras_macs(model):
    """MACs of a functional `model` counted on its Keras layers (convolutions, dense layers,
    pooling weights, attention): the figure for a model that int8 export refuses. It is within
    1 % of `graph_profile`'s count on the int8 flatbuffer, which counts the converter's ops (e.g.
    the standard zoo network with self-attentive pooling at "2222121": 6,754,096 and 6,766,640)."""
    from nlpool_keras.schedule.cost import full_macs

    return sum(full_macs(layer) for layer in model.layers)


def attention_scores(model):
    """Per self-attentive pooling layer of `model`: {"layer", "tokens" L, "heads",
    "score_bytes"} with score_bytes = heads x L^2, the int8 attention scores it holds at once."""
    from nlpool_keras.layers.cost import attention_tokens

    scores = []
    for layer in model.layers:
        if type(layer).__name__ == "SelfAttentivePooling2D":
            tokens = attention_tokens(layer, (None, *layer.input_spatial_shape, None))
            heads = layer.num_heads
            scores.append({"layer": layer.name, "tokens": tokens, "heads": heads, "score_bytes": heads * tokens**2})
    return scores


__all__ = ["attention_scores", "graph_profile", "keras_macs", "profile_model", "profile_tflite", "settle_batchnorm"]
