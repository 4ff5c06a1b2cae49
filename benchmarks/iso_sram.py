"""Accuracy at equal memory: every configuration of the comparison study (15 epochs) with its top-1
(mean and std over seeds, all 3,925 val images) against its measured int8 peak SRAM, whole graph
and best patch schedule, and its MACs.

    .venv/bin/python benchmarks/iso_sram.py measure   # TFLM arenas and schedules; ~5 min per configuration
    .venv/bin/python benchmarks/iso_sram.py plot      # Pareto PNGs + summary JSON from the results
    .venv/bin/python benchmarks/tables.py             # docs and README tables

`measure` builds each configuration of the study plan (comparison.STUDY, trained yet or not;
MobileNetV2 alpha 0.35, 96 px, 10 classes) untrained: the int8 arena, the schedule phases'
arenas and the MACs depend on shapes, not on weight values. The
whole graph's TFLM arena is measured on its post-training int8 flatbuffer (random calibration
pixels); then every candidate schedule of `nlpool_keras.profile.schedule.search_schedules` (cuts
among the first block ends and pooling layers, 2x2 to 4x4 tiles, suffix whole or per block,
attention in 1 or 4 query slices, maps recomputed or stored per resolution) is run in TFLM
on one image, and the lowest peak (image streamed) within --max-mac-overhead of the whole
graph's MACs is kept (the whole graph when none is lower), and the lowest among all candidates at
any MACs is a third measure. The study's arms with the authors' placement or settings
(comparison.VARIANTS) are measured the same way; a model that int8 export refuses is recorded
with its blockers (layer: reason), its MACs counted on the Keras layers and its attention
scores' bytes, and stays out of `plot`, which compares every network that deploys, in either
placement. One JSON per configuration in
benchmarks/results/iso_sram/ (<strides>_<kind>[_<variant>].json; reruns skip those that exist).
`plot` reads them with the study's top-1 and writes pareto_<measure>.png and summary.json: per
memory measure and budget (32/64/128/256 KB), the best top-1 that fits, and per budget sa against
the best baseline that fits.
"""

import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # schedule_tflm

from nlpool_keras.profile.choice import lowest_peak  # noqa: E402
from nlpool_keras.quiet import run_quietly  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
OUT = os.path.join(RESULTS, "iso_sram")
BUDGETS_KB = (32, 64, 128, 256)
MEASURES = {
    "whole_graph_arena_bytes": "whole-graph TFLM arena",
    "schedule_peak_bytes": "best patch schedule's peak SRAM (image streamed)",
    "schedule_any_macs_peak_bytes": "lowest patch-schedule peak SRAM at any MACs (image streamed)",
}


def configuration_path(strides, kind, variant):
    return os.path.join(OUT, f"{strides}_{kind}{'_' + variant if variant else ''}.json")


def measure_configuration(strides, kind, variant, max_mac_overhead):
    from comparison import VARIANTS, refused_figures
    from schedule_tflm import untrained_int8

    from nlpool_keras.export import int8_blockers
    from nlpool_keras.export.flatbuffer import micro_flatbuffer
    from nlpool_keras.models import build_mbv2_sa
    from nlpool_keras.profile import attention_scores
    from nlpool_keras.profile.graph import graph_profile
    from nlpool_keras.profile.schedule import search_schedules
    from nlpool_keras.tflm.child import run_tflm

    settings = VARIANTS[variant]
    row = {"strides": strides, "kind": kind, "variant": variant, **settings, "max_mac_overhead": max_mac_overhead}
    model = build_mbv2_sa((96, 96, 3), alpha=0.35, downsample=kind, strides=strides, classes=10, **settings)
    blockers = int8_blockers(model)  # e.g. the authors' attention over every position
    if blockers:
        row.update(params=int(model.count_params()), **refused_figures(model, blockers))
        row.update(whole_graph_arena_bytes=None, schedule=None, schedule_peak_bytes=None, candidates=[])
        return row
    model, flatbuffer, image = untrained_int8(0.35, 96, strides, kind, classes=10, **settings)
    micro = micro_flatbuffer(flatbuffer)
    row.update(params=int(model.count_params()), macs=int(graph_profile(flatbuffer)["macs"]))
    row.update(attention=attention_scores(model), flash_bytes=len(micro))
    row["whole_graph_arena_bytes"] = int(run_tflm(micro).arena_bytes)
    log = lambda line: print(f"  {strides} {kind} {variant} {line}", flush=True)  # noqa: E731
    best, candidates = search_schedules(flatbuffer, model, image, max_mac_overhead, log=log)
    keys = ("layer", "tiles", "suffix", "query_chunks", "store_inputs")
    keys += ("peak_sram_image_streamed", "peak_sram_image_held", "mac_overhead", "max_lsb_vs_whole_graph")
    candidates = [c if "error" in c else {k: c[k] for k in keys} for c in candidates]
    best = best and {k: best[k] for k in keys}
    row["schedule"] = best
    whole = row["whole_graph_arena_bytes"]
    row["schedule_peak_bytes"] = min(whole, best["peak_sram_image_streamed"]) if best else whole
    row["candidates"] = candidates
    return row


def study_configurations():
    """(strides, kind, variant) of every arm in the study plan, trained or not: memory and MACs
    depend on shapes alone."""
    from comparison import PATTERNS, study_plan

    return sorted({(PATTERNS[pattern], kind, variant) for pattern, kind, _, variant in study_plan()})


def measure(args):
    os.makedirs(OUT, exist_ok=True)
    for strides, kind, variant in study_configurations():
        path = configuration_path(strides, kind, variant)
        if os.path.isfile(path):
            continue
        row = measure_configuration(strides, kind, variant, args.max_mac_overhead)
        row["command"] = "python benchmarks/iso_sram.py measure" + (
            f" --max-mac-overhead {args.max_mac_overhead}" if args.max_mac_overhead != 1.3 else ""
        )
        with open(path + ".tmp", "w") as f:
            json.dump(row, f, indent=1)
        os.replace(path + ".tmp", path)
        whole, schedule = row["whole_graph_arena_bytes"], row["schedule_peak_bytes"]
        print(f"{strides} {kind} {variant}: whole {whole} B, schedule {schedule} B", flush=True)


def rows_with_top1():
    """Each measured configuration that deploys (int8 export does not refuse it; either placement)
    and has finished study runs, with their top-1's mean, std and count."""
    from comparison import study_arms

    arms = study_arms()
    rows = []
    for path in sorted(glob.glob(os.path.join(OUT, "*_*.json"))):
        if path.endswith("summary.json"):
            continue
        with open(path) as f:
            row = json.load(f)
        arm = arms.get((row["strides"], row["kind"], row["variant"]))
        if row["whole_graph_arena_bytes"] is None or arm is None or not arm["runs"]:
            continue
        lowest = lowest_peak(row.pop("candidates"))
        row["schedule_any_macs"] = lowest
        whole = row["whole_graph_arena_bytes"]
        row["schedule_any_macs_peak_bytes"] = min(whole, lowest["peak_sram_image_streamed"]) if lowest else whole
        row.update(top1_mean=arm["val_top1_mean"], top1_std=arm["val_top1_std"], seeds=len(arm["runs"]))
        rows.append(row)
    return rows


def best_under(rows, measure, budget_bytes, kinds=None):
    """The row with the highest mean top-1 whose `measure` fits `budget_bytes` (among `kinds`)."""
    fitting = [
        r
        for r in rows
        if r[measure] is not None and r[measure] <= budget_bytes and (kinds is None or r["kind"] in kinds)
    ]
    return max(fitting, key=lambda r: r["top1_mean"], default=None)


def plot(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from comparison import STUDY_EPOCHS

    rows = rows_with_top1()
    summary = {"configurations": rows, "budgets_kb": list(BUDGETS_KB), "best": {}}
    for measure, label in MEASURES.items():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for r in rows:
            marker = "o" if r["strides"] == "2222121" else "s"
            color = "#c44e52" if r["kind"] == "sa" else "#4c72b0"
            ax.errorbar(r[measure] / 1024, r["top1_mean"], yerr=r["top1_std"] or 0, fmt=marker, color=color, capsize=3)
            name = f"{r['kind']}{' ' + r['variant'] if r['variant'] else ''} {r['strides']} ({r['seeds']})"
            ax.annotate(name, (r[measure] / 1024, r["top1_mean"]), fontsize=7)
        for budget in BUDGETS_KB:
            ax.axvline(budget, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xlabel(f"{label} (KiB)")
        ax.set_ylabel(f"val top-1, mean ± std over seeds ({STUDY_EPOCHS} epochs)")
        ax.set_title("MobileNetV2 α0.35 96 px, Imagenette: accuracy against int8 SRAM", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(OUT, f"pareto_{measure}.png"), dpi=120)
        plt.close(fig)
        for budget in BUDGETS_KB:
            best = best_under(rows, measure, budget * 1024)
            sa = best_under(rows, measure, budget * 1024, {"sa"})
            baseline = best_under(rows, measure, budget * 1024, {r["kind"] for r in rows} - {"sa"})
            summary["best"][f"{measure}:{budget}"] = {
                name: None
                if r is None
                else {k: r[k] for k in ("strides", "kind", "variant", "top1_mean", "top1_std", "seeds", measure)}
                for name, r in (("best", best), ("sa", sa), ("baseline", baseline))
            }
    summary["command"] = "python benchmarks/iso_sram.py plot"
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary["best"], indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("measure", "plot"))
    parser.add_argument("--max-mac-overhead", type=float, default=1.3)
    args = parser.parse_args()
    {"measure": measure, "plot": plot}[args.step](args)


if __name__ == "__main__":
    run_quietly(main)
