"""Patch schedules of the presets measured in TFLM: every phase's arena, the schedule's peak SRAM
against the whole-graph arena, MACs, and top-1 of the assembled int8 model on the val split.

    .venv/bin/python benchmarks/schedule_tflm.py                 # both presets; ~1 h on 2 cores
    .venv/bin/python benchmarks/tables.py                        # docs table

For each preset: the post-training int8 flatbuffer (`nlpool export`'s calibration: 20 training
images per class); each candidate of `nlpool_keras.profile.schedule.search_schedules` (cut at
the end of a block or a pooling layer in the first stages x tiles 2..3 x suffix in one phase or
per block x attention in 1 or 4 query slices, what `nlpool profile --schedule auto` measures) is
cut into phases and run in TFLM on one val image (arenas, 0-LSB check); the
candidate with the lowest peak (image streamed) within each of --max-mac-overheads is then run
on all val images (or --per-class per class) for top-1 against the whole graph, and its memory
per step is drawn (<preset>.png: arena + pool of every TFLM step against the whole-graph arena).
The peak of a step is its measured arena plus the pool of buffers alive during it, as the
exported firmware lays them out (`nlpool export --schedule`). A candidate the int8 phases
cannot run (two self-attentive layers in the stage, a cut crossed by a residual) is listed with
the reason. JSON per preset in benchmarks/results/schedule_tflm/ (rerun: finished presets skipped).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "schedule_tflm")
PRESETS = ("mbv2_sa_035_96_imagenette", "mbv2_sa_035_96_4222121_imagenette")


def measure_preset(preset, per_class, max_mac_overheads):
    from nlpool_keras.data import DEFAULT_ARCHIVE
    from nlpool_keras.data.pipeline import cached_split, center_crops
    from nlpool_keras.export import to_int8_tflite
    from nlpool_keras.loading import load_model
    from nlpool_keras.profile.schedule import measure_schedule, search_schedules
    from nlpool_keras.tflm.interpreter import quantize
    from nlpool_keras.tflm.validate import input_details

    model = load_model(preset)
    size = model.inputs[0].shape[1]
    calibration, _, _ = cached_split(DEFAULT_ARCHIVE, "train", 20, None, None)
    flatbuffer = to_int8_tflite(model, center_crops(calibration, size))
    images, labels, _ = cached_split(DEFAULT_ARCHIVE, "val", per_class, None, None)
    quantized = quantize(center_crops(images, size), input_details(flatbuffer))
    log = lambda line: print(f"{preset} {line}", flush=True)  # noqa: E731
    _, rows = search_schedules(flatbuffer, model, quantized[:1], max(max_mac_overheads), log=log)
    best = {}
    for limit in max_mac_overheads:  # the lowest peak within each MAC limit, on the val images
        fitting = [r for r in rows if "error" not in r and r["mac_overhead"] <= limit]
        choice = min(fitting, key=lambda r: r["peak_sram_image_streamed"], default=None)
        if choice is not None:
            options = (choice["suffix"], choice["query_chunks"])
            measured = measure_schedule(flatbuffer, choice["cut_op"], choice["tiles"], quantized, labels, *options)
            best[str(limit)] = {**measured, "layer": choice["layer"]}
    if best:  # the lowest peak among the limits
        lowest = min(best.values(), key=lambda b: b["peak_sram_image_streamed"])
        plot_steps(lowest, os.path.join(RESULTS, f"{preset}.png"), preset)
    return {"preset": preset, "candidates": rows, "best": best, "max_mac_overheads": list(max_mac_overheads)}


def plot_steps(row, path, title):
    """Stacked bars of arena and pool per TFLM step of a measured schedule, and the whole graph's
    arena as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = row["steps"]
    x = range(len(steps))
    arena = [s["arena_bytes"] / 1024 for s in steps]
    pool = [s["pool_bytes"] / 1024 for s in steps]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(x, arena, label="TFLM arena of the step (measured)", color="#4c72b0")
    ax.bar(x, pool, bottom=arena, label="pool: buffers alive between steps", color="#dd8452")
    whole = row["whole_graph_arena_bytes"] / 1024
    ax.axhline(whole, color="k", linestyle="--", label=f"whole-graph TFLM arena {whole:,.0f} KiB")
    ax.set_xticks(list(x), [s["label"] for s in steps], rotation=90, fontsize=6)
    ax.set_ylabel("SRAM (KiB)")
    ax.set_title(
        f"{title}: {row['layer']} {row['tiles']}x{row['tiles']} tiles, peak "
        f"{row['peak_sram_image_streamed'] / 1024:,.1f} KiB (image streamed), MACs x{row['mac_overhead']}",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument(
        "--per-class", type=int, default=None, help="val images per class for the best schedule's top-1 (default: all)"
    )
    parser.add_argument("--max-mac-overheads", type=float, nargs="+", default=[1.3, 1.35])
    args = parser.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    command = "python benchmarks/schedule_tflm.py " + " ".join(sys.argv[1:])
    for preset in args.presets:
        path = os.path.join(RESULTS, f"{preset}.json")
        if os.path.isfile(path):
            continue
        result = measure_preset(preset, args.per_class, args.max_mac_overheads)
        result["command"] = command.strip()
        with open(path + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(path + ".tmp", path)
        print(f"written: {path}")


if __name__ == "__main__":
    main()
