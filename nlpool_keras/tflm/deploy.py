"""`nlpool export`: a Keras model -> checked int8 .tflite -> TFLM arena -> firmware files."""

import json
import os

from nlpool_keras.export.firmware import DECODE_OP, c_identifier, write_firmware
from nlpool_keras.export.flatbuffer import flash_breakdown, micro_flatbuffer, strip_names
from nlpool_keras.export.lut import lut_compress
from nlpool_keras.export.phases import cut_op_of, patch_phases
from nlpool_keras.export.preflight import preflight, read_graph
from nlpool_keras.export.preprocessing import (
    PIXEL_OFFSET,
    export_input,
    pin_pixel_range,
    pixel_input_form,
)
from nlpool_keras.export.program import (
    fit_program,
    program_from_manifest,
    program_manifest,
    program_sram,
    schedule_program,
)
from nlpool_keras.export.schedule_firmware import write_schedule_firmware
from nlpool_keras.export.table_softmax import fuse_table_softmaxes
from nlpool_keras.export.tflite import to_int8_tflite
from nlpool_keras.export.window_pool import fuse_window_softmax_pools, window_pools
from nlpool_keras.tflm.child import TFLMWorker, run_tflm
from nlpool_keras.tflm.validate_detection import decoding_of


def export_for_tflm(
    model,
    calibration_images,
    output_dir,
    name=None,
    compress=False,
    fold_rescale=True,
    schedule=None,
    kernels="cmsis_nn",
    int16_ops=(),
    fuse_pools=False,
    interpreter=None,
):
    """Converts, pre-flights, measures the arena in TFLM (child process) and writes into
    `output_dir`: `<name>.tflite` (tensor names stripped; the TFLite interpreter and
    TFLM read it), `<name>.names.json` (tensor index -> name), the firmware files, whose
    `model_data.cc` holds the TFLM-only form (`micro_flatbuffer`, LUT-compressed with
    `compress=True`), and `export.json`. `calibration_images` are pixels in [0, 255]
    (`pin_pixel_range` makes them reach 0 and 255). The int8 input takes each
    pixel p as p - 128 (export.json "input"). `fold_rescale=True` exports a model that has a
    `rescale` layer (a zoo model's [0, 255] -> [-1, 1]) without it (`export_input`):
    the input's quantization does its work, no MUL and ADD at the input (`export.preprocessing`,
    the "folded" form); a model without one has nothing to fold and takes the pixels into its
    graph as they are ("in graph"). `fold_rescale=False` keeps the rescaling in the graph.
    `schedule` ({"cut": layer name, "tiles": n, "suffix": "whole" or "blocks", "query_chunks": k,
    "store_inputs": bool}, or a function of (int8 flatbuffer, model, calibration images as
    converted) returning one, to choose on the converted model) also writes the patch schedule
    of the same int8 model into `output_dir/schedule/` (`export_schedule_for_tflm`).
    `kernels`: the TFLM kernels the firmware will use; "cmsis_nn" (a Cortex-M build, the
    default) also refuses ops those kernels mishandle, "reference" does not.
    `int16_ops`: ops run in int16 through their lookup-table kernels (`to_int8_tflite`, e.g.
    `export.int16_ops.WIDENED_OPS`; the default () keeps every op in int8).
    `fuse_pools=True` writes each self-attentive or LIP layer's window softmax average as the
    project's custom op (`export.window_pool`), and with `int16_ops` each int16 softmax of int8
    values (the attention's) as another (`export.table_softmax`); the TFLite interpreter cannot
    run the result, TFLM only through `interpreter` (the class
    `firmware.host_runtime.HostInterpreter`), which then measures the arena; without
    `fuse_pools` the wheel's TFLM measures it.

    Raises ValueError listing every layer or op TFLM cannot run, `TFLMError`
    when TFLM itself refuses the model. Returns the export summary dict.
    """
    name = c_identifier(name or model.name)
    model, calibration_images, form = export_input(model, pin_pixel_range(calibration_images), fold_rescale)
    flatbuffer = to_int8_tflite(model, calibration_images, int16_ops=int16_ops)
    ops, problems = preflight(flatbuffer, model, kernels=kernels)
    if problems:
        raise ValueError(f"model '{model.name}' converts to ops TFLM cannot run:\n  " + "\n  ".join(problems))
    if fuse_pools:
        if schedule is not None:
            raise ValueError("fuse_pools=True exports the whole graph only; a patch schedule cuts builtin ops")
        if interpreter is None:
            raise ValueError("fuse_pools=True needs interpreter=HostInterpreter (nlpool_keras.firmware.host_runtime)")
        flatbuffer = fuse_table_softmaxes(fuse_window_softmax_pools(flatbuffer, window_pools(model)))
        ops = preflight(flatbuffer, model, kernels=kernels)[0]
    pixels = _pixel_input(flatbuffer, form)
    stripped, names = strip_names(flatbuffer)
    micro = micro_flatbuffer(flatbuffer)
    if compress:
        micro, rows = lut_compress(micro)
        ops = sorted(set(ops) | {DECODE_OP}) if any(row["compressed"] for row in rows) else ops
    arena_bytes = run_tflm(micro, interpreter=interpreter if fuse_pools else None).arena_bytes
    os.makedirs(output_dir, exist_ok=True)
    tflite_path = os.path.join(output_dir, f"{name}.tflite")
    _write_atomic(tflite_path, stripped)
    _write_atomic(os.path.join(output_dir, f"{name}.names.json"), json.dumps(names, indent=0).encode())
    firmware = write_firmware(micro, output_dir, arena_bytes, ops, name=name, pixels=pixels)
    summary = {
        "model": model.name,
        "name": name,
        "tflite": tflite_path,
        "firmware": firmware,
        "ops": ops,
        "tflm_arena_bytes": arena_bytes,
        "flash_bytes": len(micro),
        "tflite_bytes": len(stripped),
        "converter_bytes": len(flatbuffer),
        "compressed": bool(compress),
        "input_range": [-1, 1] if form == "folded" else [0, 255],
        "input": {
            "pixels": f"RGB pixels p in [0, 255], (H, W, C) row-major, each as the int8 p - {PIXEL_OFFSET}",
            "rescale": pixels.name,
            "scale": float(pixels.scale),
            "zero_point": pixels.zero_point,
            "quantization": pixels.description,
        },
        "int16_ops": list(int16_ops),
        "fused_pools": bool(fuse_pools),
        "flash": flash_breakdown(micro),
        "calibration_images": int(len(calibration_images)),
        "input_shape": [1, *model.inputs[0].shape[1:]],
        # which layer each op comes from is read from the tensor names; this says what each layer is
        "layer_classes": {layer.name: type(layer).__name__ for layer in model.layers},
    }
    decoding = decoding_of(flatbuffer)
    if decoding is not None:  # a detector: the firmware decodes its output (firmware/programs/centroids.h)
        summary["decoding"] = decoding
    if callable(schedule):
        schedule = schedule(flatbuffer, model, calibration_images)
    if schedule is not None:
        options = {k: v for k, v in schedule.items() if k in ("suffix", "query_chunks", "store_inputs")}
        cut_op = cut_op_of(flatbuffer, model, schedule["cut"])
        folder = os.path.join(output_dir, "schedule")
        whole = os.path.relpath(tflite_path, folder)
        manifest = export_schedule_for_tflm(flatbuffer, cut_op, schedule["tiles"], folder, name, whole, **options)
        summary["schedule"] = {
            "manifest": os.path.join(folder, "schedule.json"),
            "layer": schedule["cut"],
            **{k: manifest[k] for k in ("cut", "tiles", "peak_sram_bytes", "flash_bytes")},
        }
    _write_atomic(os.path.join(output_dir, "export.json"), json.dumps(summary, indent=2).encode())
    return summary


def export_schedule_for_tflm(
    flatbuffer, cut_op, tiles, output_dir, name, whole_graph=None, suffix="whole", query_chunks=1, store_inputs=False
):
    """Cuts the int8 `flatbuffer` (tensor names kept, e.g. the converter's) into a patch schedule
    (`export.phases.patch_phases`), measures every phase model's arena in TFLM and writes into
    `output_dir`: the phase models in TFLM's form (`model_XX.micro.tflite`), the schedule's
    firmware (`export.schedule_firmware`) and `schedule.json`, the manifest that
    `nlpool validate` runs; `whole_graph` is the path of the whole-graph .tflite relative to
    `output_dir`, recorded for the comparison. Returns the manifest dict."""
    name = c_identifier(name)
    plan = patch_phases(flatbuffer, cut_op, tiles, suffix, query_chunks, store_inputs)
    program = schedule_program(plan)
    ops = sorted(set().union(*(preflight(m)[0] for m in program.models)))
    program = program._replace(models=[micro_flatbuffer(m) for m in program.models])
    with TFLMWorker() as worker:
        arenas = {m: worker.run(data).arena_bytes for m, data in enumerate(program.models)}
    program = fit_program(program, arenas)
    os.makedirs(output_dir, exist_ok=True)
    files = [f"model_{m:02d}.micro.tflite" for m in range(len(program.models))]
    for filename, data in zip(files, program.models, strict=True):
        _write_atomic(os.path.join(output_dir, filename), data)
    details = read_graph(flatbuffer).inputs[0]
    scale, zero_point = (float(v) for v in details["quantization"])
    pixels = pixel_input_form(scale, int(zero_point))  # None: an input other than pixels
    firmware = write_schedule_firmware(program, output_dir, arenas, ops, name, int(zero_point), pixels)
    manifest = {
        "name": name,
        "whole_graph": whole_graph,
        "cut_op": cut_op,
        "cut": plan.stage.graph.describe(cut_op),
        "tiles": tiles,
        "suffix": suffix,
        "query_chunks": query_chunks,
        "store_inputs": store_inputs,
        "input": {"shape": [int(d) for d in details["shape"]], "scale": scale, "zero_point": int(zero_point)},
        "ops": ops,
        "arenas": {str(m): a for m, a in arenas.items()},
        "peak_sram_bytes": program_sram(program, arenas)["peak_bytes"],
        "flash_bytes": sum(len(m) for m in program.models),
        "firmware": firmware,
        **program_manifest(program, files),
    }
    _write_atomic(os.path.join(output_dir, "schedule.json"), json.dumps(manifest, indent=1).encode())
    return manifest


def load_schedule(manifest_path):
    """(`Program`, manifest dict) of a `schedule.json` that `export_schedule_for_tflm` wrote."""
    with open(manifest_path) as f:
        manifest = json.load(f)
    folder = os.path.dirname(os.path.abspath(manifest_path))
    models = []
    for filename in manifest["models"]:
        with open(os.path.join(folder, filename), "rb") as f:
            models.append(f.read())
    return program_from_manifest(manifest, models), manifest


def _pixel_input(flatbuffer, expected):
    """The `PixelInput` the converter gave `flatbuffer`'s input; RuntimeError if it is not the
    `expected` form. Calibration pinned to the whole pixel range gives it; a quantization-aware
    model's input range comes from its training instead (`tflm.qat.run_qat` pins it there)."""
    scale, zero_point = read_graph(flatbuffer).inputs[0]["quantization"]
    form = pixel_input_form(scale, zero_point)
    if form is None or form.name != expected:
        raise RuntimeError(
            f"the converter quantized the input with scale {scale!r} and zero point {zero_point}, "
            f"not as the {expected!r} pixel input; its firmware could not take pixels as int8 p - {PIXEL_OFFSET}. "
            "A quantization-aware model takes its input range from training: calibrate its ranges on pixels "
            "that reach 0 and 255 (export.preprocessing.pin_pixel_range, as nlpool qat does)"
        )
    return form


def _write_atomic(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
