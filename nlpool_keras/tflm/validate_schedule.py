"""`nlpool validate schedule.json`: an exported patch schedule run in TFLM step by step over a
dataset split, against the whole-graph int8 model run in TFLM beside it.

    program, manifest = load_schedule("runs/export/schedule/schedule.json")
    report = validate_schedule(program, whole_flatbuffer, images, labels)
    print(format_schedule_validation(report))
"""

import numpy as np

from nlpool_keras.export.flatbuffer import micro_flatbuffer
from nlpool_keras.export.program import program_sram
from nlpool_keras.tflm.child import run_tflm
from nlpool_keras.tflm.schedule import run_program
from nlpool_keras.tflm.validate import input_details, quantize_pixels


def validate_schedule(program, whole_flatbuffer, images, labels, chunk=250, progress=True):
    """Runs `images` (pixels in [0, 255], (M, H, W, 3)) through the schedule's steps and through
    the whole-graph flatbuffer, both in TFLM, `chunk` images at a time.

    Returns:
        dict: top-1 of each, arg-max agreement and largest output difference (LSB) between them,
        the schedule's peak SRAM (each step's measured arena + the pool in use) against the whole
        graph's arena, flash of the phase models against the whole graph's, and TFLM invoke time
        per image of each (reference kernels on this host; the schedule's interpreter set-up per
        step not included).
    """
    import keras

    labels = np.asarray(labels)
    quantized = quantize_pixels(np.asarray(images, "float32"), input_details(whole_flatbuffer))
    whole_micro = micro_flatbuffer(whole_flatbuffer)
    bar = keras.utils.Progbar(len(images), unit_name="image") if progress else None
    scheduled, whole, arenas, seconds, whole_seconds, whole_arena = [], [], {}, 0.0, 0.0, 0
    for start in range(0, len(images), chunk):
        batch = quantized[start : start + chunk]
        run = run_program(program, batch)
        reference = run_tflm(whole_micro, batch)
        scheduled.append(run.outputs)
        whole.append(reference.outputs)
        arenas.update(run.arenas)
        seconds += run.seconds_per_image * len(batch)
        whole_seconds += reference.seconds_per_invoke * len(batch)
        whole_arena = reference.arena_bytes
        bar.add(len(batch)) if bar else None
    scheduled, whole = np.concatenate(scheduled).astype(int), np.concatenate(whole).astype(int)
    sram = program_sram(program, arenas)
    flash = sum(len(m) for m in program.models)
    return {
        "images": int(len(images)),
        "top1_schedule_tflm": float(np.mean(scheduled.argmax(1) == labels)),
        "top1_whole_graph_tflm": float(np.mean(whole.argmax(1) == labels)),
        "argmax_agreement_schedule_vs_whole_graph": float(np.mean(scheduled.argmax(1) == whole.argmax(1))),
        "max_lsb_diff_schedule_vs_whole_graph": int(np.abs(scheduled - whole).max()),
        "peak_sram_bytes": int(sram["peak_bytes"]),
        "whole_graph_arena_bytes": int(whole_arena),
        "sram_reduction": round(whole_arena / sram["peak_bytes"], 3),
        "steps": sram["steps"],
        "phase_models": len(program.models),
        "flash_bytes": int(flash),
        "whole_graph_flash_bytes": len(whole_micro),
        "tflm_ms_per_image": round(1000 * seconds / len(images), 2),
        "whole_graph_tflm_ms_per_image": round(1000 * whole_seconds / len(images), 2),
    }


def format_schedule_validation(report):
    """The report as aligned lines."""
    rows = [
        ("images", f"{report['images']:,}"),
        ("top-1 int8 TFLM, patch schedule", f"{report['top1_schedule_tflm']:.4f}"),
        ("top-1 int8 TFLM, whole graph", f"{report['top1_whole_graph_tflm']:.4f}"),
        ("arg-max agreement schedule vs whole graph", f"{report['argmax_agreement_schedule_vs_whole_graph']:.4f}"),
        ("max |schedule - whole graph| (output LSB)", report["max_lsb_diff_schedule_vs_whole_graph"]),
        (
            "peak SRAM (arena + pool, measured)",
            f"{report['peak_sram_bytes']:,} bytes vs whole-graph arena {report['whole_graph_arena_bytes']:,} "
            f"({report['sram_reduction']}x lower)",
        ),
        (
            "flash (phase models)",
            f"{report['flash_bytes']:,} bytes in {report['phase_models']} models vs whole graph "
            f"{report['whole_graph_flash_bytes']:,}",
        ),
        (
            "TFLM time per image (reference kernels)",
            f"{report['tflm_ms_per_image']} ms vs whole graph "
            f"{report['whole_graph_tflm_ms_per_image']} ms on this host",
        ),
    ]
    return "\n".join(f"  {label:<44}{value}" for label, value in rows)
