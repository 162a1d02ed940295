"""Latency on a device: a measured per-layer lookup table and predictions from it."""

from .calibrate import KEPT_WIDTHS, MIXED_SEEDS, calibrate
from .closed_loop import ClosedLoopResult, LoopStep, plan_for_latency, plan_latency_budget
from .devices import DEVICES, check_device, suggested_round_to
from .predict import cached_table, predict_model, predict_plan, recalibrate
from .runners import (
    CudaRunner,
    OrtCPURunner,
    Runner,
    Timing,
    TorchCPURunner,
    require_onnxruntime,
    runner_for,
)
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
    "DEVICES", "GRID", "KEPT_WIDTHS", "MIXED_SEEDS", "TABLE_VERSION", "AffineFit",
    "CalibrationPoint",
    "ClosedLoopResult", "CudaRunner", "LatencyTable", "LeafEntry", "LeafShape", "LoopStep",
    "OrtCPURunner", "Runner", "Timing", "TorchCPURunner", "cached_table", "calibrate",
    "check_device", "fit_calibration", "leaf_shapes", "measure_table", "plan_for_latency",
    "plan_latency_budget", "predict_model", "predict_plan", "recalibrate",
    "require_onnxruntime", "runner_for", "suggested_round_to",
]
