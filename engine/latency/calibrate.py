"""Calibrating a latency table with whole-model timings of pruned copies.

Why: layers timed alone sum to a fixed fraction of the whole model only at full width.
What the table cannot see (functional adds/cats, dispatch per op, page faults of large
activations with glibc malloc) does not shrink with the widths as the layers do, so a
single scale factor under-predicted every pruned model, narrow ones most (docs/
benchmarks.md, "Latency model", run 4). Timing a few uniformly pruned copies of the
model itself, interleaved with the original, gives points (table sum, measured) on the
range plans use; an affine fit through them carries the part that does not shrink.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .runners import Runner, TorchCPURunner, runner_for
from .table import CalibrationPoint, LatencyTable, fit_calibration, leaf_shapes

KEPT_WIDTHS: tuple[float, ...] = (0.25, 0.5, 0.75)
# two extra calibration copies with seeded random per-group widths: a fit through uniform
# copies alone under-predicted held-out mixed plans (resnet18: -8..-15 % torch CPU,
# -10..-20 % ORT; with these two: -4..-11 % / -3..-15 %; mobilenet_v2 unchanged within
# 1-4 points), benchmarks/latency_mixed_calibration.py, docs/benchmarks.md
MIXED_SEEDS: tuple[int, ...] = (1001, 1002)

# best-of ms of each model, timed together (interleaved) so load drift hits all alike
Timer = Callable[[Sequence[nn.Module], Any], list[float]]


def time_models(models: Sequence[nn.Module], inputs: Any, *, rounds: int = 15,
                runner: Runner | None = None) -> list[float]:
    """Best-of ms of each model over `rounds` interleaved rounds on `runner` (torch CPU)."""
    return (runner or TorchCPURunner()).time_models(models, inputs, rounds=rounds)


def raw_sum(table: LatencyTable, model: nn.Module, inputs: Any) -> float:
    """The table's uncorrected sum for `model`'s widths (a weightless copy is run)."""
    from torch.utils._pytree import tree_map

    from ..graph.probe import meta_copy

    meta = meta_copy(model)
    meta_inputs = tree_map(lambda x: x.to("meta") if isinstance(x, torch.Tensor) else x, inputs)
    return table.raw_sum(leaf_shapes(meta, meta_inputs))


def uniform_copies(model: nn.Module, inputs: Any,
                   kept: Sequence[float] = KEPT_WIDTHS) -> list[tuple[str, nn.Module]]:
    """Copies of `model` with every prunable group kept at each width (the engine's pruner).

    A width the pruner refuses (a model whose groups cannot go that low) is skipped:
    calibration then uses fewer points, and with fewer than two the table keeps its scale.
    """
    from ..plan import PruningPlan, apply_plan

    out = []
    for k in kept:
        clone = copy.deepcopy(model)
        try:
            apply_plan(clone, inputs, PruningPlan(pruning_ratio=round(1.0 - k, 6)))
        except Exception:  # noqa: BLE001 - an unprunable width is a missing point, not an error
            continue
        out.append((f"uniform keep {k:g}", clone))
    return out


def mixed_plans(model: nn.Module, inputs: Any, seeds: Sequence[int], *, low: float = 0.1,
                high: float = 0.7, round_to: int = 8) -> list[tuple[str, Any]]:
    """Seeded plans with a random ratio in [low, high] per prunable group (plans users make
    are rarely uniform: the widths of neighbouring layers then differ)."""
    from ..plan import PruningPlan
    from ..plan.scan import ScanPreviewer

    roots = [name for name, _ in ScanPreviewer(model, inputs).group_roots(PruningPlan())]
    out = []
    for seed in seeds:
        rng = random.Random(seed)
        out.append((f"mixed seed {seed}", PruningPlan(
            pruning_ratio=0.0, round_to=round_to,
            group_ratios={r: round(rng.uniform(low, high), 2) for r in roots})))
    return out


def mixed_copies(model: nn.Module, inputs: Any,
                 seeds: Sequence[int]) -> list[tuple[str, nn.Module]]:
    """Copies of `model` pruned by `mixed_plans` (a plan the pruner refuses is skipped)."""
    from ..plan import apply_plan

    out = []
    for label, plan in mixed_plans(model, inputs, seeds) if seeds else []:
        clone = copy.deepcopy(model)
        try:
            apply_plan(clone, inputs, plan)
        except Exception:  # noqa: BLE001 - a missing point, not an error
            continue
        out.append((label, clone))
    return out


def calibrate(table: LatencyTable, model: nn.Module, inputs: Any, *,
              kept: Sequence[float] = KEPT_WIDTHS, timer: Timer | None = None,
              rounds: int = 15, runner: Runner | None = None,
              mixed: Sequence[int] = MIXED_SEEDS) -> LatencyTable:
    """The table with calibration points and their affine fit (a new table; `model` unpruned).

    The original and the copies are timed in the same interleaved rounds; the original's
    time becomes `full_model_ms`, so the fit and the full-model time share one load level.
    `runner` times them (default: the table's device's runner, e.g. ONNX Runtime).
    `mixed`: seeds of extra calibration copies with random per-group widths.
    """
    from torch.utils._pytree import tree_map

    runner = runner or runner_for(table.device)
    device = runner.torch_device
    model = copy.deepcopy(model).to(device).eval()
    inputs = tree_map(lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, inputs)
    variants = [("unpruned", model)] + [(label, m.to(device).eval())
                                        for label, m in uniform_copies(model, inputs, kept)
                                        + mixed_copies(model, inputs, mixed)]
    measured = (timer or (lambda ms, x: runner.time_models(ms, x, rounds=rounds)))(
        [m for _, m in variants], inputs)
    points = [CalibrationPoint(label, raw_sum(table, m, inputs), ms)
              for (label, m), ms in zip(variants, measured, strict=True)]
    points[0].table_ms = table.table_full_ms  # the same sum the prediction rescales by
    return dataclasses.replace(table, calibration=points, fit=fit_calibration(points),
                               full_model_ms=measured[0])
