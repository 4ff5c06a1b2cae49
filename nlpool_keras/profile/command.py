"""`nlpool profile`: a model's per-op memory and MACs, its TFLM arena, model card and plot, or
its patch schedule (estimated or measured)."""

import json
import os

from nlpool_keras.data.evaluation import evaluation_images


def profile_schedule(
    model, output, schedule, options, max_mac_overhead, sram_budget=None, no_arena=False, data=None, split="train",
    val_split=None, top1_per_class=None, data_dir=None, command=None, log=print,
):  # fmt: skip
    """Writes OUTPUT/<model>.schedule.json: the schedule of --schedule `schedule` ("auto" or
    CUT:TILES with `options`), estimated on the Keras model (`no_arena`) or measured in TFLM on
    the --data calibration images (top-1 on `top1_per_class` val images per class)."""
    from nlpool_keras.loading import load_model
    from nlpool_keras.profile import random_pixels
    from nlpool_keras.profile.schedule_setting import (
        estimate_schedule,
        format_estimate,
        format_measured,
        measure_schedule_in_tflm,
    )
    from nlpool_keras.schedule.search import parse_bytes

    if not model or model.endswith(".tflite"):
        raise ValueError(
            f"--schedule needs a Keras model (preset, .keras file or run folder), received: model={model!r}"
        )
    spec, keras_model = model, load_model(model)
    budget = parse_bytes(sram_budget) if sram_budget else None
    report = {"model": spec, "sram_budget": budget, "max_mac_overhead": max_mac_overhead}
    if no_arena:
        choice, candidates = estimate_schedule(keras_model, schedule, max_mac_overhead, budget)
        report.update(estimate=choice, candidates=candidates)
        lines = format_estimate(choice, candidates, max_mac_overhead, budget)
    else:
        size = keras_model.inputs[0].shape[1]
        calibration = evaluation_images(data, size, 10, split, data_dir)[0] if data else random_pixels(keras_model)
        images, labels = calibration[:8], None
        if top1_per_class:
            images, labels = evaluation_images(data, size, top1_per_class, val_split, data_dir)
        measured, candidates = measure_schedule_in_tflm(
            keras_model, calibration, images, labels, schedule, options, max_mac_overhead, log
        )
        report.update(measured=measured, candidates=candidates)
        lines = format_measured(measured, candidates, max_mac_overhead, budget)
    for line in lines:
        log(line)
    report["command"] = command
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, f"{keras_model.name}.schedule.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    log(f"written: {path}")
    return report


def profile_command(
    model, output, data=None, split="train", val_split=None, top1_per_class=None, no_arena=False, data_dir=None,
    zoo_options=None, log=print,
):  # fmt: skip
    """Writes OUTPUT/<name>.json, .md (model card) and .png (memory per op) of `model` (a .tflite,
    a preset, .keras file or run folder; None: a zoo MobileNetV2 of `zoo_options`: image_size,
    alpha, downsample, strides, prepool), with int8 top-1 in TFLM on `top1_per_class` val images
    per class of `data`."""
    from nlpool_keras.profile import profile_model, profile_tflite
    from nlpool_keras.profile.report import model_card, plot_memory
    from nlpool_keras.tflm.validate import input_details

    metrics = {}
    if top1_per_class is not None and top1_per_class < 1:
        raise ValueError(f"top1_per_class must be a positive number of images per class, received: {top1_per_class}")
    if top1_per_class and not data:
        raise ValueError(f"top1_per_class={top1_per_class} needs --data (the images to measure top-1 on)")
    if model and model.endswith(".tflite"):
        if not os.path.isfile(model):
            raise FileNotFoundError(f"no file at model={model!r}")
        with open(model, "rb") as f:
            flatbuffer = f.read()
        size = int(input_details(flatbuffer)["shape"][1])
        evaluation = evaluation_images(data, size, top1_per_class, val_split, data_dir) if top1_per_class else None
        report = profile_tflite(flatbuffer, not no_arena, evaluation)
        name = os.path.splitext(os.path.basename(model))[0]
    else:
        keras_model = _keras_model(model, zoo_options)
        images, evaluation, size = None, None, keras_model.inputs[0].shape[1]
        if data:
            images, _ = evaluation_images(data, size, 10, split, data_dir)
        if top1_per_class:
            evaluation = evaluation_images(data, size, top1_per_class, val_split, data_dir)
        report = profile_model(keras_model, images, arena=not no_arena, evaluation=evaluation)
        name = keras_model.name
        if model:
            from nlpool_keras.models import get_preset, list_presets

            if model in list_presets("build_mbv2_sa"):
                metrics["top1_float"] = get_preset(model)["metrics"]["val_top1"]
    os.makedirs(output, exist_ok=True)
    paths = {ext: os.path.join(output, f"{name}.{ext}") for ext in ("json", "md", "png")}
    with open(paths["json"], "w") as f:
        json.dump(report, f, indent=1)
    with open(paths["md"], "w") as f:
        f.write(model_card(report, name, metrics))
    plot_memory(report, paths["png"], title=name)
    log(model_card(report, name, metrics))
    log("written: " + ", ".join(paths.values()))
    return report


def _keras_model(model, zoo_options):
    """The Keras model a profile is of: `model` loaded, or a zoo MobileNetV2 of `zoo_options`."""
    if model:
        from nlpool_keras.loading import load_model

        return load_model(model)
    from nlpool_keras.models import build_mbv2_sa
    from nlpool_keras.profile import settle_batchnorm

    options = dict(zoo_options)
    size = options.pop("image_size")
    model = build_mbv2_sa((size, size, 3), **options, classes=10, classifier_activation=None)
    settle_batchnorm(model)
    return model
