"""Patch-based execution: the high-resolution prefix of a network run tile by tile, with
self-attentive pooling kept global (two passes); what a schedule costs; choosing one."""

from nlpool_keras.schedule.cost import schedule_cost
from nlpool_keras.schedule.patches import PatchSchedule
from nlpool_keras.schedule.search import choose_schedule

__all__ = ["PatchSchedule", "choose_schedule", "schedule_cost"]
