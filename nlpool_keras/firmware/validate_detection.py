"""A detector validated on the emulated microcontroller, decoding included.

    report = validate_detector_on_target("out/export", data.images, data, "cortex-m4")

The firmware runs the detector and decodes its int8 output in C: a centroid map with
`programs/centroids.h`, an SSD-lite table's boxes with their non-maximum suppression with
`programs/ssd_boxes.h`. The host runs the same flatbuffer in TFLM and decodes in Python
(`detection.decode_centroids`, `detection.decode_detections`). The report says whether both
found the same objects on every image, the head's metric of each, and the decoding's
instructions beside the network's.
"""

import numpy as np

from nlpool_keras.firmware.validate import export_flatbuffer, run_on_target
from nlpool_keras.tflm.validate_detection import decoder_of


def target_objects(rows, count, grid):
    """Per input, `decode_centroids`-style dicts of the firmware's "centroid" lines
    ([input, label, sum_x, sum_y, cells, score])."""
    grid_h, grid_w = grid
    objects = [[] for _ in range(count)]
    for index, label, sum_x, sum_y, cells, score in rows:
        x, y = sum_x / (2 * grid_w * cells), sum_y / (2 * grid_h * cells)
        objects[index].append({"label": label, "x": x, "y": y, "cells": cells, "score": score})
    return objects


def target_boxes(rows, count):
    """Per input, the boxes of the firmware's "box" lines (`emulator.ssd_box`), in order."""
    boxes = [[] for _ in range(count)]
    for index, box in rows:
        boxes[index].append(box)
    return boxes


def compare_detections(decoder, run, host, data):
    """What a detector's firmware decoded (`run`, from `emulator.run_firmware`) against the
    host's decoding of its TFLM outputs `host` (M, K): the head's metric on each
    (`<metric>_target`, `<metric>_host_tflm`), the share of images with the same detections,
    and the decoding's instructions per image."""
    count = len(host)
    if len(run["decode_ticks"]) != count:
        raise ValueError("the firmware does not decode its outputs: is it a detector's export, built by this version?")
    found_host = decoder.decode_int8(host)
    if decoder.kind == "centroids":
        found_target = target_objects(run["centroids"], count, decoder.shape[:2])
    else:
        found_target = target_boxes(run["boxes"], count)
    on_target, on_host = decoder.scores(found_target, data), decoder.scores(found_host, data)
    same = [decoder.same(a, b) for a, b in zip(found_target, found_host, strict=True)]
    return {
        f"{decoder.metric}_target": on_target[decoder.metric],
        f"{decoder.metric}_host_tflm": on_host[decoder.metric],
        "head": decoder.kind,
        "metric": decoder.metric,
        "detections_target": on_target,
        "same_detections_target_vs_host": float(np.mean(same)),
        "objects_target": int(sum(len(found) for found in found_target)),
        "decode_instructions_per_image": float(np.mean(run["decode_ticks"] * run["instructions_per_tick"])),
        "match": decoder.matching(),
        "classes": list(data.classes),
    }


def validate_detector_on_target(export_dir, images, data, target="cortex-m4", kernels="cmsis_nn", tree=None, log=None):
    """Runs a detector export's firmware over `images` (pixels in [0, 255]) with ground truth
    `data` (a `DetectionSet` of the same images); returns `run_on_target`'s figures and
    `compare_detections`'."""
    flatbuffer, _ = export_flatbuffer(export_dir)
    outputs, host, run, report = run_on_target(export_dir, images, target, kernels, tree, log)
    report.update(compare_detections(decoder_of(flatbuffer), run, host, data))
    return report


METRIC_NAMES = {"f1": "centroid F1", "ap50": "box AP@0.5"}


def format_detector_target_report(report):
    metric = report["metric"]
    return "\n".join(
        [
            f"on {report['target']} ({report['machine']}, {report['kernels']} kernels), {report['images']} images:",
            f"  {METRIC_NAMES[metric]} {report[f'{metric}_target']:.4f} (host TFLM "
            f"{report[f'{metric}_host_tflm']:.4f}); same objects as the "
            f"host on {100 * report['same_detections_target_vs_host']:.1f} % of images "
            f"({report['objects_target']} objects); largest output difference "
            f"{report['max_lsb_diff_target_vs_host']} LSB",
            f"  SRAM: arena used {report['arena_used_bytes_target']:,} B (host {report['arena_used_bytes_host']:,}), "
            f"stack {report['stack_high_water_bytes']:,} B, static {report['static_sram_bytes']:,} B "
            f"(arena reserve and {report['profiler_bytes']:,} B of per-op profiler included); "
            f"model's total {report['sram_bytes_target']:,} B",
            f"  flash {report['flash_bytes']:,} B (model {report['model_bytes']:,}, code {report['code_bytes']:,})",
            f"  {report['instructions_per_image'] / 1e6:.1f} M instructions per image (QEMU -icount), decoding "
            f"{report['decode_instructions_per_image'] / 1e3:.1f} k",
        ]
    )
