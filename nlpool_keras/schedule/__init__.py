"""Patch-based execution: the high-resolution prefix of a network run tile by tile, with
self-attentive pooling kept global (two passes)."""

from nlpool_keras.schedule.patches import PatchSchedule

__all__ = ["PatchSchedule"]
