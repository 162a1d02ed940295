"""Did the attention actually shrink? A prune summary that says so, with the reasons.

A transformer whose MLPs halve while every q/k/v projection keeps its width still
"prunes", but keeps 60-70% of its parameters; a user must be told, with the lock
reasons the graph and the head planner gave. `attention_widths` is read before
pruning, `attention_report` after.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from torch import nn

from .attention import find_attention

__all__ = ["AttentionReport", "attention_report", "attention_widths"]

_ATTENTION_WORDS = ("head", "attention", "q/k", "qkv", "matmul", "reshape", "rotary", "rope",
                    "breaks the model's forward", "fixed-size", "joint")


@dataclasses.dataclass
class AttentionReport:
    """Attention layers pruned / total, and why the rest stayed at full width."""

    total: int
    pruned: int
    full_width: list[str]  # attention blocks whose q/k/v widths did not change
    reasons: list[str]  # lock reasons that can concern attention (deduplicated)

    @property
    def all_full_width(self) -> bool:
        return self.total > 0 and self.pruned == 0

    def summary(self) -> str:
        if self.total == 0:
            return "no attention layers recognised"
        line = f"attention layers pruned: {self.pruned} / {self.total}"
        if self.all_full_width:
            why = "; ".join(self.reasons[:3]) or "no group or head of theirs was selected"
            line = (f"all {self.total} attention layers stayed at full width "
                    f"(q/k/v and heads unchanged): {why}")
        elif self.full_width:
            why = "; ".join(self.reasons[:3])
            line += f"; at full width: {', '.join(self.full_width[:3])}" + (
                f" and {len(self.full_width) - 3} more" if len(self.full_width) > 3 else "")
            if why:
                line += f" ({why})"
        return line

    def to_dict(self) -> dict[str, object]:
        """The CLI's `attention` JSON object (plain types only)."""
        return {
            "pruned": self.pruned,
            "total": self.total,
            "full_width": list(self.full_width),
            "reasons": list(self.reasons),
            "all_full_width": self.all_full_width,
            "summary": self.summary(),
        }


def attention_widths(model: nn.Module) -> dict[str, int]:
    """Total q/k/v output width of every recognised attention block, by name."""
    out: dict[str, int] = {}
    for info in find_attention(model):
        if info.kind == "mha":
            out[info.name] = int(info.module.embed_dim) * 3
            continue
        total = 0
        for layer in info.projections:
            w = getattr(layer, "weight", None)
            if w is not None:
                total += int(w.shape[0] if isinstance(layer, nn.Linear) else w.shape[-1])
        out[info.name] = total
    return out


def attention_report(before: dict[str, int], model: nn.Module,
                     lock_reasons: Iterable[str] = ()) -> AttentionReport:
    """Compare `attention_widths` now with `before`; keep the lock reasons about attention."""
    after = attention_widths(model)
    full = [n for n, w in before.items() if after.get(n, w) >= w]
    reasons = list(dict.fromkeys(
        r for r in lock_reasons if any(word in r.lower() for word in _ATTENTION_WORDS)))
    return AttentionReport(len(before), len(before) - len(full), full, reasons)
