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


def validate_schedule(program, whole_flatbuffer, images, labels=None, chunk=250, progress=True, score=None):
    """Runs `images` (pixels in [0, 255], (M, H, W, 3)) through the schedule's steps and through
    the whole-graph flatbuffer, both in TFLM, `chunk` images at a time. `score`: a function of
    the int8 outputs (M, K) giving {name: figure} (a detector's F1), reported for each.

    Returns:
        dict: top-1 of each (with `labels`), `score`'s figures of each, arg-max agreement and
        largest output difference (LSB) between them, the schedule's peak SRAM (each step's
        measured arena + the pool in use) against the whole graph's arena, flash of the phase
        models against the whole graph's, and TFLM invoke time per image of each (reference
        kernels on this host; the schedule's interpreter set-up per step not included).
    """
    import keras

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
    count = len(images)
    scheduled = np.concatenate(scheduled).astype(int).reshape(count, -1)
    whole = np.concatenate(whole).astype(int).reshape(count, -1)
    sram = program_sram(program, arenas)
    flash = sum(len(m) for m in program.models)
    report = {"images": int(count)}
    if labels is not None:
        report["top1_schedule_tflm"] = float(np.mean(scheduled.argmax(1) == np.asarray(labels)))
        report["top1_whole_graph_tflm"] = float(np.mean(whole.argmax(1) == np.asarray(labels)))
    if score is not None:
        for name, outputs in (("schedule_tflm", scheduled), ("whole_graph_tflm", whole)):
            report.update({f"{key}_{name}": value for key, value in score(outputs).items()})
    return report | {
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
        *(
            (f"{label} int8 TFLM, {where}", f"{report[f'{key}_{name}_tflm']:.4f}")
            for key, label in (("top1", "top-1"), ("f1", "centroid F1"), ("ap50", "box AP@0.5"))
            for name, where in (("schedule", "patch schedule"), ("whole_graph", "whole graph"))
            if f"{key}_{name}_tflm" in report
        ),
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
