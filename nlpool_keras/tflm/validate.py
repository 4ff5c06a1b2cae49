"""`nlpool validate`: an int8 flatbuffer in TFLM against the TFLite interpreter and the float model.

report = validate(flatbuffer, images, labels, float_model=model)
print(format_validation(report))
"""

import numpy as np

from nlpool_keras.tflm.child import DEFAULT_ARENA, run_tflm
from nlpool_keras.tflm.interpreter import quantize, tflite_reference_outputs


def input_details(flatbuffer):
    """Shape, type and quantization of a flatbuffer's (first) input."""
    from nlpool_keras.export.preflight import read_graph

    return read_graph(flatbuffer).inputs[0]


def validate(flatbuffer, images, labels, float_model=None, chunk=250, arena_size=DEFAULT_ARENA, progress=True):
    """Runs `images` (float pixels, (M, H, W, 3)) through TFLM (child processes,
    `chunk` images each), the TFLite interpreter and, when given, the float model.

    Returns:
        dict: top-1 of each, arg-max agreement of TFLM with TFLite and with float,
        largest |TFLM - TFLite| in output LSB, the arena TFLM used (measured), flash
        bytes, the op list. Raises ValueError naming the problems when the
        pre-flight finds ops or types TFLM cannot run, `TFLMError` when TFLM fails.
    """
    import keras

    from nlpool_keras.export.preflight import preflight

    ops, problems = preflight(flatbuffer, float_model)
    if problems:
        raise ValueError("the flatbuffer cannot run in TFLM's int8 kernels:\n  " + "\n  ".join(problems))
    images, labels = np.asarray(images, "float32"), np.asarray(labels)
    quantized = quantize(images, input_details(flatbuffer))
    bar = keras.utils.Progbar(len(images), unit_name="image") if progress else None
    tflm, arena_bytes, seconds = [], 0, 0.0
    for start in range(0, len(images), chunk):
        run = run_tflm(flatbuffer, quantized[start : start + chunk], arena_size)
        tflm.append(run.outputs)
        arena_bytes, seconds = run.arena_bytes, seconds + run.seconds_per_invoke * len(run.outputs)
        bar.add(len(run.outputs)) if bar else None
    tflm = np.concatenate(tflm).astype(int)
    tflite = tflite_reference_outputs(flatbuffer, quantized).astype(int)
    report = {
        "images": int(len(images)),
        "top1_tflm": float(np.mean(tflm.argmax(1) == labels)),
        "top1_tflite": float(np.mean(tflite.argmax(1) == labels)),
        "argmax_agreement_tflm_vs_tflite": float(np.mean(tflm.argmax(1) == tflite.argmax(1))),
        "max_lsb_diff_tflm_vs_tflite": int(np.abs(tflm - tflite).max()),
        "tflm_arena_bytes": int(arena_bytes),
        "flash_bytes": len(flatbuffer),
        "tflm_ms_per_image": round(1000 * seconds / len(images), 2),
        "ops": ops,
    }
    if float_model is not None:
        float_out = float_model.predict(images, verbose=0, batch_size=64)
        report["top1_float"] = float(np.mean(float_out.argmax(1) == labels))
        report["argmax_agreement_tflm_vs_float"] = float(np.mean(tflm.argmax(1) == float_out.argmax(1)))
    return report


def format_validation(report):
    """The report as aligned lines."""
    rows = [
        ("images", f"{report['images']:,}"),
        ("top-1 float (Keras)", report.get("top1_float")),
        ("top-1 int8 TFLite interpreter", report["top1_tflite"]),
        ("top-1 int8 TFLM", report["top1_tflm"]),
        ("arg-max agreement TFLM vs TFLite", report["argmax_agreement_tflm_vs_tflite"]),
        ("arg-max agreement TFLM vs float", report.get("argmax_agreement_tflm_vs_float")),
        ("max |TFLM - TFLite| (output LSB)", report["max_lsb_diff_tflm_vs_tflite"]),
        ("TFLM arena (measured)", f"{report['tflm_arena_bytes']:,} bytes"),
        ("flash (flatbuffer)", f"{report['flash_bytes']:,} bytes"),
        ("TFLM time per image (reference kernels)", f"{report['tflm_ms_per_image']} ms on this host"),
        ("ops", ", ".join(report["ops"])),
    ]
    return "\n".join(
        f"  {label:<42}{value:.4f}" if isinstance(value, float) else f"  {label:<42}{value}"
        for label, value in rows
        if value is not None
    )
