"""What an evaluation measured: plain numbers, exact sums over every sample.

Accuracy/top-5 need labels; agreement/KL (classifiers) or cosine/relative error (other
outputs) need a reference model; perplexity needs a causal LM on token sequences.
Anything not measured stays None and is left out of `as_dict()`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Metrics:
    """`samples` evaluated, `skipped` unreadable; the rest None unless measured.

    `accuracy`, `top5`: fractions of labeled samples; `agreement`: fraction whose top-1
    equals the reference's (per token for LMs); `kl`: mean KL(reference || model) of the
    softmax outputs, in nats; `cosine`: mean per-sample cosine similarity of the outputs
    to the reference's; `relative_error`: ||out - ref|| / ||ref|| over all outputs;
    `perplexity`: exp(mean next-token negative log-likelihood).
    """

    samples: int = 0
    skipped: int = 0
    accuracy: float | None = None
    top5: float | None = None
    agreement: float | None = None
    kl: float | None = None
    cosine: float | None = None
    relative_error: float | None = None
    perplexity: float | None = None
    tokens: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


class Totals:
    """Running float64 sums on the model's device (no host sync per batch)."""

    NAMES = ("samples", "labeled", "correct", "correct5", "top5_samples", "compared", "agree",
             "kl", "cos", "cos_samples", "err_sq", "ref_sq", "nll", "tokens")

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor | float] = {n: 0.0 for n in self.NAMES}

    def add(self, name: str, value: torch.Tensor | float) -> None:
        if isinstance(value, torch.Tensor):
            value = value.detach().to(torch.float64)
        self._sums[name] = self._sums[name] + value

    def values(self) -> dict[str, float]:
        return {k: float(v) for k, v in self._sums.items()}


def finish(totals: Totals, skipped: int) -> Metrics:
    s = totals.values()
    m = Metrics(samples=int(s["samples"]), skipped=int(skipped))
    if s["labeled"]:
        m.accuracy = s["correct"] / s["labeled"]
        if s["top5_samples"]:
            m.top5 = s["correct5"] / s["top5_samples"]
    if s["compared"]:
        m.agreement = s["agree"] / s["compared"]
        m.kl = s["kl"] / s["compared"]
    if s["cos_samples"]:
        m.cosine = s["cos"] / s["cos_samples"]
        m.relative_error = math.sqrt(s["err_sq"]) / math.sqrt(s["ref_sq"]) if s["ref_sq"] else (
            0.0 if s["err_sq"] == 0 else math.inf)
    if s["tokens"]:
        m.tokens = int(s["tokens"])
        m.perplexity = math.exp(s["nll"] / s["tokens"])
    return m
