"""A --schedule setting ("auto" or CUT:TILES) turned into a patch schedule: estimated on the
Keras model, or measured on its int8 phases in TFLM, and the lines that report either."""

import numpy as np

from nlpool_keras.profile.schedule import describe_setting, measure_schedule, search_schedules


def parse_schedule(spec):
    """("auto", None) or (cut layer, tiles) of a --schedule value."""
    if spec == "auto":
        return "auto", None
    cut, _, tiles = spec.partition(":")
    if not tiles.isdigit():
        raise ValueError(f"schedule must be 'auto' or CUT:TILES such as block_2_add:3, received: {spec!r}")
    return cut, int(tiles)


def estimate_schedule(model, spec, max_mac_overhead, budget):
    """(choice, candidates) of the Keras-level liveness estimate (`nlpool_keras.schedule`)."""
    from nlpool_keras.schedule import PatchSchedule, choose_schedule, schedule_cost

    cut, tiles = parse_schedule(spec)
    if cut == "auto":
        return choose_schedule(model, max_mac_overhead, budget)
    schedule = PatchSchedule(model, cut, tiles)
    schedule.run_stage(np.zeros((1, *model.inputs[0].shape[1:]), "float32"))
    choice = schedule_cost(schedule)
    return choice, [choice]


def measured_schedule_setting(flatbuffer, model, quantized_image, spec, options, max_mac_overhead, log=print):
    """(setting dict for `export_for_tflm(schedule=...)` or None, candidate rows) of --schedule
    `spec`: CUT:TILES with `options` (suffix, query_chunks, store_inputs), or "auto", which
    measures every candidate in TFLM (`search_schedules`, each reported to `log`) and takes the
    lowest peak within `max_mac_overhead`."""
    cut, tiles = parse_schedule(spec)
    if cut != "auto":
        return {"cut": cut, "tiles": tiles, **options}, []
    log(f"measuring candidate schedules in TFLM (MACs within {max_mac_overhead}x):")
    choice, rows = search_schedules(
        flatbuffer, model, quantized_image, max_mac_overhead, log=lambda line: log("  " + line)
    )
    if choice is None:
        return None, rows
    return {k: choice[k] for k in ("tiles", "suffix", "query_chunks", "store_inputs")} | {"cut": choice["layer"]}, rows


def measure_schedule_in_tflm(model, calibration, images, labels, spec, options, max_mac_overhead, log=print):
    """(measured figures of the chosen or given schedule, candidate rows): the int8 model
    calibrated on `calibration`, its phases run in TFLM on `images` (top-1 too with `labels`)."""
    from nlpool_keras.export.phases import cut_op_of
    from nlpool_keras.export.tflite import to_int8_tflite
    from nlpool_keras.tflm.interpreter import quantize
    from nlpool_keras.tflm.validate import input_details

    flatbuffer = to_int8_tflite(model, calibration)
    quantized = quantize(images, input_details(flatbuffer))
    setting, candidates = measured_schedule_setting(
        flatbuffer, model, quantized[:1], spec, options, max_mac_overhead, log
    )
    if setting is None:
        return None, candidates
    cut = setting.pop("cut")
    measured = measure_schedule(
        flatbuffer, cut_op_of(flatbuffer, model, cut), images=quantized, labels=labels, **setting
    )
    return {**measured, "layer": cut}, candidates


def format_estimate(choice, candidates, max_mac_overhead, budget):
    """The lines reporting `estimate_schedule`'s result."""
    whole = candidates[0]["whole_graph_peak_bytes"]
    lines = [f"estimated (Keras, int8 tensor liveness; --no-arena): whole graph {whole:,} B"]
    if choice is None:
        return lines + [
            f"no schedule within {max_mac_overhead}x the whole graph's MACs among {len(candidates)} candidates"
        ]
    streamed = choice["peak_bytes_image_streamed"]
    lines.append(
        f"schedule: patch stage up to {choice['cut']} in {choice['tiles']}x{choice['tiles']} tiles; peak "
        f"{streamed:,} B with the image streamed ({whole / streamed:.1f}x lower), "
        f"{choice['peak_bytes_image_in_sram']:,} B with the image in SRAM; MACs x{choice['mac_overhead']}"
    )
    if budget is not None:
        lines.append(
            f"it {'fits' if streamed <= budget else 'does not fit'} the SRAM budget of {budget:,} B (estimated)"
        )
    return lines


def format_measured(measured, candidates, max_mac_overhead, budget):
    """The lines reporting `measure_schedule_in_tflm`'s result."""
    if measured is None:
        return [f"no schedule within {max_mac_overhead}x the whole graph's MACs among {len(candidates)} candidates"]
    m = measured
    lines = [
        f"schedule: {describe_setting({**m, 'cut': m['layer']})}; measured in TFLM ({m['images']} images): peak SRAM "
        f"{m['peak_sram_image_streamed']:,} B with the image streamed, {m['peak_sram_image_held']:,} B with it "
        f"in SRAM; whole-graph arena {m['whole_graph_arena_bytes']:,} B ({m['reduction_image_streamed']}x lower); "
        f"MACs x{m['mac_overhead']}; outputs vs whole graph: max {m['max_lsb_vs_whole_graph']} LSB"
    ]
    if "top1_schedule" in m:
        lines.append(f"top-1 int8 TFLM: schedule {m['top1_schedule']:.4f}, whole graph {m['top1_whole_graph']:.4f}")
    lines.append(
        "  arena + pool per phase: "
        + ", ".join(f"{name} {p['arena_bytes']:,} + {p['pool_bytes']:,}" for name, p in m["phases"].items())
    )
    if budget is None:
        return lines
    peak = m["peak_sram_image_streamed"]
    lines.append(f"it {'fits' if peak <= budget else 'does not fit'} the SRAM budget of {budget:,} B (measured)")
    fitting = [c for c in candidates if "error" not in c and c["peak_sram_image_streamed"] <= budget]
    if peak > budget and fitting:
        c = min(fitting, key=lambda c: c["mac_overhead"])
        lines.append(
            f"fewest MACs that fit it: {describe_setting({**c, 'cut': c['layer']})}: "
            f"{c['peak_sram_image_streamed']:,} B at MACs x{c['mac_overhead']}"
        )
    return lines
