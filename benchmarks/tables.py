"""Regenerates the result tables of README.md and docs/*.md from benchmarks/results/*.json.

.venv/bin/python benchmarks/tables.py          # rewrites each table between its markers
.venv/bin/python benchmarks/tables.py --print  # prints them instead
"""

import argparse
import functools
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # comparison, iso_sram

from comparison import COMPARISON_EPOCHS, STUDY_EPOCHS, study_arms  # noqa: E402

from nlpool_keras.profile.choice import lowest_peak  # noqa: E402
from nlpool_keras.quiet import run_quietly  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results")


def read_all(pattern, folder=RESULTS):
    """(file stem without the pattern's prefix, parsed JSON) of each file matching `pattern`, sorted."""
    prefix = pattern.split("*")[0]
    for path in sorted(glob.glob(os.path.join(folder, pattern))):
        with open(path) as f:
            yield os.path.basename(path)[len(os.path.basename(prefix)) : -len(".json")], json.load(f)


def layer_speed_table():
    with open(os.path.join(RESULTS, "layer_speed.json")) as f:
        result = json.load(f)
    lines = [
        f"`{result['command']}` on {result['machine']} (median of {result['repeats']}):",
        "",
        "| input (N,H,W,C) | layer | tokens L | params | MACs / image | forward ms | × max | fwd+bwd ms | × max |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {tuple(row['input_shape'])} | {row['layer']} | {row['tokens'] or ''} | {row['params']:,} | "
            f"{row['macs_per_image']:,} | {row['forward_ms']:.2f} | {row['forward_ratio_to_max']:.1f} | "
            f"{row['forward_backward_ms']:.2f} | {row['forward_backward_ratio_to_max']:.1f} |"
        )
    return "\n".join(lines)


def presets_table():
    """The zoo's presets: training, float top-1 and, where zoo/deployment.py added them, int8 top-1
    in TFLM and peak SRAM (whole graph and best patch schedule within 1.3x the MACs)."""
    lines = [
        "| preset | down-sampling, strides | params | val top-1 float / int8 TFLM (3,925 images) | "
        "TFLM arena, whole graph | peak SRAM, patch schedule (MACs ×) | epochs | trained by |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for _, m in read_all("*.json", os.path.join(ROOT, "zoo")):
        if m["builder"] != "build_mbv2_sa":  # detectors: detection_presets_table
            continue
        planned = re.search(r"--epochs (\d+)", m["training"]["command"])
        epochs = f"{m['training']['epochs_completed']}" + (f" of {planned.group(1)}" if planned else "")
        deployment = m.get("deployment")
        if deployment:
            whole, schedule = deployment["int8_whole_graph"], deployment["int8_patch_schedule"]
            int8 = f" / {whole['val_top1_tflm']:.4f}"
            memory = (
                f"{whole['tflm_arena_bytes']:,} B | {schedule['peak_sram_bytes_image_streamed']:,} B "
                f"({schedule['macs'] / whole['macs']:.2f})"
            )
        else:
            int8, memory = "", "— | —"
        arguments = m["arguments"]
        lines.append(
            f"| `{m['name']}` | {arguments.get('downsample', 'sa')}, {arguments.get('strides', '1222121')} | "
            f"{m['metrics']['params']:,} | {m['metrics']['val_top1']:.4f}{int8} | {memory} | {epochs} | "
            f"`{m['training']['command']}` |"
        )
    return "\n".join(lines)


def _configuration(r):
    """A study configuration's kind with its variant, e.g. "lip before"."""
    return r["kind"] + (f" {r['variant']}" if r.get("variant") else "")


def comparison_runs(epochs):
    return [r for _, r in read_all(os.path.join("comparison", "*.json")) if r["epochs"] == epochs]


def comparison_table():
    runs = {}
    for r in comparison_runs(COMPARISON_EPOCHS):
        runs.setdefault((r["pattern"], r["downsample"], r["epochs"]), []).append(r)
    lines = [
        "| pattern | down-sampling | val top-1 (3,925 images) | seeds | epochs | params | MACs | int8 peak "
        "(liveness) | TFLM arena | command (per seed) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def figure(r, key):
        return f"{r[key]:,}" if key in r else "not measured yet"

    for (pattern, kind, epochs), rs in sorted(runs.items(), key=lambda item: (item[0][0] != "standard", item[0][1:])):
        top1 = [r["val_top1"] for r in rs]
        shown = (
            f"{top1[0]:.4f}"
            if len(top1) == 1
            else f"{sum(top1) / len(top1):.4f} ({', '.join(f'{t:.4f}' for t in top1)})"
        )
        r = rs[0]
        lines.append(
            f"| {pattern} ({r['strides']}) | {kind} | {shown} | {', '.join(str(x['seed']) for x in rs)} | {epochs} | "
            f"{r['params']:,} | {figure(r, 'macs')} | {figure(r, 'peak_activation_bytes')} | "
            f"{figure(r, 'tflm_arena_bytes')} | `{r['command']}` |"
        )
    return "\n".join(lines)


MEMORY_MEASURES = {
    "peak_activation_bytes": "int8 liveness peak, whole graph",
    "tflm_arena_bytes": "TFLM arena, whole graph",
    "first_block_bytes": "after the first block",
    "after_first_block_peak_bytes": "liveness peak after the first block",
}


def study_table():
    """The study at STUDY_EPOCHS: mean ± std over seeds, with each run's throughput and wall time."""
    import statistics

    runs = {}
    for r in comparison_runs(STUDY_EPOCHS):  # a variant (placement before, the paper's settings) apart
        kind = r["downsample"] + (f" ({r['variant']})" if r.get("variant") else "")
        runs.setdefault((r["strides"], kind), []).append(r)
    lines = [
        "| strides | down-sampling | val top-1, mean ± std (3,925 images) | per seed | seeds | train images/s "
        "(2 CPU cores) | hours per run | command (per seed) |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    order = sorted(
        runs.items(), key=lambda item: (item[0][0] != "2222121", -statistics.mean(r["val_top1"] for r in item[1]))
    )
    for (strides, kind), rs in order:
        top1 = [r["val_top1"] for r in rs]
        spread = f" ± {statistics.stdev(top1):.4f}" if len(top1) > 1 else ""
        speed = statistics.median(r["train_images_per_second"] for r in rs)
        hours = statistics.median(r["wall_seconds"] for r in rs) / 3600
        lines.append(
            f"| {strides} | {kind} | {statistics.mean(top1):.4f}{spread} | {', '.join(f'{t:.4f}' for t in top1)} | "
            f"{', '.join(str(r['seed']) for r in rs)} | {speed:.0f} | {hours:.2f} | `{rs[0]['command']}` |"
        )
    return "\n".join(lines)


def schedule_table():
    """Patch schedules against the whole graph (benchmarks/schedule_study.py)."""
    lines = [
        "| configuration | whole graph: int8 liveness | TFLM arena (measured) | schedule ≤ 1.3× MACs: cut, tiles | "
        "peak, image streamed | in SRAM | × below whole liveness | MACs × | lowest peak (any MACs) | its MACs × |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in read_all(os.path.join("schedule", "*.json")):
        whole, choice, lowest = r["whole_graph"], r["choice"], r["lowest_peak"]
        chosen = (
            f"{choice['cut']}, {choice['tiles']}×{choice['tiles']} | {choice['peak_bytes_image_streamed']:,} | "
            f"{choice['peak_bytes_image_in_sram']:,} | "
            f"{whole['peak_activation_bytes'] / choice['peak_bytes_image_streamed']:.1f} | {choice['mac_overhead']:.2f}"
            if choice
            else "none within the limit | | | |"
        )
        lines.append(
            f"| `{name}` | {whole['peak_activation_bytes']:,} | {whole['tflm_arena_bytes']:,} | {chosen} | "
            f"{lowest['peak_bytes_image_streamed']:,} ({lowest['cut']}, {lowest['tiles']}×{lowest['tiles']}) | "
            f"{lowest['mac_overhead']:.2f} |"
        )
    return "\n".join(lines)


def schedule_tflm_table():
    """Patch schedules measured in TFLM, int8 phases of the whole-graph flatbuffer
    (benchmarks/schedule_tflm.py)."""
    lines = [
        "| model | whole-graph TFLM arena | MAC limit | cut, tiles, suffix, query slices, maps | "
        "peak SRAM, image streamed | image in SRAM | × below whole arena | MACs × | flash, phases / whole | "
        "TFLM ms, schedule / whole | top-1 whole → schedule (images) | max \\|Δ\\| vs whole |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, result in read_all(os.path.join("schedule_tflm", "*.json")):
        if "preset" not in result:  # untrained configurations: schedule_matrix_table
            continue
        lowest = lowest_peak(result["candidates"])
        rows = [(f"{limit}×", b) for limit, b in sorted(result["best"].items())] + [("any", lowest)]
        for limit, b in rows:
            top1 = (
                f"{b['top1_whole_graph']:.4f} → {b['top1_schedule']:.4f} ({b['images']:,})"
                if "top1_schedule" in b
                else "—"
            )
            lines.append(
                f"| `{name}` | {b['whole_graph_arena_bytes']:,} B | {limit} | {b['layer']}, {b['tiles']}×{b['tiles']}, "
                f"{b['suffix']}, {b['query_chunks']}, {_stored(b)} | {b['peak_sram_image_streamed']:,} B | "
                f"{b['peak_sram_image_held']:,} B | {b['reduction_image_streamed']:.2f} | {b['mac_overhead']:.3f} | "
                f"{b['flash_bytes_schedule']:,} / {b['flash_bytes_whole_graph']:,} B | "
                f"{1000 * b['tflm_seconds_per_image_schedule']:.0f} / "
                f"{1000 * b['tflm_seconds_per_image_whole_graph']:.0f} | "
                f"{top1} | {b['max_lsb_vs_whole_graph']} LSB ({b['images']:,} images) |"
            )
    return "\n".join(lines)


def schedule_matrix_table():
    """Untrained zoo MobileNetV2s (memory only): whole-graph TFLM arena against the lowest
    schedule peak within 1.3x the MACs and at any MACs (benchmarks/schedule_tflm.py --matrix)."""
    lines = [
        "| α | px | strides | down-sampling | whole-graph TFLM arena | ≤ 1.3× MACs: peak (× lower, MACs ×) | "
        "its cut, tiles, maps | any MACs: peak (× lower, MACs ×) | its cut, tiles, maps | max \\|Δ\\| |",
        "|---:|---:|---|---|---:|---:|---|---:|---|---:|",
    ]
    results = [r for _, r in read_all(os.path.join("schedule_tflm", "*.json")) if "config" in r]

    def order(result):
        alpha, size, strides, kind = result["config"].split(":")
        return float(alpha), int(size), strides, ("sa", "lip", "conv").index(kind)

    def cells(b):
        if b is None:
            return "none within the limit | —"
        peak = b["peak_sram_image_streamed"]
        return (
            f"{peak:,} B ({b['whole_graph_arena_bytes'] / peak:.1f}×, {b['mac_overhead']:.2f}) | "
            f"{b['layer']}, {b['tiles']}×{b['tiles']}, {_stored(b)}"
        )

    for result in sorted(results, key=order):
        alpha, size, strides, kind = result["config"].split(":")
        measured = [c for c in result["candidates"] if "error" not in c]
        lowest = lowest_peak(measured)
        within = result["best"].get("1.3")
        whole = (within or lowest or {}).get("whole_graph_arena_bytes")
        lsb = max((c["max_lsb_vs_whole_graph"] for c in measured), default=None)
        lines.append(
            f"| {alpha} | {size} | {strides} | {kind} | {whole:,} B | {cells(within)} | {cells(lowest)} | {lsb} LSB |"
        )
    return "\n".join(lines)


def _stored(setting):
    """How a schedule's later passes start: from maps stored per resolution or the image."""
    return "stored" if setting.get("store_inputs") else "recomputed"


def _iso_sram_summary():
    path = os.path.join(RESULTS, "iso_sram", "summary.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _top1_mean_std(row):
    std = f" ± {row['top1_std']:.4f}" if row.get("top1_std") is not None else ""
    return f"{row['top1_mean']:.4f}{std} ({row['seeds']})"


def iso_sram_table():
    """Each study configuration: top-1 over seeds against measured SRAM and MACs
    (benchmarks/iso_sram.py)."""
    summary = _iso_sram_summary()
    if summary is None:
        return "(run `python benchmarks/iso_sram.py measure` and `plot`)"
    lines = [
        "| strides | down-sampling | val top-1, mean ± std (seeds) | MACs | whole-graph TFLM arena | "
        "best schedule peak (image streamed) | its cut, tiles, suffix, slices, maps, MACs × | "
        "lowest peak at any MACs (MACs ×) |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in sorted(summary["configurations"], key=lambda r: (r["strides"], -r["top1_mean"])):
        s = r["schedule"]
        setting = (
            f"{s['layer']}, {s['tiles']}×{s['tiles']}, {s['suffix']}, {s['query_chunks']}, {_stored(s)}, "
            f"{s['mac_overhead']:.2f}"
            if s
            else "—"
        )
        lines.append(
            f"| {r['strides']} | {_configuration(r)} | {_top1_mean_std(r)} | {r['macs'] / 1e6:.1f} M | "
            f"{r['whole_graph_arena_bytes']:,} B | {r['schedule_peak_bytes']:,} B | {setting} | "
            f"{_any_macs(r)} |"
        )
    return "\n".join(lines)


def _any_macs(row):
    lowest = row.get("schedule_any_macs")
    if lowest is None:
        return "—"
    return f"{row['schedule_any_macs_peak_bytes']:,} B ({lowest['mac_overhead']:.2f})"


def iso_sram_budget_table():
    """Best top-1 under each SRAM budget, and self-attentive pooling against the best baseline that
    fits (benchmarks/iso_sram.py), by the whole graph's arena and by the best schedule within 1.3x
    the MACs (the per-configuration table has the lowest peak at any MACs)."""
    summary = _iso_sram_summary()
    if summary is None:
        return "(run `python benchmarks/iso_sram.py measure` and `plot`)"
    labels = {"whole_graph_arena_bytes": "whole-graph TFLM arena", "schedule_peak_bytes": "patch schedule ≤ 1.3× MACs"}
    lines = [
        "| memory measure | budget | best top-1 that fits | best sa | best baseline | sa − baseline |",
        "|---|---:|---|---|---|---:|",
    ]

    def cell(r):
        return "none fits" if r is None else f"{_configuration(r)} {r['strides']}: {_top1_mean_std(r)}"

    for key, entry in summary["best"].items():
        measure, budget = key.split(":")
        if measure not in labels:
            continue
        sa, baseline = entry["sa"], entry["baseline"]
        gap = f"{100 * (sa['top1_mean'] - baseline['top1_mean']):+.1f} pt" if sa and baseline else "—"
        lines.append(
            f"| {labels[measure]} | {budget} KB | {cell(entry['best'])} | {cell(sa)} | {cell(baseline)} | {gap} |"
        )
    return "\n".join(lines)


FIRMWARE_PRESETS = ("mbv2_sa_035_96_imagenette_e30", "mbv2_lip_035_96_imagenette")


def _firmware(preset):
    path = os.path.join(RESULTS, "firmware", f"{preset}.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _mega(value):
    return f"{value / 1e6:.1f} M"


def summary_table():
    """The README's results: the same-recipe presets (self-attentive pooling and LIP) in TFLM on
    the host and on the emulated Cortex-M4, and the equal-memory answer of the study."""
    manifests = {}
    for preset in FIRMWARE_PRESETS:
        with open(os.path.join(ROOT, "zoo", f"{preset}.json")) as f:
            manifests[preset] = json.load(f)
    target = {preset: _firmware(preset) for preset in FIRMWARE_PRESETS}
    summary = _iso_sram_summary() or {"best": {}}

    def cells(render):
        out = []
        for preset in FIRMWARE_PRESETS:
            try:
                out.append(render(preset))
            except KeyError:
                out.append("not measured yet")
        return out

    def whole(p):
        return target[p]["whole_cmsis_nn"]

    def sched(p):
        return target[p]["schedule_cmsis_nn"]

    def equal(key):
        entry = summary["best"].get(key)
        return [
            f"{_top1_mean_std(entry[k])}: {_configuration(entry[k])} {entry[k]['strides']}"
            if entry and entry.get(k)
            else "—"
            for k in ("sa", "baseline")
        ]

    rows = [
        (
            "int8 top-1 in TFLM (3,925 val images)",
            cells(lambda p: f"{manifests[p]['deployment']['int8_whole_graph']['val_top1_tflm']:.4f}"),
            "`python zoo/deployment.py NAME`",
        ),
        (
            "on a Cortex-M4, CMSIS-NN: top-1, agreement with the host",
            cells(
                lambda p: (
                    f"{whole(p)['top1_target']:.4f} on {whole(p)['images']:,} val images, "
                    f"{whole(p)['argmax_agreement_target_vs_host']:.4f} ({whole(p)['max_lsb_diff_target_vs_host']} LSB)"
                )
            ),
            "`python benchmarks/firmware_study.py presets`",
        ),
        (
            "SRAM, whole graph: TFLM arena (host) / arena used + stack + other static data on target",
            cells(lambda p: f"{target[p]['export']['tflm_arena_bytes']:,} / {whole(p)['sram_bytes_target']:,} B"),
            "the same",
        ),
        (
            "SRAM, patch schedule: peak (host) / block (fitted on target) + stack + other static data on target",
            cells(
                lambda p: (
                    f"{target[p]['export']['schedule']['peak_sram_bytes']:,} / {sched(p)['sram_bytes_target']:,} B"
                )
            ),
            "the same",
        ),
        (
            "instructions per image on target: whole graph / schedule",
            cells(
                lambda p: f"{_mega(whole(p)['instructions_per_image'])} / {_mega(sched(p)['instructions_per_image'])}"
            ),
            "the same",
        ),
        (
            "flash on target (code + model): whole graph / schedule",
            cells(lambda p: f"{whole(p)['flash_bytes']:,} / {sched(p)['flash_bytes']:,} B"),
            "the same",
        ),
        (
            "equal memory, 64 KB (patch schedule ≤ 1.3× MACs), 15 epochs, best of each",
            equal("schedule_peak_bytes:64"),
            "`python benchmarks/iso_sram.py plot`",
        ),
        (
            "equal memory, 256 KB (whole graph), 15 epochs, best of each",
            equal("whole_graph_arena_bytes:256"),
            "the same",
        ),
    ]
    lines = [
        "| | self-attentive pooling (`mbv2_sa_035_96_imagenette_e30`) | LIP (`mbv2_lip_035_96_imagenette`) | command |",
        "|---|---|---|---|",
    ]
    lines += [f"| {label} | {sa} | {lip} | {command} |" for label, (sa, lip), command in rows]
    return "\n".join(lines)


def firmware_table():
    """Every preset on the emulated Cortex-M4 (benchmarks/firmware_study.py presets)."""
    lines = [
        "| preset | SOFTMAX, LOGISTIC | program | kernels | images | top-1 on target | agreement with host (max LSB) | "
        "arena used: target / host | stack | static SRAM | SRAM on target ÷ host arena | flash | "
        "M instructions per image | pooling layers' share |",
        "|---|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in read_all(os.path.join("firmware", "*.json")):
        if "whole_cmsis_nn" not in r:  # a record of its own (kinds, input_fold, peers, ...), not a preset's
            continue
        host_arena = r["export"]["tflm_arena_bytes"]
        widened = "int16" if r["export"].get("int16_ops") else "int8"  # exports before int16_ops: int8
        for key in ("whole_cmsis_nn", "whole_reference", "schedule_cmsis_nn", "schedule_reference"):
            if key not in r:
                continue
            m = r[key]
            program, kernels = key.split("_", 1)
            if program == "whole":
                arena = f"{m['arena_used_bytes_target']:,} / {m['arena_used_bytes_host']:,}"
                ratio = f"{m['sram_bytes_target'] / host_arena:.2f}"
                share = f"{100 * m['pooling_share']:.1f} %"
            else:
                arena = f"{m['largest_arena_used_bytes_target']:,} (largest step)"
                ratio = f"{m['sram_bytes_target'] / r['export']['schedule']['peak_sram_bytes']:.2f} (÷ host peak)"
                share = f"set-up {100 * m['setup_instructions_per_image'] / m['instructions_per_image']:.0f} %"
            lines.append(
                f"| `{name}` | {widened} | {program} | {kernels} | {m['images']:,} | {m['top1_target']:.4f} | "
                f"{m['argmax_agreement_target_vs_host']:.4f} ({m['max_lsb_diff_target_vs_host']}) | {arena} | "
                f"{m['stack_high_water_bytes']:,} | {m['static_sram_bytes']:,} | {ratio} | {m['flash_bytes']:,} | "
                f"{m['instructions_per_image'] / 1e6:.1f} | {share} |"
            )
    return "\n".join(lines)


def _kinds(name="kinds"):
    path = os.path.join(RESULTS, "firmware", f"{name}.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def firmware_kinds_table():
    """Every down-sampling kind on target, per pooling layer (benchmarks/firmware_study.py kinds)."""
    kinds = _kinds()
    if kinds is None:
        return "(run `python benchmarks/firmware_study.py kinds`)"
    layers = sorted(
        {layer for r in kinds.values() for layer in r["per_pooling_layer"]}, key=lambda n: int(n.split("_")[1])
    )
    conv, avg = (kinds.get(k, {}).get("instructions_per_image") for k in ("conv", "avg"))
    lines = [
        "| down-sampling | placement | SOFTMAX, LOGISTIC | M instructions per image | × strided conv | × avg pool | "
        "pooling layers | " + " | ".join(f"`{layer}`" for layer in layers) + " | arena used on target | flash |",
        "|---|---|---|---:|---:|---:|---:|" + "---:|" * len(layers) + "---:|---:|",
    ]
    for r in kinds.values():
        per_layer = " | ".join(
            _mega(r["per_pooling_layer"][layer]) if layer in r["per_pooling_layer"] else "—" for layer in layers
        )
        placement = r["placement"] if r["kind"] in ("sa", "lip", "gaussian", "softpool") else "—"
        lines.append(
            f"| {r['kind']} | {placement} | {_widened(r)} | "
            f"{r['instructions_per_image'] / 1e6:.1f} | {r['instructions_per_image'] / conv:.2f} | "
            f"{r['instructions_per_image'] / avg:.2f} | {_mega(r['pooling_instructions'])} "
            f"({100 * r['pooling_share']:.0f} %) | {per_layer} | {r['arena_used_bytes_target']:,} B | "
            f"{r['flash_bytes']:,} B |"
        )
    return "\n".join(lines)


def _widened(report):
    """How a kinds run's SOFTMAX and LOGISTIC ran: int16, int8, or — where the kind has neither."""
    if report["kind"] in ("max", "avg", "conv"):
        return "—"
    widened = "int16" if report["int16_ops"] else "int8"
    return widened + (", custom ops" if report.get("fused_pools") else "")


def _pooling_ops(report):
    """{op: instructions} of the pooling layers (not the global pool) on the first image."""
    ops = {}
    for row in report["per_op_first_image"]:
        if row["layer"] in report["per_pooling_layer"]:
            ops[row["op"]] = ops.get(row["op"], 0) + row["instructions"]
    return ops


def firmware_pooling_ops_table():
    """The pooling layers' instructions per op type: main at 3e861cf (kinds_3e861cf.json: int8
    SOFTMAX, LOGISTIC and MEAN window sums), the int8 kernels today, SOFTMAX and LOGISTIC in int16
    at 4e58a4a (kinds_4e58a4a.json: before the int16 attention product), at 9e00be5
    (kinds_9e00be5.json: the self-attentive logits repeated by RESIZE_NEAREST_NEIGHBOR), today, and
    today with the window softmax fused into one custom op (`--fuse-pools`)."""
    int8_before, int16_before, kinds = _kinds("kinds_3e861cf"), _kinds("kinds_4e58a4a"), _kinds()
    resized = _kinds("kinds_9e00be5")
    if kinds is None or int8_before is None or int16_before is None or resized is None:
        return "(run `python benchmarks/firmware_study.py kinds`)"
    columns = []
    for kind in ("sa", "lip"):
        columns += [(f"{kind} at 3e861cf", int8_before.get(kind)), (f"{kind}:int8", kinds.get(f"{kind}:int8"))]
        columns += [(f"{kind} at 4e58a4a", int16_before.get(kind))]
        columns += [(f"{kind} at 9e00be5", resized.get(kind))] if kind == "sa" else []  # LIP had no repeat
        columns += [(kind, kinds.get(kind)), (f"{kind}:fused", kinds.get(f"{kind}:fused"))]
    columns = [(name, report) for name, report in columns if report is not None]
    per_op = [_pooling_ops(report) for _, report in columns]
    names = sorted({op for ops in per_op for op in ops}, key=lambda op: -max(ops.get(op, 0) for ops in per_op))
    lines = [
        "| op (pooling layers) | " + " | ".join(f"`{name}`" for name, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for op in names:
        lines.append(f"| {op} | " + " | ".join(_mega(ops[op]) if op in ops else "—" for ops in per_op) + " |")
    totals = " | ".join(f"**{_mega(report['pooling_instructions'])}**" for _, report in columns)
    lines.append(f"| all | {totals} |")
    return "\n".join(lines)


def firmware_pooling_work_table():
    """The pooling layers' work beside their instructions: MACs, other element operations and
    the instructions per unit of both, with CMSIS-NN's instructions per convolution MAC."""
    kinds = _kinds()
    if kinds is None:
        return "(run `python benchmarks/firmware_study.py kinds`)"
    lines = [
        "| down-sampling | SOFTMAX, LOGISTIC | pooling MACs | other element operations | M instructions | "
        "instructions per MAC or element | the whole graph's convolutions: instructions per MAC |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, r in kinds.items():
        if not r.get("pooling_macs"):
            continue
        macs, elements = sum(r["pooling_macs"].values()), sum(r["pooling_element_ops"].values())
        lines.append(
            f"| {key} | {_widened(r)} | {macs:,} | {elements:,} | "
            f"{r['pooling_instructions'] / 1e6:.1f} | {r['pooling_instructions'] / (macs + elements):.1f} | "
            f"{r['conv_instructions_per_mac']:.2f} |"
        )
    return "\n".join(lines)


def firmware_input_fold_table():
    """The standard e30 preset's whole graph with the [0, 255] -> [-1, 1] rescaling in the graph
    and folded into the input's quantization, on target (`firmware_study.py fold`) and in the host
    TFLM on all val images (`nlpool validate`)."""
    path = os.path.join(RESULTS, "firmware", "input_fold.json")
    if not os.path.isfile(path):
        return "(run `python benchmarks/firmware_study.py fold`)"
    with open(path) as f:
        runs = json.load(f)
    host = {"in_graph": os.path.join("fidelity", "int8_ptq_rescale_in_graph_mbv2_sa_035_96_imagenette_e30.json")}
    host["folded"] = "int8_ptq_mbv2_sa_035_96_imagenette_e30.json"
    lines = [
        "| rescaling | input scale, zero point | ops before Conv1 (M instructions) | M instructions per image | "
        "arena used on target | flash | top-1 on target = host TFLM | host TFLM top-1, TFLM vs TFLite |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, r in runs.items():
        ops = r["per_op_first_image"]
        first_conv = next(i for i, op in enumerate(ops) if op["op"] == "CONV_2D")
        before = ", ".join(f"{op['op']} {op['instructions'] / 1e6:.2f}" for op in ops[:first_conv]) or "none"
        quantization = r["export"]["input"]
        validation = os.path.join(RESULTS, host[key])
        if os.path.isfile(validation):
            with open(validation) as f:
                v = json.load(f)
            full = f"{v['top1_tflm']:.4f} ({v['images']:,} images), {v['max_lsb_diff_tflm_vs_tflite']} LSB"
        else:
            full = "—"
        agree = "yes" if r["max_lsb_diff_target_vs_host"] == 0 else f"no, {r['max_lsb_diff_target_vs_host']} LSB"
        lines.append(
            f"| {quantization['rescale']} | {quantization['scale']:.6g}, {quantization['zero_point']} | {before} | "
            f"{r['instructions_per_image'] / 1e6:.1f} | {r['arena_used_bytes_target']:,} | {r['flash_bytes']:,} | "
            f"{r['top1_target']:.2f} ({r['images']} images), {agree} | {full} |"
        )
    first = next(iter(runs.values()))
    lines += ["", f"Preset `{first['preset']}`, Cortex-M4 with CMSIS-NN: `{first['command']}`; host TFLM:"]
    for key in runs:
        validation = os.path.join(RESULTS, host[key])
        if os.path.isfile(validation):
            with open(validation) as f:
                lines.append(f"`{json.load(f)['command']}`" + (";" if key != list(runs)[-1] else "."))
    return "\n".join(lines)


def input_fold_top1_table():
    """Every preset's int8 top-1 in the host TFLM on all val images with the rescaling folded
    into the input (`nlpool export`'s default) and in the graph (`--rescale-in-graph`)."""
    in_graph = dict(read_all("int8_ptq_rescale_in_graph_*.json", os.path.join(RESULTS, "fidelity")))
    lines = [
        "| preset | float top-1 | int8 TFLM top-1, rescaling in the graph | folded (the default) | difference |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, folded in read_all("int8_ptq_*.json"):
        kept = in_graph.get(name)
        if kept is not None:
            difference = 100 * (folded["top1_tflm"] - kept["top1_tflm"])
            lines.append(
                f"| `{name}` | {folded['top1_float']:.4f} | {kept['top1_tflm']:.4f} | {folded['top1_tflm']:.4f} | "
                f"{difference:+.2f} pt |"
            )
    if len(lines) == 2:
        return "Not measured yet: the commands above, for each preset."
    return "\n".join(lines)


def fused_pools_top1_table():
    """Every classifier preset's int8 top-1 in the host TFLM on all val images with the window
    softmax fused into one custom op (`nlpool export --fuse-pools`, benchmarks/results/fused_pools/)
    beside the same export without it (int8_ptq_*.json)."""
    lines = [
        "| preset | SOFTMAX, LOGISTIC | float top-1 | int8 TFLM top-1 | with the custom ops | difference | "
        "arg-max agreement with float: unfused → fused | TFLM arena: unfused → fused | flash: unfused → fused |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for name, fused in read_all("int8_ptq_*.json", os.path.join(RESULTS, "fused_pools")):
        path = os.path.join(RESULTS, f"int8_ptq_{name}.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            plain = json.load(f)
        widened, preset = ("int16", name[len("int16_ops_") :]) if name.startswith("int16_ops_") else ("int8", name)
        lines.append(
            f"| `{preset}` | {widened} | {fused['top1_float']:.4f} | {plain['top1_tflm']:.4f} | "
            f"{fused['top1_tflm']:.4f} | {100 * (fused['top1_tflm'] - plain['top1_tflm']):+.2f} pt | "
            f"{plain['argmax_agreement_tflm_vs_float']:.4f} → {fused['argmax_agreement_tflm_vs_float']:.4f} | "
            f"{plain['tflm_arena_bytes']:,} → {fused['tflm_arena_bytes']:,} B | "
            f"{plain['flash_bytes']:,} → {fused['flash_bytes']:,} B |"
        )
    if len(lines) == 2:
        return "(run the commands above)"
    return "\n".join(lines)


def firmware_peers_table():
    """TinyEngine and the project's TFLM + CMSIS-NN firmware on one network, board and compiler
    (`benchmarks/peers.py`)."""
    path = os.path.join(RESULTS, "firmware", "peers.json")
    if not os.path.isfile(path):
        return "(run `python benchmarks/peers.py`)"
    with open(path) as f:
        result = json.load(f)
    lines = [
        "| engine | setting | network | SRAM (image streamed) | M instructions per image | flash | "
        "largest difference from TFLite's reference kernels |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for engine, runs in (("TinyEngine", result["tinyengine"]), ("TFLM + CMSIS-NN", result["project"])):
        for setting, r in runs.items():
            sram = f"{r['sram_bytes']:,}"
            if r["sram_bytes_streamed"] != r["sram_bytes"]:
                sram += f" ({r['sram_bytes_streamed']:,})"
            if "max_lsb_diff_vs_tflite_reference" in r:
                lsb = r["max_lsb_diff_vs_tflite_reference"]
                agreement = f"{lsb} LSB" + ("" if lsb == 0 else " (wrong outputs)")
            else:
                agreement = (
                    f"{r['max_lsb_diff_vs_tflite_reference_target']} LSB (host TFLM: "
                    f"{r['max_lsb_diff_vs_tflite_reference_host_tflm']} LSB)"
                )
            if "schedule" in r:
                tiles = r["schedule"]["tiles"]
                setting += f": up to {r['schedule']['layer']} in {tiles}×{tiles} tiles"
            instructions = f"{r['instructions_per_image'] / 1e6:.1f}"
            if "persistent_bytes" in r:  # interpreters kept from boot
                sram += f" ({r['persistent_bytes']:,} in kept interpreters)"
                instructions += f" (+ {r['boot_setup_instructions'] / 1e6:.1f} once at boot)"
            elif r.get("setup_instructions_per_image"):
                instructions += f" ({r['setup_instructions_per_image'] / 1e6:.1f} set-up)"
            cells = (engine, setting, r["network"], sram, instructions, f"{r['flash_bytes']:,}", agreement)
            lines.append("| " + " | ".join(cells) + " |")
    images = next(iter(result["project"].values()))["images"]
    lines += ["", f"{result['network']}, {images} val images: `{result['command']}`."]
    for setting, r in result["project"].items():
        if "setup_fit" in r:  # where a schedule's per-image set-up goes
            fit, per = r["setup_fit"], r["setup_fit"]["instructions_per"]
            lines += [
                "",
                f"{setting}: a least-squares fit of each phase model's set-up over its ops, tensors and "
                f"output channels gives {per['output_channel']:,.0f} instructions per output channel of its "
                f"convolutions ({fit['output_channels']:,} channels in {fit['models']} models, "
                f"{100 * fit['output_channel_share']:.0f} % of the set-up; the other terms in peers.json).",
            ]
    return "\n".join(lines)


# the authors' published STL-10 logs (MobileNetV2, 128 px, 300 epochs, best top-1 %), from their
# repository (github.com/C-Fun/Self-Attentive-Pooling-for-Efficient-Deep-Learning, commit b929ba4),
# .backup/Non-Local-Pooling/base/logs_archive/mobilenet/: (pooling, placement)
AUTHORS_STL10 = {
    ("strided conv", "—"): {"1222121": 79.69, "2222121": 72.49, "4222121": 36.49},
    ("LIP", "before"): {"1222121": 79.16, "2222121": 68.23, "4222121": 36.50},
    ("self-attentive", "before"): {"1222121": 79.45, "2222121": 68.61, "4222121": 32.39},
    ("self-attentive, 2 heads", "before"): {"1222121": 79.04, "2222121": 68.81, "4222121": 30.43},
    ("Gaussian", "after"): {"1222121": 81.50, "2222121": 74.56, "4222121": 33.31},
    ("self-attentive", "after"): {"1222121": 81.45, "2222121": 75.25, "4222121": 39.54},
    ("self-attentive, 2 heads", "after"): {"1222121": 81.26, "2222121": 75.39, "4222121": 40.66},
}
# the study's arms beside them: (pooling, placement, settings) -> (downsample, variant, the patterns
# the study plan runs it at)
OWN_ARMS = {
    ("strided conv", "—", ""): ("conv", "", ("2222121",)),
    ("LIP", "before", ""): ("lip", "before", ("1222121", "2222121")),
    ("LIP", "after", ""): ("lip", "", ("1222121", "2222121")),
    ("self-attentive", "before", "patch auto ≤ 144 tokens, 2 heads (deployable)"): ("sa", "before", ("1222121",)),
    ("self-attentive", "after", "patch 1, heads per stage (paper)"): ("sa", "paper", ("2222121",)),
    ("self-attentive", "after", "patch auto ≤ 144 tokens, 2 heads (deployable)"): ("sa", "", ("1222121", "2222121")),
    ("Gaussian", "after", ""): ("gaussian", "", ("2222121",)),
}


@functools.cache
def _study_arms():
    return study_arms(STUDY_EPOCHS)


def _study_arm(strides, kind, variant):
    """The study arm's (mean, std, seeds) over its finished runs, None before its first."""
    arm = _study_arms()[(strides, kind, variant)]
    return (arm["val_top1_mean"], arm["val_top1_std"], len(arm["runs"])) if arm["runs"] else None


def _arm_cell(strides, kind, variant):
    arm = _study_arms()[(strides, kind, variant)]
    to_train = len(arm["seeds_to_train"])
    if not arm["runs"]:
        return f"{to_train} seed{'s' if to_train > 1 else ''} to train"
    cell = f"{100 * arm['val_top1_mean']:.2f}"
    cell += f" ± {100 * arm['val_top1_std']:.2f}" if arm["val_top1_std"] is not None else ""
    return cell + f" ({len(arm['runs'])}{f'; {to_train} more to train' if to_train else ''})"


def paper_comparison_table():
    """The authors' STL-10 logs beside the study's Imagenette runs, by pooling and placement."""
    lines = [
        "| pooling | placement | settings | authors, STL-10 1222121 | authors, STL-10 2222121 | "
        "here, Imagenette 1222121 | here, Imagenette 2222121 |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for (name, placement), figures in AUTHORS_STL10.items():
        lines.append(f"| {name} | {placement} | authors' | {figures['1222121']:.2f} | {figures['2222121']:.2f} | | |")
    for (name, placement, settings), (kind, variant, patterns) in OWN_ARMS.items():
        cells = [
            _arm_cell(strides, kind, variant) if strides in patterns else "—" for strides in ("1222121", "2222121")
        ]
        lines.append(
            f"| {name} | {placement} | {settings or 'the same as the authors'} | | | {cells[0]} | {cells[1]} |"
        )
    return "\n".join(lines)


def paper_arms_memory_table():
    """The study's arms beside the authors' networks: MACs and int8 SRAM (benchmarks/iso_sram.py
    measure, untrained: shapes decide them), or what stops a network that TFLM cannot run."""
    from iso_sram import configuration_path

    lines = [
        "| pooling | placement | settings | pattern | top-1 (seeds) | MACs | int8 TFLM arena | "
        "patch schedule peak (≤ 1.3× MACs) |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for (name, placement, settings), (kind, variant, patterns) in OWN_ARMS.items():
        for strides in patterns:
            path = configuration_path(strides, kind, variant)
            if not os.path.isfile(path):
                continue
            with open(path) as f:
                row = json.load(f)
            if row["whole_graph_arena_bytes"] is None:
                arena, schedule = _refusal(row), "—"
            else:
                arena, schedule = f"{row['whole_graph_arena_bytes']:,} B", f"{row['schedule_peak_bytes']:,} B"
            lines.append(
                f"| {name} | {placement} | {settings or 'the same as the authors'} | {strides} | "
                f"{_arm_cell(strides, kind, variant)} | {row['macs'] / 1e6:.1f} M | {arena} | {schedule} |"
            )
    return "\n".join(lines)


def _refusal(row):
    """What stops a configuration, e.g. the authors' patch 1: each blocking layer's tokens and
    attention scores' bytes where attention is the blocker, else the layer's reason."""
    from nlpool_keras.layers.self_attentive import MAX_INT8_TOKENS

    attention = {a["layer"]: a for a in row["attention"]}
    parts = []
    for layer, reason in row["not_deployable"].items():
        a = attention.get(layer)
        if a and a["tokens"] > MAX_INT8_TOKENS:
            scores = f"{a['heads']} × {a['tokens']:,}² = {a['score_bytes']:,} B of scores"
            parts.append(f"{layer} attends over {a['tokens']:,} tokens ({scores})")
        else:
            parts.append(f"{layer}: {reason}")
    return f"int8 export refuses it (TFLM's int8 softmax: at most {MAX_INT8_TOKENS} tokens): " + "; ".join(parts)


def placement_gaps_table():
    """Self-attentive pooling minus LIP at matched and at cross placement, at both stage patterns:
    the authors' STL-10 logs (one run each) and the study (mean over seeds, with their stds)."""
    patterns = ("1222121", "2222121")
    sa_after, sa_before, lip_before = ("self-attentive", "after"), ("self-attentive", "before"), ("LIP", "before")
    # (gap, the authors' arms: label, (minuend, subtrahend); the study's: label, ((kind, variant), ...))
    rows = (
        ("matched placement", "sa before − LIP before", (sa_before, lip_before), "sa after − LIP after",
         (("sa", ""), ("lip", ""))),
        ("matched placement, both before", "sa before − LIP before", (sa_before, lip_before),
         "sa before − LIP before", (("sa", "before"), ("lip", "before"))),
        ("cross placement (the paper's comparison)", "sa after − LIP before", (sa_after, lip_before),
         "sa after − LIP before", (("sa", ""), ("lip", "before"))),
        ("placement alone", "sa after − sa before", (sa_after, sa_before), "LIP after − LIP before",
         (("lip", ""), ("lip", "before"))),
    )  # fmt: skip

    def here(arms, strides):
        if any((strides, kind, variant) not in _study_arms() for kind, variant in arms):
            return "—"  # not in the study plan
        a, b = (_study_arm(strides, kind, variant) for kind, variant in arms)
        if a is None or b is None:
            return "seeds to train"
        stds = "/".join("—" if x[1] is None else f"{100 * x[1]:.2f}" for x in (a, b))
        return f"{100 * (a[0] - b[0]):+.2f} pt ({a[2]} vs {b[2]} seeds, stds {stds})"

    lines = [
        "| gap | authors' arms | authors, STL-10 1222121 | authors, STL-10 2222121 | arms here | "
        "here, Imagenette 1222121 | here, Imagenette 2222121 |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for gap, their_label, (a, b), our_label, ours in rows:
        theirs = " | ".join(f"{AUTHORS_STL10[a][p] - AUTHORS_STL10[b][p]:+.2f} pt" for p in patterns)
        figures = " | ".join(here(ours, p) for p in patterns)
        lines.append(f"| {gap} | {their_label} | {theirs} | {our_label} | {figures} |")
    return "\n".join(lines)


def _comparison_top1():
    """{(α, px, stage pattern, kind): [val top-1 per seed]} of the first comparison (10 Imagenette
    classes, 3 epochs); α and size read from each run's command."""
    top1 = {}
    for r in comparison_runs(COMPARISON_EPOCHS):
        alpha = float(re.search(r"--alpha (\S+)", r["command"]).group(1))
        size = int(re.search(r"--image-size (\d+)", r["command"]).group(1))
        top1.setdefault((alpha, size, r["strides"], r["downsample"]), []).append(r["val_top1"])
    return top1


def _top1_cell(top1):
    return f"{sum(top1) / len(top1):.4f}" + (f" ({len(top1)} seeds)" if len(top1) > 1 else "") if top1 else ""


def _memory_rows(folder="memory"):
    """The memory study's configurations in `folder`, each with its ratios to the standard network
    of the same folder, α and size, and the comparison study's top-1 where it has one."""
    rows = [r for _, r in read_all(os.path.join(folder, "*.json"))]
    base = {(r["alpha"], r["input_size"]): r for r in rows if r["variant"] == "1222121" and r["downsample"] == "conv"}
    top1 = _comparison_top1()
    for r in rows:
        reference = base.get((r["alpha"], r["input_size"]), {})
        r["ratios"] = {k: reference[k] / r[k] for k in MEMORY_MEASURES if reference.get(k) and r.get(k)}
        r["top1"] = top1.get((r["alpha"], r["input_size"], r["variant"], r["downsample"]), [])
    return sorted(rows, key=lambda r: (r["alpha"], r["input_size"], r["variant"], r["downsample"]))


def memory_full_table():
    """Every configuration of the memory study (benchmarks/results/memory.md)."""
    lines = [
        "# Memory study: every configuration",
        "",
        "Generated by `python benchmarks/tables.py` from `benchmarks/results/memory/*.json` (command in each).",
        "Ratios (×) are to the standard network (1222121, strided convolutions) at the same α and size.",
        "TFLM timings are in `benchmarks/results/latency.json` (measured on a quiet machine); the invoke",
        "times these JSON files hold were taken while other jobs ran and are not comparable.",
        "Top-1 where the comparison study trained the configuration (10 Imagenette classes, 3 epochs,",
        "`benchmarks/results/comparison/`; the memory figures are for a 1000-class head).",
        "",
        "| α | px | variant | down-sampling | MACs | int8 peak, whole graph | × | TFLM arena | × | "
        "after first block | × | peak after first block | × | top-1 |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in _memory_rows():
        head = f"| {r['alpha']:g} | {r['input_size']} | {r['variant']} | {r['downsample']} |"
        if "error" in r:
            lines.append(f"{head} {r['error']} | | | | | | | | | |")
            continue
        cells = [f"{r['macs']:,}"]
        for key in MEMORY_MEASURES:
            cells += [f"{r[key]:,}" if r.get(key) else "—", f"{r['ratios'][key]:.1f}" if key in r["ratios"] else ""]
        cells.append(_top1_cell(r["top1"]))
        lines.append(f"{head} {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def memory_table():
    """Per α and size: the standard network's figures and the largest reduction by each measure,
    over every kind and with self-attentive pooling."""
    rows = [r for r in _memory_rows() if "error" not in r]
    lines = [
        "| α | px | measure | standard (conv) | largest reduction | by | its whole-graph arena × | "
        "largest with sa | by | its whole-graph arena × |",
        "|---:|---:|---|---:|---:|---|---:|---:|---|---:|",
    ]

    def best(group, key):
        ranked = [r for r in group if key in r["ratios"]]
        if not ranked:
            return "| | |"
        r = max(ranked, key=lambda r: (round(r["ratios"][key], 3), -r["macs"]))
        arena = r["ratios"].get("tflm_arena_bytes")
        return f"{r['ratios'][key]:.1f}× | {r['variant']}, {r['downsample']} | {f'{arena:.1f}×' if arena else ''}"

    for alpha, size in sorted({(r["alpha"], r["input_size"]) for r in rows}):
        group = [r for r in rows if (r["alpha"], r["input_size"]) == (alpha, size)]
        base = [r for r in group if r["variant"] == "1222121" and r["downsample"] == "conv"]
        if not base:
            continue
        sa = [r for r in group if r["downsample"] == "sa"]
        for key, label in MEMORY_MEASURES.items():
            lines.append(
                f"| {alpha:g} | {size} | {label} | {base[0][key]:,} B | {best(group, key)} | {best(sa, key)} |"
            )
    return "\n".join(lines)


def memory_preprocessing_table():
    """Whole-graph memory with the rescaling layer in the graph and with it in the input's
    quantization (include_preprocessing=False), each × to its own standard network."""

    def by_configuration(rows):
        return {(r["alpha"], r["input_size"], r["variant"], r["downsample"]): r for r in rows if "error" not in r}

    folded = by_configuration(_memory_rows("memory_no_preprocessing"))
    if not folded:
        return "Not measured yet: `python benchmarks/memory_study.py --no-preprocessing ...`."
    inside = by_configuration(_memory_rows())
    lines = [
        "| α | px | variant | down-sampling | int8 liveness peak: rescaling in the graph | × | "
        "in the input quantization | × | TFLM arena: rescaling in the graph | × | in the input quantization | × |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in sorted(folded.keys() & inside.keys()):
        cells = []
        for measure in ("peak_activation_bytes", "tflm_arena_bytes"):
            for r in (inside[key], folded[key]):
                ratio = r["ratios"].get(measure)
                cells += [f"{r[measure]:,}" if r.get(measure) else "—", f"{ratio:.1f}" if ratio else ""]
        lines.append("| {:g} | {} | {} | {} | ".format(*key) + " | ".join(cells) + " |")
    return "\n".join(lines)


def memory_accuracy_table():
    """The configurations the comparison study trained: top-1 next to each memory reduction."""
    lines = [
        "| α | px | variant | down-sampling | top-1 | MACs ÷ standard's | "
        + " | ".join(f"{m}: reduction ×" for m in MEMORY_MEASURES.values())
        + " |",
        "|---:|---:|---|---|---:|---:|" + "---:|" * len(MEMORY_MEASURES),
    ]
    rows = [r for r in _memory_rows() if r["top1"] and "error" not in r]
    base = {
        (r["alpha"], r["input_size"]): r["macs"] for r in rows if (r["variant"], r["downsample"]) == ("1222121", "conv")
    }
    for r in sorted(rows, key=lambda r: (r["alpha"], r["input_size"], r["variant"], -sum(r["top1"]) / len(r["top1"]))):
        macs = f"{r['macs'] / base[r['alpha'], r['input_size']]:.2f}" if (r["alpha"], r["input_size"]) in base else ""
        ratios = " | ".join(f"{r['ratios'][k]:.1f}" if k in r["ratios"] else "" for k in MEMORY_MEASURES)
        lines.append(
            f"| {r['alpha']:g} | {r['input_size']} | {r['variant']} | {r['downsample']} | {_top1_cell(r['top1'])} | "
            f"{macs} | {ratios} |"
        )
    return "\n".join(lines)


def int8_table():
    lines = [
        "| preset | float top-1 | int8 top-1 TFLite | int8 top-1 TFLM | arg-max agreement TFLM vs float | "
        "mean \\|TFLM − float\\| (logits) | arg-max agreement TFLM vs TFLite | max \\|TFLM − TFLite\\| | "
        "TFLM arena | flash |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in read_all("int8_ptq_*.json"):
        lines.append(
            f"| `{name}` | {r['top1_float']:.4f} | {r['top1_tflite']:.4f} | {r['top1_tflm']:.4f} | "
            f"{r['argmax_agreement_tflm_vs_float']:.4f} | {r['mean_abs_error_tflm_vs_float']:.3f} | "
            f"{r['argmax_agreement_tflm_vs_tflite']:.4f} | {r['max_lsb_diff_tflm_vs_tflite']} LSB | "
            f"{r['tflm_arena_bytes']:,} B | {r['flash_bytes']:,} B |"
        )
    return "\n".join(lines)


def fidelity_table():
    """TFLM against TFLite and float before (projections as FULLY_CONNECTED, converter's
    flatbuffer) and after (1x1 CONV_2D projections, the TFLM-only flatbuffer form)."""
    lines = [
        "| preset | projections | arg-max agreement TFLM vs TFLite | max \\|TFLM − TFLite\\| | "
        "top-1 float → TFLite / TFLM | TFLM arena | flash |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    before = dict(read_all("int8_ptq_*.json", os.path.join(RESULTS, "fidelity", "fully_connected")))
    for name, after in read_all("int8_ptq_*.json"):
        for label, r in (("FULLY_CONNECTED", before.get(name)), ("1x1 CONV_2D", after)):
            if r is not None:
                lines.append(
                    f"| `{name}` | {label} | {r['argmax_agreement_tflm_vs_tflite']:.4f} | "
                    f"{r['max_lsb_diff_tflm_vs_tflite']} LSB | {r['top1_float']:.4f} → {r['top1_tflite']:.4f} / "
                    f"{r['top1_tflm']:.4f} | {r['tflm_arena_bytes']:,} B | {r['flash_bytes']:,} B |"
                )
    return "\n".join(lines)


def qat_table():
    lines = [
        "| preset | float top-1 | int8 TFLM, post-training | int8 TFLM, after QAT | QAT epochs | "
        "arg-max agreement TFLM vs its Keras model (PTQ → QAT) | command |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in read_all("int8_qat_*.json"):
        ptq, qat = r["ptq"], r["qat"]
        lines.append(
            f"| `{name}` | {r['top1_float']:.4f} | {ptq['top1_tflm']:.4f} | {qat['top1_tflm']:.4f} | "
            f"{r['qat_epochs']} | "
            f"{ptq['argmax_agreement_tflm_vs_float']:.3f} → {qat['argmax_agreement_tflm_vs_float']:.3f} | "
            f"`{r['command']}` |"
        )
    return "\n".join(lines)


def latency_table():
    if not os.path.isfile(os.path.join(RESULTS, "latency.json")):
        return "Not measured yet: `python benchmarks/latency.py`."
    with open(os.path.join(RESULTS, "latency.json")) as f:
        result = json.load(f)
    lines = [
        f"`{result['command']}` on {result['machine']}; TFLM with reference kernels, batch 1 "
        "(the TensorFlow column at the batch shown):",
        "",
        "| input (N,H,W,C) | layer | TensorFlow float ms | × max | TFLM int8 ms (N=1) | × max | TFLM arena |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["layers"]:
        tflm = (
            f"{row['tflm_int8_ms']:.2f} | {row['tflm_int8_ratio_to_max']:.1f} | {row['tflm_arena_bytes']:,}"
            if "tflm_int8_ms" in row
            else f"{row['tflm_error'].replace('|', '/')} | | "
        )
        lines.append(
            f"| {tuple(row['input_shape'])} | {row['layer']} | {row['forward_ms']:.2f} | "
            f"{row['forward_ratio_to_max']:.1f} | {tflm} |"
        )
    lines += [
        "",
        "| MobileNetV2 α 0.35, 96 px | down-sampling | params | TFLM int8 ms / inference (median of rounds) | "
        "× max | range over rounds (ms) | TFLM arena |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for row in result["models"]:
        rounds = row.get("tflm_int8_ms_per_round", [row["tflm_int8_ms"]])
        lines.append(
            f"| {row['pattern']} ({row['strides']}) | {row['downsample']} | {row['params']:,} | "
            f"{row['tflm_int8_ms']:.1f} | {row['tflm_int8_ratio_to_max']:.2f} | "
            f"{min(rounds):.1f}–{max(rounds):.1f} ({len(rounds)}) | {row['tflm_arena_bytes']:,} |"
        )
    return "\n".join(lines)


def compression_table():
    reports = {r["variant"]: r for _, r in read_all(os.path.join("compression", "*.json"))}
    packed = next((r["compression"] for r in reports.values() if "compression" in r), {})
    if "dense" in reports and packed:  # the dense flatbuffer each sparsity report compares with
        reports["dense"]["compression"] = {
            "pruned_gzip_bytes": packed["dense_gzip_bytes"],
            "pruned_lut_bytes": packed["dense_lut_bytes"],
        }
    lines = [
        "| variant | float top-1 | int8 TFLM top-1 | TFLM arena | flash | gzip | TFLM LUT flash | arena with LUT |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = ("dense", "channels30", "sparse50", "clustered16")
    for name in sorted(reports, key=lambda name: order.index(name) if name in order else len(order)):
        r = reports[name]
        sizes, lut = r.get("compression", {}), r.get("lut", {})
        cells = [sizes.get("pruned_gzip_bytes"), sizes.get("pruned_lut_bytes"), lut.get("tflm_arena_bytes")]
        lines.append(
            f"| {name} | {r['top1_float']:.4f} | {r['top1_tflm']:.4f} | {r['tflm_arena_bytes']:,} | "
            f"{r['flash_bytes']:,} | " + " | ".join(f"{c:,}" if c else "—" for c in cells) + " |"
        )
    if reports:
        first = next(iter(reports.values()))
        lines += ["", f"Preset `{first['preset']}`, seed {first['seed']}: `{first['command'].strip()}`."]
    return "\n".join(lines)


def detection_presets_table():
    """The detector presets: float and int8 centroid F1, and on the emulated Cortex-M4 the whole
    graph (decoding in C) and the patch schedule (zoo/detector_deployment.py)."""
    lines = [
        "| preset | data (val images) | classes | float F1 / int8 TFLM F1 | on target: F1, same objects as host, "
        "output LSB | whole graph on target: SRAM / flash / M instr. | patch schedule on target: SRAM / flash / "
        "M instr. | training |",
        "|---|---|---|---:|---|---|---|---|",
    ]
    for _, m in read_all("*.json", os.path.join(ROOT, "zoo")):
        if m["builder"] != "build_centroid_detector" or "deployment" not in m:
            continue
        whole, target, schedule = (m["deployment"][k] for k in ("int8_whole_graph", "target", "target_patch_schedule"))
        same = 100 * target["same_detections_target_vs_host"]
        on_target = f"{target['f1_target']:.4f}, {same:.0f} %, {target['max_lsb_diff_target_vs_host']} LSB"
        cells = [
            f"`{m['name']}`",
            f"{os.path.basename(m['dataset'])} ({m['metrics']['val_split']}, {m['metrics']['val_images']})",
            ", ".join(m["class_names"]),
            f"{m['metrics']['val_f1']:.4f} / {whole['f1_tflm']:.4f}",
            on_target,
            *(
                f"{run['sram_bytes']:,} B / {run['flash_bytes']:,} B / {_mega(run['instructions_per_image'])}"
                for run in (target, schedule)
            ),
            f"`{m['training']['command']}`",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detection_ssdlite_table():
    """The SSD-lite presets: float and int8 box AP, and on the emulated Cortex-M4 the whole graph
    (decoding and NMS in C) and the patch schedule (zoo/detector_deployment.py)."""
    lines = [
        "| preset | data (val images) | float AP@0.5 / mAP@[.5:.95] | int8 TFLM AP@0.5 | on target: AP@0.5, same "
        "boxes as host, output LSB | decoding + NMS on target | whole graph on target: SRAM / flash / M instr. | "
        "patch schedule on target: SRAM / flash / M instr. | training |",
        "|---|---|---:|---:|---|---:|---|---|---|",
    ]
    for _, m in read_all("*.json", os.path.join(ROOT, "zoo")):
        if m["builder"] != "build_ssdlite_detector" or "deployment" not in m:
            continue
        whole, target, schedule = (m["deployment"][k] for k in ("int8_whole_graph", "target", "target_patch_schedule"))
        same = 100 * target["same_detections_target_vs_host"]
        cells = [
            f"`{m['name']}`",
            f"{os.path.basename(m['dataset'])} ({m['metrics']['val_split']}, {m['metrics']['val_images']})",
            f"{m['metrics']['val_ap50']:.4f} / {m['metrics']['boxes']['map']:.4f}",
            f"{whole['ap50_tflm']:.4f}",
            f"{target['ap50_target']:.4f}, {same:.0f} %, {target['max_lsb_diff_target_vs_host']} LSB",
            _mega(target["decode_instructions_per_image"]),
            *(
                f"{run['sram_bytes']:,} B / {run['flash_bytes']:,} B / {_mega(run['instructions_per_image'])}"
                for run in (target, schedule)
            ),
            f"`{m['training']['command']}`",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detection_study_table():
    """Centroid detection on BCCD, one recipe, 3 seeds per arm (benchmarks/detection_study.py)."""
    path = os.path.join(RESULTS, "detection", "study_bccd.json")
    with open(path) as f:
        study = json.load(f)
    lines = [
        f"| arm ({study['epochs']} epochs) | seeds | val F1, mean ± std | per seed |",
        "|---|---:|---:|---|",
    ]
    for row in study["arms"].values():
        spread = "" if row["std"] is None else f" ± {row['std']:.4f}"
        per_seed = ", ".join(f"{v:.4f}" for v in row["values"])
        lines.append(f"| {row['what']} | {row['seeds']} | {row['mean']:.4f}{spread} | {per_seed} |")
    return "\n".join(lines)


TABLES = {
    "int8": int8_table,
    "fidelity": fidelity_table,
    "qat": qat_table,
    "layer_speed": layer_speed_table,
    "presets": presets_table,
    "comparison": comparison_table,
    "memory": memory_table,
    "memory_accuracy": memory_accuracy_table,
    "memory_preprocessing": memory_preprocessing_table,
    "latency": latency_table,
    "compression": compression_table,
    "study": study_table,
    "schedule": schedule_table,
    "schedule_tflm": schedule_tflm_table,
    "schedule_matrix": schedule_matrix_table,
    "iso_sram": iso_sram_table,
    "iso_sram_budget": iso_sram_budget_table,
    "summary": summary_table,
    "firmware": firmware_table,
    "firmware_kinds": firmware_kinds_table,
    "firmware_pooling_ops": firmware_pooling_ops_table,
    "firmware_pooling_work": firmware_pooling_work_table,
    "firmware_input_fold": firmware_input_fold_table,
    "fused_pools_top1": fused_pools_top1_table,
    "input_fold_top1": input_fold_top1_table,
    "firmware_peers": firmware_peers_table,
    "paper_comparison": paper_comparison_table,
    "placement_gaps": placement_gaps_table,
    "paper_arms_memory": paper_arms_memory_table,
    "detection_presets": detection_presets_table,
    "detection_study": detection_study_table,
    "detection_ssdlite": detection_ssdlite_table,
}
DOCUMENTS = ("README.md", os.path.join("docs", "guide.md"), os.path.join("docs", "results.md"), "tflm/README.md")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true")
    args = parser.parse_args()
    documents = {}
    for name in DOCUMENTS:
        with open(os.path.join(ROOT, name)) as f:
            documents[name] = f.read()
    for name, make in TABLES.items():
        table = make()
        if args.print:
            print(table, end="\n\n")
            continue
        pattern = re.compile(rf"(<!-- table:{name} -->\n)(?:.*?\n)?(<!-- /table:{name} -->)", re.S)
        holders = [document for document, text in documents.items() if pattern.search(text)]
        if len(holders) != 1:
            raise SystemExit(f"<!-- table:{name} --> markers must be in exactly one of {DOCUMENTS}, found in {holders}")
        text = documents[holders[0]]
        documents[holders[0]] = pattern.sub(lambda m, table=table: m.group(1) + table + "\n" + m.group(2), text)
    if not args.print:
        for name, text in documents.items():
            with open(os.path.join(ROOT, name), "w") as f:
                f.write(text)
        with open(os.path.join(RESULTS, "memory.md"), "w") as f:
            f.write(memory_full_table())


if __name__ == "__main__":
    run_quietly(main)
