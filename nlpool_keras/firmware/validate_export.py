"""`nlpool validate --target`: an export (or its patch schedule) built for a board and run on
its emulator over a split, against the host TFLM, a classifier's or a detector's figures."""

import os

from nlpool_keras.data.evaluation import evaluation_images
from nlpool_keras.firmware.validate import (
    export_flatbuffer,
    format_schedule_report,
    format_target_report,
    validate_on_target,
    validate_schedule_on_target,
)
from nlpool_keras.firmware.validate_detection import (
    compare_detections,
    format_detector_target_report,
    validate_detector_on_target,
)
from nlpool_keras.tflm.validate import input_details
from nlpool_keras.tflm.validate_detection import decoder_of, detection_score, is_detector
from nlpool_keras.tflm.validate_export import write_report


def export_folder(path):
    """(export folder, whether `path` names its schedule) of an export folder or its schedule.json."""
    schedule = os.path.basename(path) == "schedule.json"
    folder = os.path.dirname(os.path.dirname(os.path.abspath(path))) if schedule else path
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"--target runs an export: no folder at {path!r} (the --output of nlpool export, or its "
            "schedule/schedule.json)"
        )
    return folder, schedule


def validate_export_on_target(
    path, data, target="cortex-m4", kernels="cmsis_nn", tree=None, split=None, per_class=None, per_op=None,
    data_dir=None, output=None, command=None, log=print, keep_pool_bytes=None, functions=None, fit_block=False,
):  # fmt: skip
    """Builds the export at `path` (or its schedule) for `target` and runs `split` of `data`
    there; `per_op` images also go through the per-op locator; `keep_pool_bytes`: a schedule's
    interpreters kept from boot, `fit_block`: its SRAM block fitted to the target's arenas
    (`validate_schedule_on_target`); `functions`: the first image's
    instructions by function, traced (`function_profile`), that many kept in the report.
    Returns the report."""
    folder, schedule = export_folder(path)
    if keep_pool_bytes is not None and not schedule:
        raise ValueError(f"keep_pool_bytes={keep_pool_bytes}: for a schedule (its schedule.json), not {path!r}")
    if fit_block and not schedule:
        raise ValueError(f"fit_block: for a schedule (its schedule.json), not {path!r}")
    kept_or_fitted = {"keep_pool_bytes": keep_pool_bytes, "fit_block": fit_block}
    flatbuffer, _ = export_flatbuffer(folder)
    size = int(input_details(flatbuffer)["shape"][1])
    if is_detector(flatbuffer):
        images, truth = evaluation_images(data, size, per_class, split, data_dir)
        if schedule:
            decoder = decoder_of(flatbuffer)
            report = validate_schedule_on_target(
                folder, images, None, target, kernels, tree, log=log, score=detection_score(flatbuffer, truth),
                detections=lambda run, host: compare_detections(decoder, run, host, truth), **kept_or_fitted,
            )  # fmt: skip
            log(format_schedule_report(report))
        else:
            report = validate_detector_on_target(folder, images, truth, target, kernels, tree, log=log)
            log(format_detector_target_report(report))
        report.update(images_used=truth.names)
    else:
        from nlpool_keras.data import evaluation_split

        split = evaluation_split(data, split, data_dir)
        images, labels = evaluation_images(data, size, per_class, split, data_dir)
        if schedule:
            report = validate_schedule_on_target(
                folder, images, labels, target, kernels, tree, log=log, **kept_or_fitted
            )
            log(format_schedule_report(report))
        else:
            report = validate_on_target(folder, images, labels, target, kernels, tree, log=log)
            log(format_target_report(report))
        report.update(split=split)
        if per_op:
            from nlpool_keras.firmware.locate import format_location, locate_on_target
            from nlpool_keras.tflm.validate import quantize_pixels

            inputs = quantize_pixels(images[:per_op], input_details(flatbuffer))
            report["per_op"] = locate_on_target(folder, inputs, target, kernels, tree)
            log(format_location(report["per_op"]))
    if functions:
        from nlpool_keras.firmware.functions import format_function_profile, function_profile
        from nlpool_keras.tflm.validate import quantize_pixels

        profile = function_profile(report["elf"], target, quantize_pixels(images[:1], input_details(flatbuffer)))
        report["functions_first_image"] = {
            key: profile[key] for key in ("instructions_per_image", "instructions_outside")
        } | {"functions": profile["functions"][:functions]}
        log(format_function_profile(profile, top=functions))
    report.update(export_dir=folder, data=data, command=command)
    write_report(report, output, log)
    return report
