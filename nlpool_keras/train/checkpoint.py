"""One-file, atomically written training checkpoints that resume exactly.

A checkpoint holds every layer weight (BatchNorm statistics included), every
optimizer variable (step count and moments), the random-generator states of
the layers, and a JSON state (finished epochs, history). It is written to a
temporary file and renamed over the previous one, so a kill at any moment
leaves either the old or the new checkpoint, never a partial one.
"""

import json
import os
import tempfile

import numpy as np


def _seed_generators(model):
    return [layer.seed_generator for layer in model.layers if getattr(layer, "seed_generator", None) is not None]


def save(path, model, optimizer, state):
    arrays = {f"w:{layer.name}/{i}": v for layer in model.layers for i, v in enumerate(layer.get_weights())}
    arrays.update({f"opt:{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
    arrays.update({f"seed:{i}": np.asarray(g.state) for i, g in enumerate(_seed_generators(model))})
    arrays["state"] = np.array(json.dumps(state))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp.npz", delete=False) as tmp:
        np.savez(tmp, **arrays)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)


def load(path, model, optimizer):
    """Restores `model` and `optimizer` (built first) from `path`; returns the JSON state."""
    with np.load(path) as data:
        stored = {key: data[key] for key in data.files}
    for layer in model.layers:
        count = len(layer.get_weights())
        if count:
            layer.set_weights([stored[f"w:{layer.name}/{i}"] for i in range(count)])
    optimizer.build(model.trainable_variables)
    for i, variable in enumerate(optimizer.variables):
        variable.assign(stored[f"opt:{i}"])
    for i, generator in enumerate(_seed_generators(model)):
        generator.state.assign(stored[f"seed:{i}"])
    return json.loads(str(stored["state"]))


def write_json(path, value):
    """Writes JSON atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".tmp", delete=False) as tmp:
        json.dump(value, tmp, indent=2)
    os.replace(tmp.name, path)
