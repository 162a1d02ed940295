"""The number a recovery run watches, measured by engine.evaluate on the evaluation data.

Labeled data: accuracy. Unlabeled classifier data: top-1 agreement with the original
model (the teacher). Token data: perplexity (lower is better; the run negates nothing,
it is told which way is better).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

# metric name -> whether a higher value is better
DIRECTIONS: dict[str, bool] = {"accuracy": True, "agreement": True, "perplexity": False}


@dataclass(frozen=True)
class WatchedMetric:
    name: str
    greater_is_better: bool
    measure: Callable[[nn.Module], float]


def watched_metric(batches: Iterable[Any], teacher: nn.Module | None = None,
                   name: str | None = None) -> WatchedMetric:
    """The first of accuracy / agreement / perplexity that this data and model give.

    `name` forces one; evaluation runs once here to find out which ones apply.
    """
    from engine.evaluate import evaluate

    def measure_all(model: nn.Module) -> dict[str, Any]:
        return evaluate(model, batches, reference=teacher).as_dict()

    if name is None:
        if teacher is None:
            raise ValueError("pick the metric (accuracy, agreement, perplexity) or pass the "
                             "teacher so it can be found from the data")
        found = measure_all(teacher)
        name = next((n for n in DIRECTIONS if found.get(n) is not None), None)
        if name is None:
            raise ValueError("the evaluation data gives no accuracy, agreement or perplexity")
    if name not in DIRECTIONS:
        raise ValueError(f"unknown metric {name!r}; use one of {', '.join(DIRECTIONS)}")

    def measure(model: nn.Module) -> float:
        value = measure_all(model).get(name)
        if value is None:
            raise ValueError(f"the evaluation data gives no {name} for this model")
        return float(value)

    return WatchedMetric(name, DIRECTIONS[name], measure)
