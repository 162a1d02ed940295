"""Latency on a device: a measured per-layer lookup table and predictions from it."""

from .devices import DEVICES, check_device, suggested_round_to
from .predict import cached_table, predict_model, predict_plan, recalibrate
from .table import GRID, LatencyTable, LeafEntry, LeafShape, leaf_shapes, measure_table

__all__ = [
    "DEVICES", "GRID", "LatencyTable", "LeafEntry", "LeafShape", "cached_table",
    "check_device", "leaf_shapes", "measure_table", "predict_model", "predict_plan",
    "recalibrate", "suggested_round_to",
]
