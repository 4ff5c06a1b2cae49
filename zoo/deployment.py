"""Adds a preset's measured deployment figures to its manifest (zoo/<name>.json, key
"deployment"): int8 top-1 in TFLM on all val images, the whole graph's TFLM arena and flash,
MACs, and the patch schedule with the lowest peak SRAM within 1.3x the MACs, each with the
command that measured it. Run after the measurements:

    .venv/bin/nlpool export NAME --output runs/export/NAME
    .venv/bin/nlpool validate runs/export/NAME/<model>.tflite --float-model NAME \\
        --output benchmarks/results/int8_ptq_NAME.json
    .venv/bin/python benchmarks/schedule_tflm.py --presets NAME
    .venv/bin/python zoo/deployment.py NAME
"""

import argparse
import json
import os

ZOO = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(os.path.dirname(ZOO), "benchmarks", "results")
MAC_LIMIT = "1.3"


def read(path):
    if not os.path.isfile(path):
        raise SystemExit(f"{os.path.relpath(path)} is missing: run the measurements in this script's docstring")
    with open(path) as f:
        return json.load(f)


def deployment(name):
    """The manifest section, from benchmarks/results/int8_ptq_<name>.json and
    benchmarks/results/schedule_tflm/<name>.json."""
    int8 = read(os.path.join(RESULTS, f"int8_ptq_{name}.json"))
    schedule_result = read(os.path.join(RESULTS, "schedule_tflm", f"{name}.json"))
    if MAC_LIMIT not in schedule_result["best"]:
        raise SystemExit(f"schedule_tflm/{name}.json has no schedule within {MAC_LIMIT}x the MACs")
    best = schedule_result["best"][MAC_LIMIT]
    if best.get("images") != int8["images"]:
        raise SystemExit(
            f"the schedule was measured on {best.get('images')} images, the int8 model on {int8['images']}"
        )
    return {
        "int8_whole_graph": {
            "val_top1_tflm": int8["top1_tflm"],
            "val_images": int8["images"],
            "argmax_agreement_tflm_vs_float": int8["argmax_agreement_tflm_vs_float"],
            "tflm_arena_bytes": int8["tflm_arena_bytes"],
            "flash_bytes": int8["flash_bytes"],
            "macs": best["macs_whole_graph"],
            "command": int8["command"],
        },
        "int8_patch_schedule": {
            "max_mac_overhead": float(MAC_LIMIT),
            "cut": best["layer"],
            "tiles": best["tiles"],
            "suffix": best["suffix"],
            "query_chunks": best["query_chunks"],
            "store_inputs": best["store_inputs"],
            "peak_sram_bytes_image_streamed": best["peak_sram_image_streamed"],
            "peak_sram_bytes_image_held": best["peak_sram_image_held"],
            "flash_bytes": best["flash_bytes_schedule"],
            "macs": best["macs_schedule"],
            "val_top1_tflm": best["top1_schedule"],
            "max_lsb_vs_whole_graph": best["max_lsb_vs_whole_graph"],
            "command": schedule_result["command"],
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    args = parser.parse_args()
    path = os.path.join(ZOO, f"{args.name}.json")
    manifest = read(path)
    manifest["deployment"] = deployment(args.name)
    with open(path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=2)
    os.replace(path + ".tmp", path)
    print(json.dumps(manifest["deployment"], indent=2))


if __name__ == "__main__":
    main()
