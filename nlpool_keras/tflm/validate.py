"""`nlpool validate`: an int8 flatbuffer in TFLM against the TFLite interpreter and the float model.

report = validate(flatbuffer, images, labels, float_model=model)
print(format_validation(report))
"""

import numpy as np

from nlpool_keras.tflm.child import DEFAULT_ARENA, TFLMWorker
from nlpool_keras.tflm.interpreter import dequantize, project_ops, quantize, tflite_reference_outputs


def input_details(flatbuffer):
    """Shape, type and quantization of a flatbuffer's (first) input."""
    from nlpool_keras.export.preflight import read_graph

    return read_graph(flatbuffer).inputs[0]


def output_details(flatbuffer):
    """Shape, type and quantization of a flatbuffer's (first) output."""
    from nlpool_keras.export.preflight import read_graph

    return read_graph(flatbuffer).outputs[0]


def input_range(details):
    """(0, 255) for a flatbuffer that takes pixels, (-1, 1) for one exported without its
    preprocessing: read from the float range its int8 input can represent."""
    scale = details["quantization_parameters"]["scales"][0]
    zero_point = details["quantization_parameters"]["zero_points"][0]
    return (-1, 1) if scale * (127 - zero_point) < 2 else (0, 255)


def quantize_pixels(images, details):
    """int8 inputs of pixels in [0, 255] for a flatbuffer's input `details`: for a flatbuffer
    exported without preprocessing (`input_range`), of the values its input holds
    (`export.preprocessing.to_folded_range`). A pixel p of an export's input is p - 128 either way."""
    from nlpool_keras.export.preprocessing import to_folded_range

    return quantize(images if input_range(details) == (0, 255) else to_folded_range(images), details)


def against_float(outputs, float_outputs, details, name):
    """Arg-max agreement of int8 `outputs` with the float model's
    and the output error in float units (dequantized int8 minus float), mean and max |.|."""
    error = np.abs(dequantize(outputs, details) - float_outputs)
    return {
        f"argmax_agreement_{name}_vs_float": float(np.mean(outputs.argmax(1) == float_outputs.argmax(1))),
        f"mean_abs_error_{name}_vs_float": float(error.mean()),
        f"max_abs_error_{name}_vs_float": float(error.max()),
    }


def run_int8(
    flatbuffer, images, float_model=None, chunk=250, arena_size=DEFAULT_ARENA, progress=True, names=None,
    interpreter=None,
):  # fmt: skip
    """Runs `images` (pixels in [0, 255], (M, H, W, 3); each p as the int8 p - 128 for an export
    of either form, `quantize_pixels`) through TFLM (child processes,
    `chunk` images each), the TFLite interpreter and, when given, the float model.

    TFLM runs what a firmware holds: `micro_flatbuffer(flatbuffer)`, which the
    TFLite interpreter cannot read; it runs `flatbuffer`. `names` ({tensor index:
    name}, for a stripped flatbuffer) name the tensors in pre-flight messages. A flatbuffer
    with the project's custom ops (`export.window_pool`) runs in `interpreter` (the class
    `firmware.host_runtime.HostInterpreter`) and not in the TFLite interpreter: its TFLite
    outputs are None and its report says so.

    Returns:
        (TFLM int8 outputs, TFLite int8 outputs, float outputs or None), each (M, ...) in the
        output's shape, and a report: largest |TFLM - TFLite| in output LSB, the arena TFLM
        used (measured), flash bytes of the TFLM form and of `flatbuffer`, the op list.
        Raises ValueError naming the problems when the pre-flight finds ops or types TFLM
        cannot run, `TFLMError` when TFLM fails.
    """
    import keras

    from nlpool_keras.export.flatbuffer import flash_breakdown, micro_flatbuffer
    from nlpool_keras.export.preflight import preflight

    ops, problems = preflight(flatbuffer, float_model, names)
    if problems:
        raise ValueError("the flatbuffer cannot run in TFLM's int8 kernels:\n  " + "\n  ".join(problems))
    images = np.asarray(images, "float32")
    details = input_details(flatbuffer)
    quantized = quantize_pixels(images, details)
    bar = keras.utils.Progbar(len(images), unit_name="image") if progress else None
    tflm, arena_bytes, seconds, micro = [], 0, 0.0, micro_flatbuffer(flatbuffer)
    custom = project_ops(flatbuffer)
    if custom and interpreter is None:
        raise ValueError(f"the flatbuffer has custom ops {custom}: pass interpreter=HostInterpreter to run them")
    with TFLMWorker(arena_size, interpreter=interpreter if custom else None) as worker:
        for start in range(0, len(images), chunk):
            run = worker.run(micro, quantized[start : start + chunk])
            tflm.append(run.outputs)
            arena_bytes, seconds = run.arena_bytes, seconds + run.seconds_per_invoke * len(run.outputs)
            bar.add(len(run.outputs)) if bar else None
    shape = (len(images), *output_details(flatbuffer)["shape"][1:])
    tflm = np.concatenate(tflm).astype(int).reshape(shape)
    tflite = None if custom else tflite_reference_outputs(flatbuffer, quantized).astype(int).reshape(shape)
    float_out = None if float_model is None else float_model.predict(images, verbose=0, batch_size=64)
    report = {
        "images": int(len(images)),
        "input_range": list(input_range(details)),
        "max_lsb_diff_tflm_vs_tflite": None if custom else int(np.abs(tflm - tflite).max()),
        "custom_ops": custom,
        "tflm_arena_bytes": int(arena_bytes),
        "flash_bytes": len(micro),
        "tflite_bytes": len(flatbuffer),
        "flash": flash_breakdown(micro),
        "tflm_ms_per_image": round(1000 * seconds / len(images), 2),
        "ops": ops,
    }
    return tflm, tflite, float_out, report


def validate(
    flatbuffer, images, labels, float_model=None, chunk=250, arena_size=DEFAULT_ARENA, progress=True, names=None,
    interpreter=None,
):  # fmt: skip
    """A classifier's `run_int8` report with top-1 of TFLM, TFLite and the float model,
    arg-max agreement of TFLM with TFLite, and with a float model each interpreter's arg-max
    agreement with it and its output error in float units (mean and max |dequantized - float|);
    the TFLite figures are None for a flatbuffer with custom ops (`run_int8`)."""
    tflm, tflite, float_out, report = run_int8(
        flatbuffer, images, float_model, chunk, arena_size, progress, names, interpreter
    )
    labels = np.asarray(labels)
    report.update(
        top1_tflm=float(np.mean(tflm.argmax(1) == labels)),
        top1_tflite=None if tflite is None else float(np.mean(tflite.argmax(1) == labels)),
        argmax_agreement_tflm_vs_tflite=None if tflite is None else float(np.mean(tflm.argmax(1) == tflite.argmax(1))),
    )
    if float_out is not None:
        report["top1_float"] = float(np.mean(float_out.argmax(1) == labels))
        quantization = output_details(flatbuffer)
        for name, outputs in (("tflite", tflite), ("tflm", tflm)):
            if outputs is not None:
                report.update(against_float(outputs, float_out, quantization, name))
    return report


def format_validation(report):
    """The report as aligned lines."""
    rows = [
        ("images", f"{report['images']:,}"),
        ("top-1 float (Keras)", report.get("top1_float")),
        ("top-1 int8 TFLite interpreter", report["top1_tflite"]),
        ("custom ops (TFLite cannot run them)", ", ".join(report.get("custom_ops") or []) or None),
        ("top-1 int8 TFLM", report["top1_tflm"]),
        ("arg-max agreement TFLM vs TFLite", report["argmax_agreement_tflm_vs_tflite"]),
        ("arg-max agreement TFLite vs float", report.get("argmax_agreement_tflite_vs_float")),
        ("arg-max agreement TFLM vs float", report.get("argmax_agreement_tflm_vs_float")),
        ("output error TFLite vs float (mean, max)", _error_pair(report, "tflite")),
        ("output error TFLM vs float (mean, max)", _error_pair(report, "tflm")),
        ("max |TFLM - TFLite| (output LSB)", report["max_lsb_diff_tflm_vs_tflite"]),
        ("TFLM arena (measured)", f"{report['tflm_arena_bytes']:,} bytes"),
        (
            "flash (TFLM flatbuffer)",
            f"{report['flash_bytes']:,} bytes, {report['flash']['flash_per_constant_byte']:.3f}x its "
            f"{report['flash']['constant_bytes']:,} bytes of constants",
        ),
        ("TFLM time per image (reference kernels)", f"{report['tflm_ms_per_image']} ms on this host"),
        ("ops", ", ".join(report["ops"])),
    ]
    return format_rows(rows)


def format_rows(rows):
    """(label, value) rows as aligned lines; floats with 4 decimals, None values left out."""
    return "\n".join(
        f"  {label:<42}{value:.4f}" if isinstance(value, float) else f"  {label:<42}{value}"
        for label, value in rows
        if value is not None
    )


def _error_pair(report, name):
    mean, largest = report.get(f"mean_abs_error_{name}_vs_float"), report.get(f"max_abs_error_{name}_vs_float")
    return None if mean is None else f"{mean:.5f}, {largest:.5f} (float units)"
