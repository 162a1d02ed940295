"""A calibration loss for gradient criteria (taylor, hessian) from the user's data.

With labels: cross-entropy. Without: KL divergence of the model's softmax to the
original model's (fixed at the time of the call), so the scores measure how much
each channel matters for what the model already does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CALIBRATION_SAMPLES = 64  # one batch: enough for stable channel rankings, still quick


def data_calibration(
    source: Any, reference: Any, samples: int = CALIBRATION_SAMPLES, seed: int = 0
) -> Callable[[Any], Any]:
    """`(model) -> loss` on up to `samples` samples of `source` (an engine.data.DataSource)."""
    import copy

    import torch
    import torch.nn.functional as F

    from ..data import DataError, make_loader, subset
    from ..evaluate import logits_of
    from ..io import call_with

    batch = next(iter(make_loader(subset(source, samples, seed), batch_size=samples,
                                  num_workers=0)), None)
    if batch is None:
        raise DataError(f"{source.path}: no readable sample to calibrate on")
    inputs, labels = batch.inputs, batch.labels
    target_probs = None
    if labels is None:
        ref = copy.deepcopy(reference).eval()  # the scores must not follow later pruning
        with torch.no_grad():
            ref_logits = logits_of(call_with(ref, inputs))
        if ref_logits is None:
            raise DataError("the model returned no tensor to compare the calibration to")
        target_probs = F.softmax(ref_logits.float(), dim=-1)
        del ref

    def loss(model: Any) -> Any:
        logits = logits_of(call_with(model, inputs))
        if logits is None:
            raise DataError("the model returned no tensor to compute a calibration loss on")
        if labels is not None:
            return F.cross_entropy(logits.float(), labels)
        return F.kl_div(F.log_softmax(logits.float(), dim=-1), target_probs,
                        reduction="batchmean")

    return loss
