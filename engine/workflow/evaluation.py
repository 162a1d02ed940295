"""The bridge from the workflow to engine.evaluate: the shared progress callback in,
engine.evaluate.Metrics out."""

from __future__ import annotations

from typing import Any

from ..utils.progress import CancelFn, ProgressFn, never_cancel, no_progress


def evaluate_model(
    model: Any,
    data: Any,
    *,
    reference: Any = None,
    progress: ProgressFn = no_progress,
    cancel: CancelFn = never_cancel,
) -> Any:
    """engine.evaluate.Metrics of `model` on `data` (a DataSource or batches)."""
    from ..data import DataSource, make_loader
    from ..evaluate import evaluate

    batches = make_loader(data) if isinstance(data, DataSource) else data

    def on_batch(done: int, total: int, message: str) -> None:
        progress(min(done / total, 1.0) if total else 0.0, message or f"{done} samples")

    return evaluate(model, batches, reference=reference, progress=on_batch, cancel=cancel)
