"""Weights for the zoo: a framework-neutral file format, presets, and verified downloads.

A weights file is an `.npz` with one array per layer weight, keyed
"<layer name>/<index>" in `layer.get_weights()` order, so the same file loads
into the Keras 3 and the tf_keras build of a network. `load_weights` also reads
Keras' own files: a tf_keras `.h5` (by layer name) and, into a Keras 3 model, a
Keras 3 `.weights.h5` (Keras 3 stores layers by position, so it is read into a
clone of the model and copied from there by layer name).

Presets are manifests (`zoo/<name>.json`): builder and arguments, dataset,
preprocessing, measured metrics with the command that measured them, the
weights file (beside the manifest) and its sha256.
"""

import hashlib
import inspect
import json
import os
import tempfile
import warnings

import numpy as np

PRESET_DIRECTORIES = [os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "zoo")]
HEAD_LAYERS = ("predictions",)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_weights(model, path):
    """Writes every layer's weights to an `.npz` (atomically); returns its sha256."""
    arrays = {
        f"{layer.name}/{index}": np.asarray(value)
        for layer in model.layers
        for index, value in enumerate(layer.get_weights())
    }
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".npz", delete=False) as tmp:
        np.savez(tmp, **arrays)
    os.replace(tmp.name, path)
    return sha256(path)


def _manifests():
    found = {}
    for directory in PRESET_DIRECTORIES:
        if not os.path.isdir(directory):
            continue
        for file_name in sorted(os.listdir(directory)):
            if file_name.endswith(".json"):
                with open(os.path.join(directory, file_name)) as f:
                    manifest = json.load(f)
                manifest["directory"] = directory
                found[manifest["name"]] = manifest
    return found


def list_presets(builder=None):
    """Names of the registered presets (of one builder, e.g. "build_mbv2_sa", if given)."""
    return sorted(name for name, m in _manifests().items() if builder is None or m["builder"] == builder)


def get_preset(name):
    """The manifest of preset `name` (a dict)."""
    manifests = _manifests()
    if name not in manifests:
        raise ValueError(f"unknown preset name={name!r}; presets: {sorted(manifests)}")
    return manifests[name]


def is_preset(weights):
    return isinstance(weights, str) and weights in _manifests()


def build_from_preset(builder, arguments):
    """Builds `builder` with a preset's architecture and loads its verified weights.

    `arguments` are the caller's (weights = preset name). An architecture
    argument the caller changed from the builder's default must equal the
    preset's; include_top, pooling, classes (with include_top=False),
    classifier_activation, input_tensor, name and framework stay the caller's.
    A builder without `include_top` (a detector) takes the preset's classes.
    """
    preset = get_preset(arguments["weights"])
    if preset["builder"] != builder.__name__:
        raise ValueError(f"preset '{preset['name']}' is for {preset['builder']}, not {builder.__name__}")
    include_top = arguments.get("include_top", True)  # a detector's head is always its own
    defaults = {k: p.default for k, p in inspect.signature(builder).parameters.items()}
    merged = dict(arguments, weights=None)
    for key, value in preset["arguments"].items():
        given = arguments[key]
        given = tuple(given) if isinstance(given, list) else given
        value = tuple(value) if isinstance(value, list) else value
        if given != defaults[key] and given != value:
            raise ValueError(f"preset '{preset['name']}' has {key}={value!r}, received: {key}={given!r}")
        merged[key] = value
    if include_top and arguments["classes"] not in (defaults["classes"], preset["classes"]):
        raise ValueError(
            f"preset '{preset['name']}' has a {preset['classes']}-class head, received: classes={arguments['classes']}"
            + (" with include_top=True (use include_top=False for a new head)" if "include_top" in arguments else "")
        )
    if include_top:
        merged["classes"] = preset["classes"]
    model = builder(**merged)
    load_weights(model, preset["name"], skip_missing_head=not include_top)
    return model


def resolve(weights):
    """Local path of `weights`: a preset name, a file, or "https://...#sha256=<hex>"."""
    if is_preset(weights):
        preset = get_preset(weights)
        path = os.path.join(preset["directory"], preset["weights_file"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"preset '{weights}': weights file {path} is missing")
        if sha256(path) != preset["sha256"]:
            raise ValueError(
                f"preset '{weights}': {path} has sha256 {sha256(path)}, the manifest says {preset['sha256']}; "
                "the file is corrupted or not this preset's: refusing to load it"
            )
        return path
    if isinstance(weights, str) and weights.startswith("https://"):
        url, _, fragment = weights.partition("#sha256=")
        if len(fragment) != 64:
            raise ValueError(
                f"a weights URL needs its hash as '#sha256=<64 hex digits>', received: weights={weights!r}"
            )
        import keras

        return keras.utils.get_file(
            os.path.basename(url), url, file_hash=fragment, hash_algorithm="sha256", cache_subdir="nlpool_keras"
        )
    if isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights):
        return os.fspath(weights)
    raise ValueError(
        f"weights must be None, a preset name ({list_presets()}), an existing .npz, .weights.h5 or .h5 file, "
        f"or 'https://...#sha256=<hex>', received: weights={weights!r}"
    )


NPZ_MAGIC, HDF5_MAGIC = b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"


def read_weight_arrays(path, model):
    """{"<layer name>/<index>": array} from an `.npz` of `save_weights`, a tf_keras `.h5`
    or (for a Keras 3 `model`) a Keras 3 `.weights.h5`."""
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic.startswith(NPZ_MAGIC):
        try:
            with np.load(path) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError) as error:
            raise ValueError(f"weights file {path} is not a readable .npz weights file: {error}") from None
    if magic == HDF5_MAGIC:
        import h5py

        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            if "layer_names" in group.attrs:
                return _read_legacy_h5(group)
            if "layers" in f:
                return _read_keras3_h5(path, model)
        raise ValueError(f"weights file {path} is an HDF5 file but neither a Keras 3 .weights.h5 nor a tf_keras .h5")
    raise ValueError(
        f"weights file {path} is not a weights file: expected an .npz written by save_weights, a Keras 3 "
        f".weights.h5 or a tf_keras .h5, found a file starting with {magic!r}"
    )


def _read_legacy_h5(group):
    arrays = {}
    for layer_name in group.attrs["layer_names"]:
        layer_name = layer_name.decode() if isinstance(layer_name, bytes) else layer_name
        names = group[layer_name].attrs.get("weight_names", [])
        for index, name in enumerate(names):
            arrays[f"{layer_name}/{index}"] = np.asarray(group[layer_name][name])
    return arrays


def _read_keras3_h5(path, model):
    import keras

    if not isinstance(model, keras.Model):
        raise ValueError(
            f"weights file {path} is a Keras 3 .weights.h5, which loads into Keras 3 models only; load it into the "
            "framework='keras' build and write an .npz with save_weights for tf_keras"
        )
    twin = keras.models.clone_model(model)
    try:
        with (
            warnings.catch_warnings()
        ):  # Keras notes the functional graph's bookkeeping container, which holds no weights
            warnings.filterwarnings("ignore", message="Skipping nested container at '_operations_by_depth")
            twin.load_weights(path)
    except (ValueError, KeyError) as error:
        raise ValueError(
            f"weights file {path} does not fit model '{model.name}' (another architecture?): {error}"
        ) from None
    return {f"{layer.name}/{i}": value for layer in twin.layers for i, value in enumerate(layer.get_weights())}


def load_weights(model, weights, skip_missing_head=False):
    """Loads a weights file (or preset, or URL) into `model`, all or nothing.

    Every weighted layer of the model must be in the file with the same shapes;
    the file may hold more only in its head (`skip_missing_head`, for
    include_top=False). Otherwise ValueError and the model is left unchanged.
    """
    stored = read_weight_arrays(resolve(weights), model)
    file_layers = {key.rsplit("/", 1)[0] for key in stored}
    problems, updates = [], []
    for layer in model.layers:
        current = layer.get_weights()
        if not current:
            continue
        values = [stored.get(f"{layer.name}/{i}") for i in range(len(current))]
        if any(v is None for v in values):
            problems.append(f"layer '{layer.name}' is missing from the file")
        elif [v.shape for v in values] != [w.shape for w in current]:
            hint = " (classes differ from the file's head)" if layer.name in HEAD_LAYERS else ""
            file_shapes, model_shapes = [v.shape for v in values], [w.shape for w in current]
            problems.append(f"layer '{layer.name}': file shapes {file_shapes}, model {model_shapes}{hint}")
        else:
            updates.append((layer, values))
    extra = sorted(file_layers - {layer.name for layer in model.layers})
    if skip_missing_head:
        extra = [name for name in extra if name not in HEAD_LAYERS]
    if extra:
        problems.append(f"the file has layers the model lacks: {extra[:5]}")
    if problems:
        raise ValueError(
            f"weights {weights!r} do not fit model '{model.name}' (another architecture?); nothing was loaded:\n  "
            + "\n  ".join(problems[:10])
        )
    for layer, values in updates:
        layer.set_weights(values)
