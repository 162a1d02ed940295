"""The bridge from the workflow to engine.evaluate (metrics of a model on data)."""

from __future__ import annotations

from typing import Any

from ..utils.progress import CancelFn, ProgressFn, check_cancel, never_cancel, no_progress


def evaluate_model(
    model: Any,
    data: Any,
    *,
    reference: Any = None,
    progress: ProgressFn = no_progress,
    cancel: CancelFn = never_cancel,
) -> Any:
    """Metrics of `model` on `data` (an iterable of batches, see engine.data.as_batch)."""
    import torch

    from ..data.batch import as_batch
    from ..io import call_with

    # TEMPORARY until engine.evaluate (branch `data`) is merged: top-1 accuracy only
    correct = seen = 0
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for item in data:
                check_cancel(cancel)
                batch = as_batch(item)
                logits = call_with(model, batch.inputs)
                if batch.labels is not None:
                    correct += int((logits.argmax(1) == batch.labels).sum())
                seen += int(logits.shape[0])
    finally:
        model.train(was)
    return {"samples": seen, "accuracy": correct / seen if seen else None}
