"""`nlpool export`: a Keras model -> checked int8 .tflite -> TFLM arena -> firmware files."""

import json
import os

from nlpool_keras.export.firmware import DECODE_OP, c_identifier, write_firmware
from nlpool_keras.export.flatbuffer import flash_breakdown, micro_flatbuffer, strip_names
from nlpool_keras.export.lut import lut_compress
from nlpool_keras.export.preflight import preflight
from nlpool_keras.export.preprocessing import to_model_range, without_preprocessing
from nlpool_keras.export.tflite import to_int8_tflite


def export_for_tflm(model, calibration_images, output_dir, name=None, compress=False, preprocessing=True):
    """Converts, pre-flights, measures the arena in TFLM (child process) and writes into
    `output_dir`: `<name>.tflite` (tensor names stripped; the TFLite interpreter and
    TFLM read it), `<name>.names.json` (tensor index -> name), the firmware files, whose
    `model_data.cc` holds the TFLM-only form (`micro_flatbuffer`, LUT-compressed with
    `compress=True`), and `export.json`. `calibration_images` are pixels in [0, 255];
    `preprocessing=False` exports the model without its rescaling layer
    (`without_preprocessing`): the flatbuffer takes [-1, 1].

    Raises ValueError listing every layer or op TFLM cannot run, `TFLMError`
    when TFLM itself refuses the model. Returns the export summary dict.
    """
    from nlpool_keras.tflm.child import run_tflm

    name = c_identifier(name or model.name)
    if not preprocessing:
        model, calibration_images = without_preprocessing(model), to_model_range(calibration_images)
    flatbuffer = to_int8_tflite(model, calibration_images)
    ops, problems = preflight(flatbuffer, model)
    if problems:
        raise ValueError(f"model '{model.name}' converts to ops TFLM cannot run:\n  " + "\n  ".join(problems))
    stripped, names = strip_names(flatbuffer)
    micro = micro_flatbuffer(flatbuffer)
    if compress:
        micro, rows = lut_compress(micro)
        ops = sorted(set(ops) | {DECODE_OP}) if any(row["compressed"] for row in rows) else ops
    arena_bytes = run_tflm(micro).arena_bytes
    os.makedirs(output_dir, exist_ok=True)
    tflite_path = os.path.join(output_dir, f"{name}.tflite")
    _write_atomic(tflite_path, stripped)
    _write_atomic(os.path.join(output_dir, f"{name}.names.json"), json.dumps(names, indent=0).encode())
    firmware = write_firmware(micro, output_dir, arena_bytes, ops, name=name)
    summary = {
        "model": model.name,
        "tflite": tflite_path,
        "firmware": firmware,
        "ops": ops,
        "tflm_arena_bytes": arena_bytes,
        "flash_bytes": len(micro),
        "tflite_bytes": len(stripped),
        "converter_bytes": len(flatbuffer),
        "compressed": bool(compress),
        "input_range": [0, 255] if preprocessing else [-1, 1],
        "flash": flash_breakdown(micro),
        "calibration_images": int(len(calibration_images)),
        "input_shape": [1, *model.inputs[0].shape[1:]],
    }
    _write_atomic(os.path.join(output_dir, "export.json"), json.dumps(summary, indent=2).encode())
    return summary


def _write_atomic(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
