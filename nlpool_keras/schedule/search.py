"""Choosing a patch schedule: the cut and tile grid with the lowest peak SRAM under a MAC limit.

    choice, candidates = choose_schedule(model, max_mac_overhead=1.3, sram_budget=64 * 1024)

Candidates are the ends of blocks (`*_add`, `*_pool`, `*_project_BN` where no residual connection
crosses, the stem) at 1/16 of the input's resolution or more (the high-resolution prefix; deeper
cuts need halos as large as the image) up to the first layer that cannot run in tiles, each with
2 x 2 ... 4 x 4 tiles.
Peaks are int8 tensor liveness (`nlpool_keras.schedule.cost`), image streamed tile by tile.
"""

import numpy as np

from nlpool_keras.schedule.cost import schedule_cost
from nlpool_keras.schedule.patches import PatchSchedule

CUT_SUFFIXES = ("_add", "_pool", "project_BN", "Conv1_relu")


def parse_bytes(text):
    """ "64k" -> 65536, "1.5M" -> 1572864, "50000" -> 50000 (k and M are binary)."""
    units = {"k": 1024, "K": 1024, "m": 1024**2, "M": 1024**2}
    try:
        return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)
    except (ValueError, IndexError):
        raise ValueError(f"sram_budget must be bytes such as 65536, 64k or 1.5M, received: {text!r}") from None


def candidate_cuts(model, min_size=None):
    """Layer names that can end a patch stage, in model order, down to the first whose output
    map is smaller than `min_size` (default: 1/16 of the input's side)."""
    min_size = min_size or -(-min(model.inputs[0].shape[1:3]) // 16)
    cuts = []
    for layer in model.layers:
        if not layer.name.endswith(CUT_SUFFIXES):
            continue
        if min(layer.output.shape[1:3]) < min_size:
            break
        try:
            PatchSchedule(model, layer.name, 1)
        except ValueError as error:
            if "residual connection crosses" in str(error):
                continue
            break  # a layer that cannot run in tiles: no deeper cut can either
        cuts.append(layer.name)
    return cuts


def choose_schedule(model, max_mac_overhead=1.3, sram_budget=None, tiles=(2, 3, 4), log=None):
    """Evaluates every candidate (cut, tiles) on one image and returns (choice, candidates):
    the candidate with the lowest `peak_bytes_image_streamed` whose `mac_overhead` is at most
    `max_mac_overhead` (ties: fewer MACs), or None when none is; each candidate is a
    `schedule_cost` dict with `fits_budget` when `sram_budget` is given."""
    image = np.random.default_rng(0).uniform(0, 1, (1, *model.inputs[0].shape[1:]))
    candidates = []
    for cut in candidate_cuts(model):
        size = min(model.get_layer(cut).output.shape[1:3])
        for count in (n for n in tiles if n <= size):
            schedule = PatchSchedule(model, cut, count)
            schedule.run_stage(image)
            cost = schedule_cost(schedule)
            if sram_budget is not None:
                cost["fits_budget"] = cost["peak_bytes_image_streamed"] <= sram_budget
            candidates.append(cost)
            if log:
                log(
                    f"{cut} {count}x{count}: peak {cost['peak_bytes_image_streamed']:,} B, MACs x{cost['mac_overhead']}"
                )
    allowed = [c for c in candidates if c["mac_overhead"] <= max_mac_overhead]
    choice = min(allowed, key=lambda c: (c["peak_bytes_image_streamed"], c["macs"])) if allowed else None
    return choice, candidates
