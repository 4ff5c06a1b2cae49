"""The schedule a measurement chooses: the lowest peak SRAM within a MAC limit.

lowest_peak(rows, max_mac_overhead=1.3)   # rows: `measure_schedule` reports (or errors)
"""


def lowest_peak(rows, max_mac_overhead=None):
    """The measured row (no `error`) with the lowest peak SRAM (image streamed) whose MAC
    overhead is at most `max_mac_overhead` (None: any); ties go to the lower MAC overhead (the
    rows are schedules of one model). None if no row fits."""
    fitting = [
        r for r in rows if "error" not in r and (max_mac_overhead is None or r["mac_overhead"] <= max_mac_overhead)
    ]
    return min(fitting, key=lambda r: (r["peak_sram_image_streamed"], r["mac_overhead"]), default=None)
