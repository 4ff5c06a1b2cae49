"""The presets on an emulated Cortex-M4 (QEMU mps2-an386) with TFLM's CMSIS-NN kernels, and the
pooling kinds' cost on target.

    .venv/bin/python benchmarks/firmware_study.py presets      # every preset: whole graph and schedule
    .venv/bin/python benchmarks/firmware_study.py kinds        # sa vs LIP vs strided conv, per pooling layer
    .venv/bin/python benchmarks/firmware_study.py functions    # sa, LIP, average pooling: instructions by function
    .venv/bin/python benchmarks/firmware_study.py fold         # the input rescale in the graph vs folded
    .venv/bin/python benchmarks/firmware_study.py table        # docs table from the JSON

`presets` exports each preset (`nlpool export NAME --schedule <its manifest's schedule>` into
runs/firmware_study/NAME) and measures, each step saved as it ends (a rerun skips what is done):
the whole graph with CMSIS-NN on --images val images (top-1 on target, agreement and largest
difference against the host TFLM interpreter, arena used, stack, static SRAM, flash, instructions
per image and per pooling layer), the same with the reference kernels on --reference-images, and
the patch schedule with CMSIS-NN on --schedule-images and with the reference kernels on a few, each
in the SRAM block its arenas take on the target (`fit_block`; the export's block, sized from the
host's arenas with a margin, in the report beside it). `kinds` builds MobileNetV2 alpha 0.35 at 96
px with each down-sampling kind (standard pattern, BatchNorm settled, untrained: instruction counts
do not depend on the weights' values; `KIND_RUNS`: both placements, SOFTMAX and LOGISTIC in
int16 beside the int8 kernels, and the learned poolings' softmaxes as the project's custom ops,
`nlpool export --fuse-pools`) and runs one image on target; `functions` runs FUNCTION_KINDS'
networks again under QEMU's block trace (`nlpool_keras/firmware/functions.py`). `fold` exports
FOLD_PRESET with the [0, 255] -> [-1, 1] rescaling in the graph (`nlpool export
--rescale-in-graph`) and folded into the input's quantization (the export's default) and runs both
whole graphs with CMSIS-NN on --fold-images val images per class. JSON in
benchmarks/results/firmware/.
"""

import argparse
import functools
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nlpool_keras.quiet import run_quietly  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "firmware")
RUNS = os.path.join(ROOT, "runs", "firmware_study")
PRESETS = (
    "mbv2_sa_035_96_imagenette_e30",
    "mbv2_lip_035_96_imagenette",
    "mbv2_sa_035_96_imagenette",
    "mbv2_sa_035_96_4222121_imagenette",
)
TARGET = "cortex-m4"
FOLD_PRESET = "mbv2_sa_035_96_imagenette_e30"
# kinds.json keys: (down-sampling, placement, SOFTMAX and LOGISTIC in int16, window softmax fused);
# ":int8" keeps the int8 kernels (the export's default; True: nlpool export --int16-ops) side by
# side, ":before" pools the block's input, ":fused" writes each self-attentive or LIP layer's window
# softmax average as the project's custom op (nlpool export --fuse-pools)
KIND_RUNS = {
    "sa": ("sa", "after", True, False),
    "sa:int8": ("sa", "after", False, False),
    "sa:before": ("sa", "before", True, False),
    "sa:fused": ("sa", "after", True, True),
    "sa:before:fused": ("sa", "before", True, True),
    "lip": ("lip", "after", True, False),
    "lip:int8": ("lip", "after", False, False),
    "lip:before": ("lip", "before", True, False),
    "lip:fused": ("lip", "after", True, True),
    "lip:before:fused": ("lip", "before", True, True),
    "gaussian": ("gaussian", "after", True, False),
    "softpool": ("softpool", "after", True, False),
    "softpool:int8": ("softpool", "after", False, False),
    "max": ("max", "after", True, False),
    "avg": ("avg", "after", True, False),
    "conv": ("conv", "after", True, False),
}
FUNCTION_KINDS = ("sa", "lip", "avg")  # `functions`: the pooling kinds traced by function


def _load(path):
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return {}


def _save(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)


def _export(preset, folder):
    """`nlpool export` of a preset with the patch schedule its manifest names."""
    if os.path.isfile(os.path.join(folder, "export.json")):
        return
    with open(os.path.join(ROOT, "zoo", f"{preset}.json")) as f:
        schedule = json.load(f)["deployment"]["int8_patch_schedule"]
    command = [os.path.join(os.path.dirname(sys.executable), "nlpool"), "export", preset, "--output", folder]
    command += ["--schedule", f"{schedule['cut']}:{schedule['tiles']}", "--suffix", schedule["suffix"]]
    command += ["--query-chunks", str(schedule["query_chunks"])] + (
        ["--store-inputs"] if schedule["store_inputs"] else []
    )
    print(" ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def _val_images(per_class, size=96):
    from nlpool_keras.data import DEFAULT_ARCHIVE
    from nlpool_keras.data.pipeline import cached_split, center_crops

    images, labels, _ = cached_split(DEFAULT_ARCHIVE, "val", per_class)
    return center_crops(images, size), labels


def _brief(report):
    """The report without the ELF's path (a file under runs/, not kept)."""
    return {k: v for k, v in report.items() if k not in ("elf",)}


def presets(args):
    from nlpool_keras.firmware.validate import (
        format_schedule_report,
        format_target_report,
        validate_on_target,
        validate_schedule_on_target,
    )

    fitted_schedule = functools.partial(validate_schedule_on_target, fit_block=True)
    for preset in args.presets:
        folder = os.path.join(RUNS, preset)
        _export(preset, folder)
        path = os.path.join(RESULTS, f"{preset}.json")
        result = _load(path)
        with open(os.path.join(folder, "export.json")) as f:
            result["export"] = {
                k: v
                for k, v in json.load(f).items()
                if k in ("tflm_arena_bytes", "flash_bytes", "schedule", "int16_ops")
            }
        steps = (
            ("whole_cmsis_nn", validate_on_target, "cmsis_nn", args.images, format_target_report),
            ("whole_reference", validate_on_target, "reference", args.reference_images, format_target_report),
            (
                "schedule_cmsis_nn",
                fitted_schedule,
                "cmsis_nn",
                args.schedule_images,
                format_schedule_report,
            ),
            ("schedule_reference", fitted_schedule, "reference", 1, format_schedule_report),
        )
        for key, measure, kernels, per_class, formatted in steps:
            if key in result and result[key]["images"] == 10 * per_class:
                continue
            images, labels = _val_images(per_class)
            print(f"== {preset}: {key} on {len(images)} val images", flush=True)
            report = _brief(measure(folder, images, labels, TARGET, kernels, log=print))
            report["command"] = f"python benchmarks/firmware_study.py presets --presets {preset}"
            print(formatted(report), flush=True)
            result[key] = report
            _save(path, result)


def _physical(report, folder):
    """The work the instructions pay for: per pooling layer its MACs and its other element
    operations (the elements every op without MACs writes), and the instructions CMSIS-NN spends
    per MAC on the whole graph's CONV_2D and DEPTHWISE_CONV_2D."""
    from nlpool_keras.firmware.validate import export_flatbuffer
    from nlpool_keras.profile.graph import graph_profile

    rows = graph_profile(export_flatbuffer(folder)[0])["ops"]
    macs, elements = {}, {}
    conv_macs = conv_instructions = 0
    for measured in report["per_op_first_image"]:
        row, layer = rows[measured["index"]], measured["layer"]
        if row["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            conv_macs += row["macs"]
            conv_instructions += measured["instructions"]
        if layer in report["per_pooling_layer"]:
            macs[layer] = macs.get(layer, 0) + row["macs"]
            if not row["macs"]:
                elements[layer] = elements.get(layer, 0) + int(np.prod(row["output_shape"]))
    return {
        "pooling_macs": macs,
        "pooling_element_ops": elements,
        "conv_instructions_per_mac": conv_instructions / conv_macs,
    }


def _kind_folder(key):
    return os.path.join(RUNS, f"kind_{key.replace(':', '_')}")


def _kind_export(key, images):
    """The export of KIND_RUNS[key]'s network (calibrated on `images[:10]`), written once."""
    from nlpool_keras.export.int16_ops import WIDENED_OPS
    from nlpool_keras.firmware.host_runtime import HostInterpreter
    from nlpool_keras.models import build_mbv2_sa
    from nlpool_keras.profile import settle_batchnorm
    from nlpool_keras.tflm.deploy import export_for_tflm

    kind, placement, int16, fused = KIND_RUNS[key]
    folder = _kind_folder(key)
    if not os.path.isfile(os.path.join(folder, "export.json")):
        model = build_mbv2_sa(
            (96, 96, 3), alpha=0.35, downsample=kind, placement=placement, classes=10, classifier_activation=None
        )
        settle_batchnorm(model)
        int16_ops = WIDENED_OPS if int16 else ()
        export_for_tflm(model, images[:10], folder, int16_ops=int16_ops, fuse_pools=fused, interpreter=HostInterpreter)
    return folder


def kinds(args):
    from nlpool_keras.export.int16_ops import WIDENED_OPS
    from nlpool_keras.firmware.validate import format_target_report, validate_on_target

    path = os.path.join(RESULTS, "kinds.json")
    result = _load(path)
    images, labels = _val_images(1)
    for key, (kind, placement, int16, fused) in KIND_RUNS.items():
        if key in result:
            if "pooling_macs" not in result[key]:  # a report from before the physical figures
                result[key].update(_physical(result[key], _kind_folder(key)))
                _save(path, result)
            continue
        folder = _kind_export(key, images)
        report = _brief(validate_on_target(folder, images[:1], labels[:1], TARGET, "cmsis_nn", log=print))
        report.update(kind=kind, placement=placement, int16_ops=list(WIDENED_OPS) if int16 else [], fused_pools=fused)
        report.update(_physical(report, folder))
        report["command"] = "python benchmarks/firmware_study.py kinds"
        print(f"== {key}\n" + format_target_report(report), flush=True)
        result[key] = report
        result = {k: result[k] for k in KIND_RUNS if k in result}  # the tables' row order
        _save(path, result)


def functions(args):
    """FUNCTION_KINDS' networks (the exports of `kinds`): one image's instructions by function."""
    from nlpool_keras.firmware.functions import format_function_profile, function_profile
    from nlpool_keras.firmware.validate import export_flatbuffer, run_on_target
    from nlpool_keras.tflm.validate import input_details, quantize_pixels

    path = os.path.join(RESULTS, "functions.json")
    result = _load(path)
    images, _ = _val_images(1)
    for key in FUNCTION_KINDS:
        folder = _kind_export(key, images)
        _, _, _, report = run_on_target(folder, images[:1], TARGET, "cmsis_nn", log=print)
        inputs = quantize_pixels(images[:1], input_details(export_flatbuffer(folder)[0]))
        profile = function_profile(report["elf"], TARGET, inputs)
        print(f"== {key}\n" + format_function_profile(profile, top=args.functions), flush=True)
        result[key] = {
            "instructions_per_image": report["instructions_per_image"],
            "pooling_instructions": report["pooling_instructions"],
            "per_op_first_image": report["per_op_first_image"],
            "traced_instructions_per_image": profile["instructions_per_image"],
            "functions": profile["functions"],
            "command": "python benchmarks/firmware_study.py functions",
        }
        _save(path, result)


def fold(args):
    from nlpool_keras.firmware.validate import format_target_report, validate_on_target

    path = os.path.join(RESULTS, "input_fold.json")
    result = _load(path)
    images, labels = _val_images(args.fold_images)
    for key, options in (("in_graph", ["--rescale-in-graph"]), ("folded", [])):
        if key in result and result[key]["images"] == len(images):
            continue
        folder = os.path.join(RUNS, f"fold_{key}")
        if not os.path.isfile(os.path.join(folder, "export.json")):
            command = [os.path.join(os.path.dirname(sys.executable), "nlpool"), "export", FOLD_PRESET]
            command += ["--output", folder, *options]
            print(" ".join(command[1:]), flush=True)
            subprocess.run(command, check=True)
        report = _brief(validate_on_target(folder, images, labels, TARGET, "cmsis_nn", log=print))
        with open(os.path.join(folder, "export.json")) as f:
            exported = json.load(f)
        report["export"] = {k: exported[k] for k in ("input", "tflm_arena_bytes", "flash_bytes", "ops")}
        report.update(preset=FOLD_PRESET, command="python benchmarks/firmware_study.py fold")
        print(f"== {key}\n" + format_target_report(report), flush=True)
        result[key] = report
        _save(path, result)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=("presets", "kinds", "functions", "fold"))
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--images", type=int, default=100, help="val images per class, whole graph with CMSIS-NN")
    parser.add_argument("--reference-images", type=int, default=10, help="per class, whole graph, reference kernels")
    parser.add_argument("--schedule-images", type=int, default=20, help="per class, schedule with CMSIS-NN")
    parser.add_argument("--fold-images", type=int, default=10, help="val images per class, fold")
    parser.add_argument("--functions", type=int, default=40, help="functions printed per network, functions")
    args = parser.parse_args(argv)
    {"presets": presets, "kinds": kinds, "functions": functions, "fold": fold}[args.step](args)


if __name__ == "__main__":
    run_quietly(main)
