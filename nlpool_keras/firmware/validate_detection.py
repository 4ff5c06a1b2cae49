"""A centroid detector validated on the emulated microcontroller, decoding included.

    report = validate_detector_on_target("out/export", data.images, data, "cortex-m4")

The firmware runs the detector and decodes its int8 map in C (`programs/centroids.h`); the host
runs the same flatbuffer in TFLM and decodes in Python (`detection.decode_centroids`). The report
says whether both found the same objects on every image, the centroid F1 of each, and the
decoding's instructions beside the network's.
"""

import numpy as np

from nlpool_keras.detection import MATCH_CELLS, centroid_scores
from nlpool_keras.firmware.validate import export_flatbuffer, run_on_target
from nlpool_keras.tflm.validate import output_details
from nlpool_keras.tflm.validate_detection import decode_int8


def target_objects(rows, count, grid):
    """Per input, `decode_centroids`-style dicts of the firmware's "centroid" lines
    ([input, label, sum_x, sum_y, cells, score])."""
    grid_h, grid_w = grid
    objects = [[] for _ in range(count)]
    for index, label, sum_x, sum_y, cells, score in rows:
        x, y = sum_x / (2 * grid_w * cells), sum_y / (2 * grid_h * cells)
        objects[index].append({"label": label, "x": x, "y": y, "cells": cells, "score": score})
    return objects


def validate_detector_on_target(export_dir, images, data, target="cortex-m4", kernels="cmsis_nn", tree=None, log=None):
    """Runs a detector export's firmware over `images` (pixels in [0, 255]) with ground truth
    `data` (a `DetectionSet` of the same images); returns `run_on_target`'s figures and the
    detections' agreement and F1 on target and on the host."""
    flatbuffer, _ = export_flatbuffer(export_dir)
    details = output_details(flatbuffer)
    shape = tuple(int(v) for v in details["shape"][1:])
    outputs, host, run, report = run_on_target(export_dir, images, target, kernels, tree, log)
    if not run["centroids"] and len(run["decode_ticks"]) == 0:
        raise ValueError(f"the firmware of {export_dir} does not decode centroids: is it a detector's export?")
    found_host = decode_int8(host.reshape(-1, *shape), details)
    found_target = target_objects(run["centroids"], len(images), shape[:2])
    distance = MATCH_CELLS / shape[1]
    report_distance = {"cells": MATCH_CELLS, "input_pixels": MATCH_CELLS * images.shape[1] / shape[1]}
    on_target = centroid_scores(found_target, data.boxes, data.labels, data.classes, distance)
    on_host = centroid_scores(found_host, data.boxes, data.labels, data.classes, distance)
    decode_instructions = run["decode_ticks"] * run["instructions_per_tick"]
    report.update(
        f1_target=on_target["f1"],
        f1_host_tflm=on_host["f1"],
        centroids_target=on_target,
        same_detections_target_vs_host=float(np.mean([a == b for a, b in zip(found_target, found_host, strict=True)])),
        objects_target=int(sum(len(found) for found in found_target)),
        decode_instructions_per_image=float(np.mean(decode_instructions)),
        match_distance=report_distance,
        classes=list(data.classes),
    )
    return report


def format_detector_target_report(report):
    return "\n".join(
        [
            f"on {report['target']} ({report['machine']}, {report['kernels']} kernels), {report['images']} images:",
            f"  centroid F1 {report['f1_target']:.4f} (host TFLM {report['f1_host_tflm']:.4f}); same objects as the "
            f"host on {100 * report['same_detections_target_vs_host']:.1f} % of images "
            f"({report['objects_target']} objects); largest output difference "
            f"{report['max_lsb_diff_target_vs_host']} LSB",
            f"  SRAM: arena used {report['arena_used_bytes_target']:,} B (host {report['arena_used_bytes_host']:,}), "
            f"stack {report['stack_high_water_bytes']:,} B, static {report['static_sram_bytes']:,} B "
            f"(arena reserve included); model's total {report['sram_bytes_target']:,} B",
            f"  flash {report['flash_bytes']:,} B (model {report['model_bytes']:,}, code {report['code_bytes']:,})",
            f"  {report['instructions_per_image'] / 1e6:.1f} M instructions per image (QEMU -icount), decoding "
            f"{report['decode_instructions_per_image'] / 1e3:.1f} k",
        ]
    )
