"""Patch schedules of the presets measured in TFLM: every phase's arena, the schedule's peak SRAM
against the whole-graph arena, MACs, and top-1 of the assembled int8 model on the val split.

    .venv/bin/python benchmarks/schedule_tflm.py                 # both presets; ~20 min on 2 cores
    .venv/bin/python benchmarks/tables.py                        # docs table

For each preset: the post-training int8 flatbuffer as `nlpool export` converts it (20 training
images per class, the rescaling folded into the input); each candidate of
`nlpool_keras.profile.schedule.search_schedules` (cut at the end of a block or a pooling layer in
the first stages x tiles 2..4 x suffix in one phase or per block x attention in 1 or 4 query
slices x maps recomputed or stored per resolution, what `nlpool profile --schedule auto`
measures) is cut into phases and run in TFLM on one val image (arenas, 0-LSB check); the
candidate with the lowest peak (image streamed) within each of --max-mac-overheads is then run
on all val images (or --per-class per class) for top-1 against the whole graph, and its memory
per step is drawn (<preset>.png: arena + pool of every TFLM step against the whole-graph arena).
The peak of a step is its measured arena plus the pool of buffers alive during it, as the
exported firmware lays them out (`nlpool export --schedule`). A candidate the int8 phases
cannot run (a cut crossed by a residual) is listed with the reason. --configs adds untrained
zoo models (memory only), e.g.

    .venv/bin/python benchmarks/schedule_tflm.py --presets --configs 1.0:224:1222121:conv 1.0:224:1222121:sa
    .venv/bin/python benchmarks/schedule_tflm.py --presets --matrix

`--matrix` adds every configuration of MATRIX (alpha 0.35 and 1.0 x 96/128/224 px x standard
and "2222121" x sa, lip, conv; ~40 min on 2 cores, resumable: finished ones are skipped).
`--cuts` and `--tiles` set the cuts and grids searched (a preset: narrowed to what the untrained
configuration's search chose in benchmarks/results/iso_sram/; a configuration: deeper cuts and
finer grids):

    .venv/bin/python benchmarks/schedule_tflm.py --presets mbv2_lip_035_96_imagenette --cuts block_3_pool --tiles 4
    .venv/bin/python benchmarks/schedule_tflm.py --presets --configs 1.0:224:1222121:conv 1.0:224:1222121:sa \\
        --cuts block_3_pool block_3_project_BN block_5_add block_6_pool block_6_project_BN \\
        block_10_project_BN block_12_add block_13_pool block_13_project_BN --tiles 4 6

JSON per preset or configuration in benchmarks/results/schedule_tflm/ (finished ones skipped).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nlpool_keras.quiet import run_quietly  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "schedule_tflm")
PRESETS = ("mbv2_sa_035_96_imagenette", "mbv2_sa_035_96_4222121_imagenette")
# MobileNetV2 at both widths and three sizes, standard and "2222121", self-attentive, LIP and
# strided convolutions: the cheapest first
MATRIX = [
    f"{alpha}:{size}:{strides}:{kind}"
    for alpha in ("0.35", "1.0")
    for size in (96, 128, 224)
    for strides in ("1222121", "2222121")
    for kind in ("sa", "lip", "conv")
]


def measure_preset(preset, per_class, max_mac_overheads, cuts=None, tiles=None):
    from nlpool_keras.data import DEFAULT_ARCHIVE
    from nlpool_keras.data.pipeline import cached_split, center_crops
    from nlpool_keras.export import to_int8_tflite
    from nlpool_keras.export.preprocessing import export_input
    from nlpool_keras.loading import load_model
    from nlpool_keras.profile.schedule import SETTINGS
    from nlpool_keras.tflm.validate import input_details, quantize_pixels

    model = load_model(preset)
    size = model.inputs[0].shape[1]
    calibration, _, _ = cached_split(DEFAULT_ARCHIVE, "train", 20, None, None)
    model, calibration, _ = export_input(model, center_crops(calibration, size))  # the rescaling folded
    flatbuffer = to_int8_tflite(model, calibration)
    images, labels, _ = cached_split(DEFAULT_ARCHIVE, "val", per_class, None, None)
    quantized = quantize_pixels(center_crops(images, size), input_details(flatbuffer))
    settings = [setting for setting in SETTINGS if tiles is None or setting["tiles"] in tiles]
    result = search(preset, model, flatbuffer, quantized, labels, max_mac_overheads, cuts, settings)
    return {"preset": preset, **result}


def untrained_int8(alpha, size, strides, kind, classes=1000, **build_arguments):
    """(model, post-training int8 flatbuffer, one quantized image) of an untrained zoo MobileNetV2
    with settled BatchNorm statistics, calibrated on random pixels: memory and MACs do not depend
    on weight values. `build_arguments`: more of `build_mbv2_sa`'s, e.g. placement="before"."""
    import keras

    from nlpool_keras.export import to_int8_tflite
    from nlpool_keras.models import build_mbv2_sa
    from nlpool_keras.profile import random_pixels, settle_batchnorm
    from nlpool_keras.tflm.interpreter import quantize
    from nlpool_keras.tflm.validate import input_details

    keras.utils.set_random_seed(0)
    model = build_mbv2_sa(
        (size, size, 3),
        alpha=alpha,
        downsample=kind,
        strides=strides,
        classes=classes,
        classifier_activation=None,
        **build_arguments,
    )
    settle_batchnorm(model)
    calibration = random_pixels(model)
    flatbuffer = to_int8_tflite(model, calibration)
    return model, flatbuffer, quantize(calibration[:1], input_details(flatbuffer))


def measure_config(config, max_mac_overheads, cuts=None, tiles=None):
    """An untrained zoo MobileNetV2 "alpha:size:strides:kind" (`untrained_int8`; 1,000 classes as
    on ImageNet), searched with 3x3 tiles and maps stored per resolution and 4x4 tiles with them
    stored or recomputed (`tiles`: each grid stored, the smallest also recomputed), suffix per
    block, attention in 4 query slices, cuts among its first 8 block ends (or `cuts`), on one
    random image."""
    from nlpool_keras.profile.schedule import schedule_cuts

    alpha, size, strides, kind = config.split(":")
    model, flatbuffer, quantized = untrained_int8(float(alpha), int(size), strides, kind)
    grids = [(n, True) for n in tiles] + [(min(tiles), False)] if tiles else [(3, True), (4, True), (4, False)]
    settings = [{"tiles": n, "suffix": "blocks", "query_chunks": 4, "store_inputs": store} for n, store in grids]
    result = search(
        config, model, flatbuffer, quantized, None, max_mac_overheads, cuts or schedule_cuts(model, 8), settings
    )
    return {"config": config, **result}


def search(title, model, flatbuffer, quantized, labels, max_mac_overheads, cuts=None, settings=None):
    """Every candidate measured on the first image; the lowest peak within each MAC limit measured
    again on all `quantized` images (top-1 with `labels`) and drawn."""
    from nlpool_keras.profile.choice import lowest_peak
    from nlpool_keras.profile.schedule import SETTINGS, WholeGraph, measure_schedule, search_schedules

    log = lambda line: print(f"{title} {line}", flush=True)  # noqa: E731
    limit = max(max_mac_overheads)
    _, rows = search_schedules(flatbuffer, model, quantized[:1], limit, cuts, log, settings or SETTINGS)
    best, measured, whole_graph = {}, {}, None
    for limit in max_mac_overheads:  # the lowest peak within each MAC limit, on the val images
        choice = lowest_peak(rows, limit)
        if choice is not None:
            options = {k: choice[k] for k in ("tiles", "suffix", "query_chunks", "store_inputs")}
            key = (choice["cut_op"], *options.values())
            if key not in measured:  # limits that choose the same schedule share its run
                whole_graph = whole_graph or WholeGraph(flatbuffer, quantized)
                measured[key] = measure_schedule(
                    flatbuffer, choice["cut_op"], images=quantized, labels=labels, whole_graph=whole_graph, **options
                )
            best[str(limit)] = {**measured[key], "layer": choice["layer"]}
    if best:  # the lowest peak among the limits
        lowest = min(best.values(), key=lambda b: b["peak_sram_image_streamed"])
        plot_steps(lowest, os.path.join(RESULTS, f"{title.replace(':', '_')}.png"), title)
    return {"candidates": rows, "best": best, "max_mac_overheads": list(max_mac_overheads)}


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
    parser.add_argument("--presets", nargs="*", default=list(PRESETS))
    parser.add_argument(
        "--per-class", type=int, default=None, help="val images per class for the best schedule's top-1 (default: all)"
    )
    parser.add_argument("--max-mac-overheads", type=float, nargs="+", default=[1.1, 1.3, 3.0])
    parser.add_argument(
        "--configs",
        nargs="*",
        default=[],
        help='untrained zoo models "alpha:size:strides:kind", e.g. 1.0:224:1222121:conv',
    )
    parser.add_argument("--matrix", action="store_true", help="add MATRIX: every alpha, size, pattern and kind")
    parser.add_argument("--cuts", nargs="+", default=None, help="search only these cut layers")
    parser.add_argument("--tiles", type=int, nargs="+", default=None, help="search only these grids")
    args = parser.parse_args()
    args.configs += [c for c in MATRIX if args.matrix and c not in args.configs]
    os.makedirs(RESULTS, exist_ok=True)
    command = "python benchmarks/schedule_tflm.py " + " ".join(sys.argv[1:])
    jobs = [
        (p, lambda p=p: measure_preset(p, args.per_class, args.max_mac_overheads, args.cuts, args.tiles))
        for p in args.presets
    ]
    jobs += [
        (c.replace(":", "_"), lambda c=c: measure_config(c, args.max_mac_overheads, args.cuts, args.tiles))
        for c in args.configs
    ]
    for name, job in jobs:
        path = os.path.join(RESULTS, f"{name}.json")
        if os.path.isfile(path):
            continue
        start = time.time()
        result = job()
        result["command"] = command.strip()
        result["seconds"] = round(time.time() - start, 1)
        with open(path + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(path + ".tmp", path)
        print(f"written: {path}")


if __name__ == "__main__":
    run_quietly(main)
