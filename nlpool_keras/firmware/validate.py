"""An exported model validated on the emulated microcontroller against the host TFLM interpreter.

    report = validate_on_target("out/export", images, labels, "cortex-m4", "cmsis_nn")

The firmware (built by `build_firmware`) runs every image on the emulated board; the host TFLM
interpreter runs the same flatbuffer (TFLM's form, what the firmware holds) on the same int8
inputs. The report gives top-1 on target, arg-max agreement and the largest output difference
in LSB against the host, the arena used on target against the host's, the stack's high-water
mark, static SRAM and flash from the ELF, and instructions per image and per op (first image).
"""

import json
import os

import numpy as np

from nlpool_keras.export.program import block_bytes
from nlpool_keras.firmware.build import build_firmware, read_export
from nlpool_keras.firmware.emulator import run_firmware
from nlpool_keras.firmware.targets import get_target

# QEMU with -icount runs some tens of millions of instructions a second here; the timeout is generous
SECONDS_PER_GIGA_INSTRUCTION = 120


def run_bounded(elf, target, inputs):
    """`run_firmware` over `inputs`, its timeout sized from a first short run's instructions
    per image."""
    probe = run_firmware(elf, target, inputs[:1], timeout=600)
    timeout = 60 + SECONDS_PER_GIGA_INSTRUCTION * float(probe["instructions"][0]) * len(inputs) / 1e9
    return run_firmware(elf, target, inputs, timeout=timeout)


def export_flatbuffer(export_dir):
    """The export's `.tflite` (read from beside `export.json`) and its tensor names."""
    summary = read_export(export_dir)
    path = os.path.join(export_dir, os.path.basename(summary["tflite"]))
    with open(path, "rb") as f:
        flatbuffer = f.read()
    names_path = os.path.splitext(path)[0] + ".names.json"
    names = {}
    if os.path.isfile(names_path):
        with open(names_path) as f:
            names = {int(k): v for k, v in json.load(f).items()}
    return flatbuffer, names


def host_outputs(flatbuffer, inputs):
    """The host TFLM interpreter's int8 outputs for int8 `inputs` (TFLM's form of the flatbuffer);
    a model with the project's custom ops runs in `host_runtime.HostInterpreter`."""
    from nlpool_keras.export.flatbuffer import micro_flatbuffer
    from nlpool_keras.firmware.host_runtime import HostInterpreter
    from nlpool_keras.tflm.child import TFLMWorker
    from nlpool_keras.tflm.interpreter import project_ops

    # the project's custom ops run in the host build of the pinned TFLM, builtin ones in the wheel's
    with TFLMWorker(interpreter=HostInterpreter if project_ops(flatbuffer) else None) as worker:
        run = worker.run(micro_flatbuffer(flatbuffer), inputs)
    return run.outputs.reshape(len(inputs), -1).astype(np.int64), run.arena_bytes


POOLING_CLASSES = (
    "SelfAttentivePooling2D",
    "LocalImportancePooling2D",
    "GaussianPooling2D",
    "SoftPooling2D",
    "MaxPooling2D",
    "AveragePooling2D",
)


def op_layers(flatbuffer, names, layer_classes):
    """[(op name, Keras layer or None)] in execution order, from the tensor names."""
    from nlpool_keras.export.preflight import layer_of, read_graph

    graph = read_graph(flatbuffer)
    rows = []
    for op in graph.ops:
        tensor = op["outputs"][0]
        rows.append((op["op_name"], layer_of(names.get(tensor) or graph.tensors[tensor]["name"], layer_classes)))
    return rows


def instruction_shares(op_instructions, layers, layer_classes):
    """Instructions of each pooling layer (`POOLING_CLASSES`), their sum and share of all."""
    by_layer = {}
    for (_, layer), count in zip(layers, op_instructions, strict=True):
        if layer_classes.get(layer) in POOLING_CLASSES:
            by_layer[layer] = by_layer.get(layer, 0) + count
    total = float(sum(op_instructions))
    return {
        "per_pooling_layer": {k: int(v) for k, v in by_layer.items()},
        "pooling_instructions": int(sum(by_layer.values())),
        "pooling_share": sum(by_layer.values()) / total if total else 0.0,
    }


def validate_on_target(export_dir, images, labels, target="cortex-m4", kernels="cmsis_nn", tree=None, log=None):
    """Runs `images` (pixels in [0, 255]) on the emulated target; returns the report (see module)."""
    outputs, host, _, report = run_on_target(export_dir, images, target, kernels, tree, log)
    labels = np.asarray(labels)
    report.update(
        top1_target=float(np.mean(outputs.argmax(1) == labels)),
        top1_host_tflm=float(np.mean(host.argmax(1) == labels)),
        argmax_agreement_target_vs_host=float(np.mean(outputs.argmax(1) == host.argmax(1))),
    )
    return report


def run_on_target(export_dir, images, target="cortex-m4", kernels="cmsis_nn", tree=None, log=None):
    """Builds the export's firmware and runs `images` (pixels in [0, 255]) on the emulated target
    and in the host TFLM interpreter. Returns (target outputs (M, K) int, host outputs (M, K),
    the firmware run, the report's figures shared by every task: output difference in LSB,
    arena, stack, SRAM, flash, instructions per image and per op)."""
    from nlpool_keras.tflm.validate import input_details, quantize_pixels

    flatbuffer, names = export_flatbuffer(export_dir)
    summary = read_export(export_dir)
    figures = build_firmware(export_dir, target, kernels, tree, log=log)
    inputs = quantize_pixels(np.asarray(images, "float32"), input_details(flatbuffer))
    host, host_arena = host_outputs(flatbuffer, inputs)
    run = run_bounded(figures["elf"], target, inputs)
    outputs = run["outputs"].astype(np.int64)
    diff = np.abs(outputs - host)
    op_instructions = [t * run["instructions_per_tick"] for _, _, t in run["op_ticks"]]
    classes = summary.get("layer_classes", {})
    layers = op_layers(flatbuffer, names, classes)
    stack = run["stack_bytes"]
    report = {
        "target": target,
        "kernels": kernels,
        "machine": get_target(target).machine,
        "images": int(len(inputs)),
        "max_lsb_diff_target_vs_host": int(diff.max()),
        "differing_output_fraction": float(np.mean(diff > 0)),
        "arena_used_bytes_target": run["arena_used_bytes"],
        "arena_used_bytes_host": int(host_arena),
        "arena_reserved_bytes": run["arena_size_bytes"],
        "stack_high_water_bytes": stack,
        "static_sram_bytes": figures["static_sram_bytes"],
        "profiler_bytes": figures["profiler_bytes"],
        # what the model needs in SRAM on target: the arena it used, the stack, and static data
        # other than the arena's reserve and the runner's per-op profiler (a deployed firmware has none)
        "sram_bytes_target": run["arena_used_bytes"]
        + stack
        + figures["static_sram_bytes"]
        - run["arena_size_bytes"]
        - figures["profiler_bytes"],
        "host_arena_bytes_export": summary["tflm_arena_bytes"],
        "flash_bytes": figures["flash_bytes"],
        "model_bytes": figures["model_bytes"],
        "code_bytes": figures["code_bytes"],
        "instructions_per_image": float(np.mean(run["instructions"])),
        "instructions_per_image_min_max": [float(run["instructions"].min()), float(run["instructions"].max())],
        "per_op_first_image": [
            {"index": i, "op": name, "layer": layers[i][1] if i < len(layers) else None, "instructions": int(n)}
            for (i, name, _), n in zip(run["op_ticks"], op_instructions, strict=True)
        ],
        **instruction_shares(op_instructions, layers, classes),
        "elf": figures["elf"],
    }
    return outputs, host, run, report


def validate_schedule_on_target(
    export_dir, images, labels=None, target="cortex-m4", kernels="cmsis_nn", tree=None, log=None, score=None,
    detections=None, keep_pool_bytes=None, fit_block=False,
):  # fmt: skip
    """Runs the export's patch schedule on the emulated target over `images` (pixels in
    [0, 255]); compares its outputs with the host TFLM run of the same schedule. Top-1 on
    target with `labels`; `score` (outputs -> {name: figure}, e.g. a detector's F1) on target
    and host; `detections` ((firmware run, host outputs) -> figures) compares what a
    detector's firmware decoded with the host's decoding. `keep_pool_bytes`: the interpreters
    built once at boot, their persistent data in a pool of that size (`build_firmware`); the
    report then counts the pool's bytes used, not its size, and the boot's set-up apart.
    `fit_block`: the firmware built again with the SRAM block its arenas take on the target
    (`fitted_block_bytes`, from a first image run in the export's block, whose arenas were
    measured on the host with a margin), and that firmware measured; the export's block is
    reported beside it."""
    from nlpool_keras.tflm.deploy import load_schedule
    from nlpool_keras.tflm.schedule import run_program
    from nlpool_keras.tflm.validate import input_details, quantize_pixels

    if fit_block and keep_pool_bytes is not None:
        raise ValueError(f"fit_block with keep_pool_bytes={keep_pool_bytes}: kept interpreters are not fitted")
    flatbuffer, _ = export_flatbuffer(export_dir)
    program, manifest = load_schedule(os.path.join(export_dir, "schedule", "schedule.json"))
    build = {"tree": tree, "program": "schedule", "log": log, "keep_pool_bytes": keep_pool_bytes}
    figures = build_firmware(export_dir, target, kernels, **build)
    inputs = quantize_pixels(np.asarray(images, "float32"), input_details(flatbuffer))
    host = run_program(program, inputs).outputs.reshape(len(inputs), -1).astype(np.int64)
    fitted = {}
    if fit_block:
        first = run_firmware(figures["elf"], target, inputs[:1], timeout=600)  # as run_bounded's probe
        fitted = {"export_block_bytes": first["block_bytes"], "export_static_sram_bytes": figures["static_sram_bytes"]}
        figures = build_firmware(export_dir, target, kernels, block_bytes=fitted_block_bytes(program, first), **build)
    run = run_bounded(figures["elf"], target, inputs)
    outputs = run["outputs"].astype(np.int64)
    diff = np.abs(outputs - host)
    per_tick = run["instructions_per_tick"]
    scores = {}
    if labels is not None:
        scores["top1_target"] = float(np.mean(outputs.argmax(1) == np.asarray(labels)))
    if score is not None:
        scores.update({f"{key}_target": value for key, value in score(outputs).items()})
        scores.update({f"{key}_host_tflm": value for key, value in score(host).items()})
    if detections is not None:
        scores.update(detections(run, host))
    kept = {}
    if keep_pool_bytes is not None:
        kept = {
            "boot_setup_instructions": float(run["kept_ticks"] * per_tick),
            "persistent_bytes": run["persistent_bytes"],
            "persistent_bytes_per_model": run["persistent_bytes_per_model"],
            "keep_pool_bytes": figures["keep_pool_bytes"],
        }
    report = {
        "target": target,
        "kernels": kernels,
        "machine": get_target(target).machine,
        "program": "schedule",
        "images": int(len(inputs)),
        "steps": len(program.steps),
        "argmax_agreement_target_vs_host": float(np.mean(outputs.argmax(1) == host.argmax(1))),
        "max_lsb_diff_target_vs_host": int(diff.max()),
        "block_bytes": run["block_bytes"],
        "largest_arena_used_bytes_target": run["arena_used_bytes"],
        "stack_high_water_bytes": run["stack_bytes"],
        "static_sram_bytes": figures["static_sram_bytes"],
        # the block (arenas and the pool), the stack and the other static data; kept interpreters:
        # the persistent pool's bytes used in place of its size
        "sram_bytes_target": figures["static_sram_bytes"]
        + run["stack_bytes"]
        + kept.get("persistent_bytes", 0)
        - kept.get("keep_pool_bytes", 0),
        "host_peak_sram_bytes": manifest["peak_sram_bytes"],
        "flash_bytes": figures["flash_bytes"],
        "model_bytes": figures["model_bytes"],
        "code_bytes": figures["code_bytes"],
        "instructions_per_image": float(np.mean(run["instructions"])),
        "setup_instructions_per_image": float(np.mean(run["setup_ticks"]) * per_tick),
        "invoke_instructions_per_image": float(np.mean(run["invoke_ticks"]) * per_tick),
        "steps_first_image": [
            {
                "step": s,
                "model": m,
                "setup_instructions": setup * per_tick,
                "invoke_instructions": invoke * per_tick,
                "arena_bytes": arena,
            }
            for (s, m, setup, invoke), arena in zip(run["step_ticks"], run["step_arena_bytes"], strict=True)
        ],
        "elf": figures["elf"],
    }
    return scores | kept | fitted | report


def fitted_block_bytes(program, run):
    """The SRAM block a schedule needs on the target, from a run's first image: per step the
    arena its interpreter used there below the pool in use (both 16-byte aligned), the largest;
    a detector's decoding in the block, if it takes more."""
    return max(block_bytes(program, run["step_arena_bytes"]), run["decode_block_bytes"])


def _schedule_scores(report):
    """ "top-1 X; " and/or a detector's "centroid F1 X (host Y); " of a schedule's target report."""
    parts = []
    if "top1_target" in report:
        parts.append(f"top-1 {report['top1_target']:.4f}; ")
    for key, name in (("f1", "centroid F1"), ("ap50", "box AP@0.5")):
        if f"{key}_target" in report:
            parts.append(f"{name} {report[f'{key}_target']:.4f} (host {report[f'{key}_host_tflm']:.4f}); ")
    return "".join(parts)


def format_schedule_report(report):
    decoded = []
    if "same_detections_target_vs_host" in report:  # a detector's schedule, decoded on the target
        decoded = [
            f"  decoded on target in the block: same detections as the host on "
            f"{100 * report['same_detections_target_vs_host']:.1f} % of images ({report['objects_target']} objects), "
            f"{report['decode_instructions_per_image'] / 1e6:.2f} M instructions per image"
        ]
    fitted = ""
    if "export_block_bytes" in report:  # built again with the block its arenas take on the target
        fitted = f" fitted on the target, the export's {report['export_block_bytes']:,}"
    kept = []
    if "persistent_bytes" in report:  # interpreters kept from boot
        kept = [
            f"  interpreters kept from boot: {report['persistent_bytes']:,} B of persistent data (in the SRAM "
            f"above, out of a pool of {report['keep_pool_bytes']:,}), "
            f"{report['boot_setup_instructions'] / 1e6:.1f} M instructions at boot"
        ]
    return "\n".join(
        [
            f"schedule on {report['target']} ({report['machine']}, {report['kernels']} kernels), {report['images']} "
            f"images, {report['steps']} steps:",
            f"  {_schedule_scores(report)}arg-max agreement with the host schedule run "
            f"{report['argmax_agreement_target_vs_host']:.4f}, largest output difference "
            f"{report['max_lsb_diff_target_vs_host']} LSB",
            f"  SRAM {report['sram_bytes_target']:,} B (static {report['static_sram_bytes']:,} with the block of "
            f"{report['block_bytes']:,}{fitted}, stack {report['stack_high_water_bytes']:,}); host peak "
            f"{report['host_peak_sram_bytes']:,} B",
            f"  flash {report['flash_bytes']:,} B; "
            f"{report['instructions_per_image'] / 1e6:.1f} M instructions per image "
            f"({report['setup_instructions_per_image'] / 1e6:.1f} M setting up steps, "
            f"{report['invoke_instructions_per_image'] / 1e6:.1f} M invoking them)",
            *kept,
            *decoded,
        ]
    )


def format_target_report(report):
    return "\n".join(
        [
            f"on {report['target']} ({report['machine']}, {report['kernels']} kernels), {report['images']} images:",
            f"  top-1 {report['top1_target']:.4f} (host TFLM {report['top1_host_tflm']:.4f}); arg-max agreement with "
            f"host {report['argmax_agreement_target_vs_host']:.4f}, largest output difference "
            f"{report['max_lsb_diff_target_vs_host']} LSB",
            f"  SRAM: arena used {report['arena_used_bytes_target']:,} B (host {report['arena_used_bytes_host']:,}), "
            f"stack {report['stack_high_water_bytes']:,} B, static {report['static_sram_bytes']:,} B "
            f"(arena reserve and {report['profiler_bytes']:,} B of per-op profiler included); "
            f"model's total {report['sram_bytes_target']:,} B",
            f"  flash {report['flash_bytes']:,} B (model {report['model_bytes']:,}, code {report['code_bytes']:,})",
            f"  {report['instructions_per_image'] / 1e6:.1f} M instructions per image (QEMU -icount), pooling layers "
            f"{100 * report['pooling_share']:.1f} %",
        ]
    )
