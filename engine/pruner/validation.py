"""Argument checks for BasePruner: fail early with a message that names the argument."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import nn


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


#: Each step re-scores and prunes the whole model, and schedules hold steps + 1 ratios.
MAX_ITERATIVE_STEPS = 1000


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_ratio(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_args(
    *,
    pruning_ratio: float,
    pruning_ratio_dict: dict | None,
    max_pruning_ratio: float,
    iterative_steps: int,
    scheduler: Callable,
    ignored_layers: Iterable | None,
    round_to: int | None,
    global_pruning: bool,
    isomorphic: bool,
    in_channel_groups: dict,
    out_channel_groups: dict,
    num_heads: dict,
    head_pruning_ratio: float,
    head_pruning_ratio_dict: dict | None,
    importance: Callable,
) -> None:
    check_ratio("pruning_ratio", pruning_ratio)
    if not _is_number(max_pruning_ratio) or not 0.0 < max_pruning_ratio <= 1.0:
        raise ValueError(f"max_pruning_ratio must be in (0, 1], got {max_pruning_ratio!r}")
    if not _is_int(iterative_steps) or iterative_steps < 1:
        raise ValueError(f"iterative_steps must be an integer >= 1, got {iterative_steps!r}")
    if iterative_steps > MAX_ITERATIVE_STEPS:
        raise ValueError(f"iterative_steps must be at most {MAX_ITERATIVE_STEPS}, "
                         f"got {iterative_steps}")
    if not callable(scheduler):
        raise ValueError("iterative_pruning_ratio_scheduler must be callable(ratio, steps)")
    if round_to is not None and (
        isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1
    ):
        raise ValueError(f"round_to must be None or an integer >= 1, got {round_to!r}")
    if isomorphic and not global_pruning:
        raise ValueError("isomorphic=True ranks within topology scopes across the network; "
                         "it requires global_pruning=True")
    if not callable(importance):
        raise ValueError("importance must be callable on a Group (e.g. MagnitudeImportance())")
    for layer in ignored_layers or []:
        if not isinstance(layer, (nn.Module, nn.Parameter)):
            raise ValueError(
                f"ignored_layers may hold modules or parameters, got {type(layer).__name__}")
    for key, ratio in (pruning_ratio_dict or {}).items():
        mods = key if isinstance(key, tuple) else (key,)
        if not mods or not all(isinstance(m, nn.Module) for m in mods):
            raise ValueError("pruning_ratio_dict keys must be modules or tuples of modules, "
                             f"got {key!r}")
        check_ratio("pruning_ratio_dict value", ratio)
    for name, mapping in (("in_channel_groups", in_channel_groups),
                          ("out_channel_groups", out_channel_groups), ("num_heads", num_heads)):
        for m, n in (mapping or {}).items():
            if not isinstance(m, nn.Module):
                raise ValueError(f"{name} keys must be modules, got {type(m).__name__}")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"{name} values must be integers >= 1, got {n!r}")
    check_ratio("head_pruning_ratio", head_pruning_ratio)
    for m, ratio in (head_pruning_ratio_dict or {}).items():
        if not isinstance(m, nn.Module):
            raise ValueError("head_pruning_ratio_dict keys must be modules")
        check_ratio("head_pruning_ratio_dict value", ratio)


def check_schedule(schedule: list[float], steps: int, what: str) -> list[float]:
    """The scheduler must give steps+1 cumulative ratios in [0, 1)."""
    schedule = [float(r) for r in schedule]
    if len(schedule) < steps + 1:
        raise ValueError(f"scheduler returned {len(schedule)} ratios for {what}; "
                         f"need iterative_steps + 1 = {steps + 1}")
    for r in schedule:
        check_ratio(f"scheduled ratio for {what}", r)
    return schedule
