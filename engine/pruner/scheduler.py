"""Iterative schedules: cumulative pruning ratio after each step (index 0 = before any)."""

from __future__ import annotations


def linear_scheduler(pruning_ratio: float, steps: int) -> list[float]:
    """Equal increments: step k of n reaches k/n of the target ratio (Torch-Pruning's)."""
    return [(i / float(steps)) * pruning_ratio for i in range(steps + 1)]
