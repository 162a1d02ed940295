"""What a recovery run did: plain data the CLI prints as JSON and the GUI plots."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

BN_POINT = "bn-recalibrated"


@dataclass
class CurvePoint:
    """One point of the curve: training loss so far (None at step 0) and the eval metric."""

    step: int
    loss: float | None
    metric: float | None
    label: str = ""  # "pruned", "bn-recalibrated" or "" for training points

    def as_row(self) -> list[Any]:
        return [self.step, self.loss, self.metric]


@dataclass
class RecoveryReport:
    steps: int = 0
    epochs: float = 0.0
    seconds: float = 0.0
    samples_per_s: float = 0.0
    curve: list[CurvePoint] = field(default_factory=list)
    resumed_from: int | None = None  # the step the run resumed at, None for a fresh run
    best_metric: float | None = None
    best_step: int | None = None
    stopped: str = "budget"  # budget | early-stopping | cancelled | time
    loss_kind: str = ""
    metric_name: str = "accuracy"
    processes: int = 1
    device: str = "cpu"
    mixed_precision: str = "no"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["curve"] = [p.as_row() for p in self.curve]
        data["curve_labels"] = [p.label for p in self.curve]  # "pruned", "bn-recalibrated", ""
        return data
