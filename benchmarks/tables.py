"""Regenerates the README's result tables from benchmarks/results/*.json.

.venv/bin/python benchmarks/tables.py          # rewrites the tables in README.md
.venv/bin/python benchmarks/tables.py --print  # prints them instead
"""

import argparse
import glob
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    lines = [
        "| preset | strides | params | val top-1 (3,925 images) | epochs | command |",
        "|---|---|---:|---:|---:|---|",
    ]
    for _, m in read_all("*.json", os.path.join(ROOT, "zoo")):
        lines.append(
            f"| `{m['name']}` | {m['arguments'].get('strides', '')} | {m['metrics']['params']:,} | "
            f"{m['metrics']['val_top1']:.4f} | {m['training']['epochs_completed']} of 30 | "
            f"`{m['training']['command']}` | `{m['metrics_command']}` |"
        )
    return "\n".join(lines)


def comparison_table():
    runs = {}
    for _, r in read_all(os.path.join("comparison", "*.json")):
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


def memory_table():
    rows = [r for _, r in read_all(os.path.join("memory", "*.json"))]
    base = {(r["alpha"], r["input_size"]): r for r in rows if r["variant"] == "1222121" and r["downsample"] == "conv"}
    lines = [
        "| α | px | variant | down-sampling | MACs | int8 peak, whole graph | ÷ standard | TFLM arena | ÷ standard | "
        "after first block | ÷ standard |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ratio(r, key):
        reference = base.get((r["alpha"], r["input_size"]), {}).get(key)
        return f"{reference / r[key]:.1f}×" if reference and r.get(key) else ""

    for r in sorted(rows, key=lambda r: (r["alpha"], r["input_size"], r["variant"], r["downsample"])):
        head = f"| {r['alpha']:g} | {r['input_size']} | {r['variant']} | {r['downsample']} |"
        if "error" in r:
            lines.append(f"{head} {r['error']} | | | | | | |")
            continue
        arena = f"{r['tflm_arena_bytes']:,}" if r.get("tflm_arena_bytes") else "—"
        lines.append(
            f"{head} {r['macs']:,} | {r['peak_activation_bytes']:,} | {ratio(r, 'peak_activation_bytes')} | "
            f"{arena} | {ratio(r, 'tflm_arena_bytes')} | {r['first_block_bytes']:,} | {ratio(r, 'first_block_bytes')} |"
        )
    return "\n".join(lines)


def int8_table():
    lines = [
        "| preset | float top-1 | int8 top-1 TFLite | int8 top-1 TFLM | arg-max agreement TFLM vs float | "
        "max \\|TFLM − TFLite\\| | TFLM arena | flash |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in read_all("int8_ptq_*.json"):
        lines.append(
            f"| `{name}` | {r['top1_float']:.4f} | {r['top1_tflite']:.4f} | {r['top1_tflm']:.4f} | "
            f"{r['argmax_agreement_tflm_vs_float']:.4f} | {r['max_lsb_diff_tflm_vs_tflite']} LSB | "
            f"{r['tflm_arena_bytes']:,} B | {r['flash_bytes']:,} B |"
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


TABLES = {
    "int8": int8_table,
    "qat": qat_table,
    "layer_speed": layer_speed_table,
    "presets": presets_table,
    "comparison": comparison_table,
    "memory": memory_table,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true")
    args = parser.parse_args()
    readme_path = os.path.join(ROOT, "README.md")
    with open(readme_path) as f:
        readme = f.read()
    for name, make in TABLES.items():
        table = make()
        if args.print:
            print(table, end="\n\n")
            continue
        pattern = re.compile(rf"(<!-- table:{name} -->\n)(?:.*?\n)?(<!-- /table:{name} -->)", re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no <!-- table:{name} --> markers")
        readme = pattern.sub(lambda m, table=table: m.group(1) + table + "\n" + m.group(2), readme)
    if not args.print:
        with open(readme_path, "w") as f:
            f.write(readme)


if __name__ == "__main__":
    main()
