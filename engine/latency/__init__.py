"""Latency on a device: a measured per-layer lookup table and predictions from it."""

from .calibrate import KEPT_WIDTHS, calibrate
from .closed_loop import ClosedLoopResult, LoopStep, plan_for_latency, plan_latency_budget
from .devices import DEVICES, check_device, suggested_round_to
from .predict import cached_table, predict_model, predict_plan, recalibrate
from .table import (
    GRID,
    TABLE_VERSION,
    AffineFit,
    CalibrationPoint,
    LatencyTable,
    LeafEntry,
    LeafShape,
    fit_calibration,
    leaf_shapes,
    measure_table,
)

__all__ = [
    "DEVICES", "GRID", "KEPT_WIDTHS", "TABLE_VERSION", "AffineFit", "CalibrationPoint",
    "ClosedLoopResult", "LatencyTable", "LeafEntry", "LeafShape", "LoopStep", "cached_table",
    "calibrate", "check_device", "fit_calibration", "leaf_shapes", "measure_table",
    "plan_for_latency", "plan_latency_budget", "predict_model", "predict_plan",
    "recalibrate", "suggested_round_to",
]
