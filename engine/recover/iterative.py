"""Iterative prune -> recover: Torch-Pruning's "fine-tune between steps", done for the user.

The plan's `iterative_steps` schedule prunes a little at a time; after each step the
model is recovered (distilled from the original, fine-tuned on labels) so that the
next step scores channels of a model that works again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from .config import RecoveryConfig
from .loop import Metric, RecoveryProgress, recover
from .report import RecoveryReport


@dataclass
class IterativeResult:
    outcome: Any  # engine.plan.PruneOutcome
    reports: list[RecoveryReport] = field(default_factory=list)  # one per step


def prune_and_recover(
    model: nn.Module,
    example_inputs: Any,
    plan: Any,
    train_data: Iterable[Any],
    *,
    config: RecoveryConfig,
    metric: Metric | None = None,
    teacher: nn.Module | None = None,
    progress: Callable[[RecoveryProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    **apply_kwargs: Any,
) -> IterativeResult:
    """Prune `model` in place by `plan`, recovering after each of its iterative steps.

    The budget of `config` is spent per step; the teacher defaults to a copy of the
    model before the first step. Each step's checkpoint gets its own file (".stepK").
    """
    from engine.plan import apply_plan

    teacher = teacher if teacher is not None else copy.deepcopy(model).eval()
    result = IterativeResult(outcome=None)

    def after_step(step: int) -> None:
        cfg = config
        if config.checkpoint and plan.iterative_steps > 1:
            cfg = replace(config, checkpoint=f"{config.checkpoint}.step{step}")
        result.reports.append(recover(model, train_data, teacher=teacher, metric=metric,
                                      config=cfg, progress=progress, cancel=cancel))

    result.outcome = apply_plan(model, example_inputs, plan, after_step=after_step,
                                cancel=cancel, **apply_kwargs)
    return result
