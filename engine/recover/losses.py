"""Recovery losses: distillation from the original model, labels, or both.

The teacher is the model as it was before pruning; its logits carry far more
information per sample than a label (which is why distillation also works on
unlabeled data). Causal LMs (logits N x L x V) are scored per token: next-token
cross-entropy on the input ids and KL to the teacher at every position.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


def logits_of(output: Any) -> torch.Tensor:
    """The logits tensor of a model output (engine.evaluate's rule); an error if none."""
    from ..evaluate.loop import logits_of as find_logits

    logits = find_logits(output)
    if logits is None:
        raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")
    return logits


def distill_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's KL(teacher || student) on softened logits, times T^2 (gradient scale kept).

    Averaged over every position but the class dimension (the last), so sequence
    models weigh each token alike.
    """
    t = float(temperature)
    s = F.log_softmax(student.float().flatten(0, -2) / t, dim=-1)
    p = F.log_softmax(teacher.float().flatten(0, -2) / t, dim=-1)
    return F.kl_div(s, p, reduction="batchmean", log_target=True) * (t * t)


def label_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on class labels (N x C logits)."""
    return F.cross_entropy(logits.float(), labels)


def next_token_ce(logits: torch.Tensor, input_ids: torch.Tensor,
                  attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Causal-LM loss: position i predicts token i + 1; padded positions are ignored."""
    targets = input_ids[:, 1:].clone()
    if attention_mask is not None:
        targets[attention_mask[:, 1:] == 0] = -100
    return F.cross_entropy(logits[:, :-1].float().flatten(0, 1), targets.flatten(),
                           ignore_index=-100)


def is_causal_lm(logits: torch.Tensor, inputs: Any) -> bool:
    """N x L x V logits over `input_ids` of N x L: a language model's next-token scores."""
    ids = inputs.get("input_ids") if isinstance(inputs, Mapping) else None
    return logits.dim() == 3 and ids is not None and tuple(ids.shape) == tuple(logits.shape[:2])


@dataclass(frozen=True)
class LossParts:
    """The batch loss and its terms (detached; read them only when logging: each read syncs)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


def recovery_loss(
    kind: str,
    student: Any,
    teacher: Any,
    labels: torch.Tensor | None,
    inputs: Any,
    *,
    temperature: float,
    features: list[tuple[torch.Tensor, torch.Tensor]] = (),
    feature_weight: float = 1.0,
) -> LossParts:
    """The loss of one batch for `kind` (auto | distill | labels | both)."""
    s = logits_of(student)
    lm = is_causal_lm(s, inputs)
    has_labels = labels is not None or lm
    use_kd = kind in ("auto", "distill", "both")
    use_ce = kind in ("labels", "both") or (kind == "auto" and has_labels)
    if use_ce and not has_labels:
        raise ValueError(f"recovery loss {kind!r} needs labels, and this data has none: "
                         "use an image folder with class subfolders, or loss 'distill'")
    parts: dict[str, torch.Tensor] = {}
    if use_kd:
        if teacher is None:
            raise ValueError("distillation needs the original model as teacher")
        parts["distill"] = distill_kl(s, logits_of(teacher).detach(), temperature)
    if use_ce:
        if lm and labels is None:
            parts["labels"] = next_token_ce(s, inputs["input_ids"], inputs.get("attention_mask"))
        elif lm:
            parts["labels"] = next_token_ce(s, labels)
        else:
            parts["labels"] = label_ce(s, labels)
    if features:
        mse = sum(F.mse_loss(a.float(), b.detach().float()) for a, b in features)
        parts["features"] = mse * feature_weight
    total = sum(parts.values())
    return LossParts(total, {k: v.detach() for k, v in parts.items()})
