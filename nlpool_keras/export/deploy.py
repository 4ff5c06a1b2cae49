"""`nlpool export`: a Keras model -> checked int8 .tflite -> TFLM arena -> firmware files."""

import json
import os

from nlpool_keras.export.firmware import c_identifier, write_firmware
from nlpool_keras.export.preflight import preflight
from nlpool_keras.export.tflite import to_int8_tflite


def export_for_tflm(model, calibration_images, output_dir, name=None):
    """Converts, pre-flights, measures the arena in TFLM (child process) and writes
    `<name>.tflite`, the firmware files and `export.json` into `output_dir`.

    Raises ValueError listing every layer or op TFLM cannot run, `TFLMError`
    when TFLM itself refuses the model. Returns the export summary dict.
    """
    from nlpool_keras.tflm.child import run_tflm

    name = c_identifier(name or model.name)
    flatbuffer = to_int8_tflite(model, calibration_images)
    ops, problems = preflight(flatbuffer, model)
    if problems:
        raise ValueError(f"model '{model.name}' converts to ops TFLM cannot run:\n  " + "\n  ".join(problems))
    arena_bytes = run_tflm(flatbuffer).arena_bytes
    os.makedirs(output_dir, exist_ok=True)
    tflite_path = os.path.join(output_dir, f"{name}.tflite")
    with open(tflite_path + ".tmp", "wb") as f:
        f.write(flatbuffer)
    os.replace(tflite_path + ".tmp", tflite_path)
    firmware = write_firmware(flatbuffer, output_dir, arena_bytes, ops, name=name)
    summary = {
        "model": model.name,
        "tflite": tflite_path,
        "firmware": firmware,
        "ops": ops,
        "tflm_arena_bytes": arena_bytes,
        "flash_bytes": len(flatbuffer),
        "calibration_images": int(len(calibration_images)),
        "input_shape": [1, *model.inputs[0].shape[1:]],
    }
    with open(os.path.join(output_dir, "export.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary
