"""Measures a detector preset as a user deploys it and adds the figures to its manifest
(zoo/<name>.json, key "deployment"): the export with a patch schedule, the int8 whole graph in
the host TFLM on every val image (the head's metric, centroid F1 or box AP@0.5, of TFLM, TFLite
and float), the firmware on the emulated Cortex-M4 (decoding in C) and the patch schedule there
(decoding in its SRAM block, the block fitted to the target's arenas), each with its command.

    .venv/bin/python zoo/detector_deployment.py NAME --data ../shared/data/bccd.tar.gz

Writes benchmarks/results/detection/{int8,target,target_schedule}_<name>.json.
"""

import argparse
import json
import os

from nlpool_keras.cli import main as nlpool

ZOO = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.relpath(os.path.join(os.path.dirname(ZOO), "benchmarks", "results", "detection"))


def run(*arguments):
    """`nlpool ARGUMENTS` in this process; the command line as a user types it."""
    arguments = [str(a) for a in arguments]
    if nlpool(arguments) != 0:
        raise SystemExit(f"nlpool {' '.join(arguments)} failed")
    return "nlpool " + " ".join(arguments)


def read(path):
    with open(path) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--data", required=True, help="the detection set the preset was trained on")
    parser.add_argument("--target", default="cortex-m4")
    args = parser.parse_args()

    export = os.path.join("runs", "export", args.name)
    paths = {kind: os.path.join(RESULTS, f"{kind}_{args.name}.json") for kind in ("int8", "target", "target_schedule")}
    os.makedirs(RESULTS, exist_ok=True)
    commands = {"export": run("export", args.name, "--data", args.data, "--schedule", "auto", "--output", export)}
    commands["int8"] = run(
        "validate", export, "--data", args.data, "--float-model", args.name, "--output", paths["int8"]
    )
    commands["target"] = run(
        "validate", export, "--target", args.target, "--data", args.data, "--output", paths["target"]
    )
    schedule = os.path.join(export, "schedule", "schedule.json")
    commands["target_schedule"] = run(
        "validate", schedule, "--target", args.target, "--fit-block", "--data", args.data,
        "--output", paths["target_schedule"],
    )  # fmt: skip
    int8, target, scheduled = (read(paths[kind]) for kind in ("int8", "target", "target_schedule"))
    exported = read(os.path.join(export, "export.json"))
    metric = int8["metric"]  # f1 (centroids) or ap50 (SSD-lite boxes)
    section = {
        "int8_whole_graph": {
            "val_images": int8["images"],
            **{f"{metric}_{where}": int8[f"{metric}_{where}"] for where in ("float", "tflite", "tflm")},
            "same_detections_tflm_vs_tflite": int8["same_detections_tflm_vs_tflite"],
            "tflm_arena_bytes": int8["tflm_arena_bytes"],
            "flash_bytes": int8["flash_bytes"],
            "command": commands["int8"],
        },
        "target": {
            "board": f"{target['target']} ({target['machine']}), {target['kernels']} kernels",
            "images": target["images"],
            **{key: target[key] for key in (f"{metric}_target", f"{metric}_host_tflm")},
            "same_detections_target_vs_host": target["same_detections_target_vs_host"],
            "max_lsb_diff_target_vs_host": target["max_lsb_diff_target_vs_host"],
            "sram_bytes": target["sram_bytes_target"],
            "flash_bytes": target["flash_bytes"],
            "instructions_per_image": target["instructions_per_image"],
            "decode_instructions_per_image": target["decode_instructions_per_image"],
            "command": commands["target"],
        },
        "target_patch_schedule": {
            "schedule": exported["schedule"],
            "images": scheduled["images"],
            f"{metric}_target": scheduled[f"{metric}_target"],
            "same_detections_target_vs_host": scheduled["same_detections_target_vs_host"],
            "decode_instructions_per_image": scheduled["decode_instructions_per_image"],
            "max_lsb_diff_target_vs_host": scheduled["max_lsb_diff_target_vs_host"],
            "sram_bytes": scheduled["sram_bytes_target"],
            "flash_bytes": scheduled["flash_bytes"],
            "instructions_per_image": scheduled["instructions_per_image"],
            "command": commands["target_schedule"],
        },
        "export_command": commands["export"],
    }
    manifest_path = os.path.join(ZOO, f"{args.name}.json")
    manifest = read(manifest_path)
    manifest["deployment"] = section
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
    print(json.dumps(section, indent=1))


if __name__ == "__main__":
    main()
