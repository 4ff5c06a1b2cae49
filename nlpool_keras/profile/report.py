"""A profile as a memory plot (PNG) and a model card (Markdown)."""


def plot_memory(report, path, title=None):
    """Live int8 activation bytes at each op, the peak marked, the TFLM arena as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    live = [row["live_bytes"] / 1024 for row in report["ops"]]
    figure, axis = plt.subplots(figsize=(10, 3.6), dpi=110)
    colors = ["#c0392b" if row["index"] == report["peak_op"] else "#5d8aa8" for row in report["ops"]]
    axis.bar(range(len(live)), live, width=1.0, color=colors)
    peak = report["ops"][report["peak_op"]]
    axis.annotate(
        f"peak {peak['live_bytes']:,} B at op {peak['index']} ({peak['op']})",
        (peak["index"], live[peak["index"]]),
        textcoords="offset points",
        xytext=(10, -4),
        fontsize=8,
    )
    if "tflm_arena_bytes" in report:
        axis.axhline(report["tflm_arena_bytes"] / 1024, color="#333333", linestyle="--", linewidth=1)
        axis.text(0, report["tflm_arena_bytes"] / 1024, " TFLM arena (measured)", va="bottom", fontsize=8)
    axis.set_xlabel("op (execution order)")
    axis.set_ylabel("live int8 activations (KiB)")
    axis.set_title(title or "activation memory per op", fontsize=10)
    axis.margins(x=0.01)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def model_card(report, name, metrics=None):
    """MCUNet-style summary: MACs, params, SRAM, flash, top-1 when known: measured by the
    profile (`report["top1"]`) or given in `metrics` ({"top1_float": ...,
    "top1_int8": ...}, e.g. a preset's recorded figures)."""
    metrics = dict(metrics or {})
    measured = report.get("top1", {})
    for key, label in (("float", "top1_float"), ("int8_tflm", "top1_int8")):
        if key in measured:
            metrics[label] = measured[key]
    where = f" ({measured['images']:,} images)" if measured else ""
    rows = [
        ("MACs", f"{report['macs']:,}"),
        ("parameters", f"{report['params']:,}" if "params" in report else "—"),
        ("SRAM: TFLM arena (measured)", f"{report['tflm_arena_bytes']:,} B" if "tflm_arena_bytes" in report else "—"),
        ("SRAM: int8 activation peak (liveness bound)", f"{report['peak_activation_bytes']:,} B"),
        ("flash (flatbuffer)", f"{report['flash_bytes']:,} B"),
        (
            "TFLM invoke, reference kernels, this host",
            f"{report['tflm_ms_per_invoke']} ms" if "tflm_ms_per_invoke" in report else "—",
        ),
        ("top-1 float" + where, f"{metrics['top1_float']:.4f}" if "top1_float" in metrics else "not measured"),
        ("top-1 int8 (TFLM)" + where, f"{metrics['top1_int8']:.4f}" if "top1_int8" in metrics else "not measured"),
    ]
    lines = [f"# {name}", "", "| | |", "|---|---:|"] + [f"| {label} | {value} |" for label, value in rows]
    if report.get("attention"):
        lines += [
            "",
            "| self-attentive pooling layer | tokens L | heads | attention scores (int8 B) |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {a['layer']} | {a['tokens']} | {a['heads']} | {a['score_bytes']:,} |" for a in report["attention"]
        ]
    peak = report["ops"][report["peak_op"]]
    lines += ["", f"Peak at op {peak['index']} ({peak['op']} → `{peak['tensor']}`, output {peak['output_shape']})."]
    return "\n".join(lines) + "\n"
