"""Every model a `nlpool` command takes, from one string.

    model = load_model("mbv2_sa_035_96_imagenette")   # a preset
    model = load_model("runs/x")                      # a training, prune or qat output folder
    model = load_model("runs/x/weights.npz")          # a weights file beside its run's config.json
    model = load_model("model.keras")

A training run (`nlpool train`) writes model.keras, weights.npz and config.json; `nlpool prune`
writes model.keras; `nlpool qat` writes float_model.keras + qat_weights.npz (a QAT model, which
TF-MOT cannot save and reload itself). Weights files are `.npz` (`save_weights`), Keras 3
`.weights.h5` or tf_keras `.h5`.
"""

import dataclasses
import json
import os

WEIGHT_SUFFIXES = (".npz", ".h5")
RUN_CONFIG = "config.json"


def load_model(spec):
    """A preset name, a `.keras` file, an output folder of `nlpool train/prune/qat`, or a
    weights file with its run's config.json beside it -> a model (Keras 3, or tf_keras for
    a QAT model). Raises FileNotFoundError or ValueError saying what was expected."""
    import keras

    from nlpool_keras import models
    from nlpool_keras.layers import custom_objects

    spec = os.fspath(spec)
    if spec in models.list_presets():
        builder = models.get_preset(spec)["builder"]
        if builder == "build_mbv2_sa":
            return models.build_mbv2_sa(weights=spec, classifier_activation=None)
        return getattr(models, builder)(weights=spec)  # a detector
    if spec.endswith(".keras"):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"no .keras file at model={spec!r}")
        from nlpool_keras.train.losses import CentroidLoss, SSDLoss  # a detector saved with its compiled loss

        losses = {"CentroidLoss": CentroidLoss, "SSDLoss": SSDLoss}
        return keras.saving.load_model(spec, custom_objects={**custom_objects(), **losses})
    if os.path.isdir(spec):
        return _load_folder(spec)
    if spec.endswith(WEIGHT_SUFFIXES):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"no weights file at model={spec!r}")
        return load_run_weights(os.path.dirname(spec) or ".", spec)
    raise ValueError(
        f"model must be a preset ({', '.join(models.list_presets())}), a .keras file, an output folder of nlpool "
        f"train/prune/qat, or a weights file (.npz, .weights.h5, .h5) beside its run's {RUN_CONFIG}, "
        f"received: model={spec!r}"
    )


def _load_folder(folder):
    from nlpool_keras.optimize.qat import QAT_FILES, load_qat

    if os.path.isfile(os.path.join(folder, "model.keras")):
        return load_model(os.path.join(folder, "model.keras"))
    if all(os.path.isfile(os.path.join(folder, name)) for name in QAT_FILES):
        return load_qat(folder)
    if os.path.isfile(os.path.join(folder, "weights.npz")):
        return load_run_weights(folder, os.path.join(folder, "weights.npz"))
    raise FileNotFoundError(
        f"folder model={folder!r} holds no model: expected model.keras, {' + '.join(QAT_FILES)}, or weights.npz "
        f"with {RUN_CONFIG} (found: {', '.join(sorted(os.listdir(folder))) or 'nothing'})"
    )


def load_run_weights(folder, weights):
    """The model of the training run whose config.json is in `folder`, with `weights`."""
    from nlpool_keras.models import load_weights
    from nlpool_keras.train.tasks import build_model
    from nlpool_keras.train.trainer import TrainConfig

    path = os.path.join(folder, RUN_CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weights {weights!r} need the {RUN_CONFIG} of their training run beside them (to build the "
            f"architecture); no file at {path!r}"
        )
    with open(path) as f:
        stored = json.load(f)
    if "classes" not in stored:
        raise ValueError(f"{path} has no 'classes': it was not written by nlpool train")
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{key: value for key, value in stored.items() if key in fields})
    model = build_model(config, stored["classes"])
    load_weights(model, weights)
    return model
