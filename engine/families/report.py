"""Did the attention actually shrink? A prune summary that says so, with the reasons.

A transformer whose MLPs halve while every q/k/v projection keeps its width still
"prunes", but keeps 60-70% of its parameters; a user must be told, with the lock
reasons the graph and the head planner gave. `attention_widths` is read before
pruning, `attention_report` after.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from torch import nn

from ..graph.lock_reason import ATTENTION_LOCK_WORDS
from .attention import find_attention

__all__ = ["AttentionReport", "attention_report", "attention_widths", "compare_attention"]

SUMMARY_REASONS = 3  # lock reasons named in the one-line summary



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

    @property
    def unsummarised_reasons(self) -> list[str]:
        """The lock reasons `summary()` had no room for (it names the first three)."""
        return self.reasons[SUMMARY_REASONS:] if self.pruned < self.total else []

    def summary(self) -> str:
        if self.total == 0:
            return "no attention layers recognised"
        line = f"attention layers pruned: {self.pruned} / {self.total}"
        if self.all_full_width:
            why = ("; ".join(self.reasons[:SUMMARY_REASONS])
                   or "no group or head of theirs was selected")
            line = (f"all {self.total} attention layers stayed at full width "
                    f"(q/k/v and heads unchanged): {why}")
        elif self.full_width:
            why = "; ".join(self.reasons[:SUMMARY_REASONS])
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


def attention_widths(model: nn.Module,
                     out_widths: Mapping[str, int | None] | None = None) -> dict[str, int]:
    """Total q/k/v output width of every recognised attention block, by name.

    `out_widths` (layer name -> output width, e.g. a dry-run preview's) replaces the widths
    the weights have now: what the blocks would keep, before anything is pruned.
    """
    names = {id(m): n for n, m in model.named_modules()} if out_widths is not None else {}

    def width(layer: nn.Module, now: int) -> int:
        planned = out_widths.get(names.get(id(layer), "")) if out_widths is not None else None
        return now if planned is None else int(planned)

    out: dict[str, int] = {}
    for info in find_attention(model):
        if info.kind == "mha":
            out[info.name] = width(info.module, int(info.module.embed_dim)) * 3
            continue
        total = 0
        for layer in info.projections:
            w = getattr(layer, "weight", None)
            if w is not None:
                total += width(layer, int(w.shape[0] if isinstance(layer, nn.Linear)
                                          else w.shape[-1]))
        out[info.name] = total
    return out


def attention_report(before: dict[str, int], model: nn.Module,
                     lock_reasons: Iterable[str] = ()) -> AttentionReport:
    """Compare `attention_widths` now with `before`; keep the lock reasons about attention,
    led by the family reasons of the blocks that stayed at full width."""
    report = compare_attention(before, attention_widths(model), lock_reasons)
    modules = dict(model.named_modules())
    named = [why for n in report.full_width
             if (why := family_lock_reason(n, modules.get(n))) is not None]
    report.reasons = list(dict.fromkeys(named + report.reasons))
    return report


def family_lock_reason(name: str, block: nn.Module | None) -> str | None:
    """Why a known attention family cannot lose heads (or head dims), or None."""
    if block is None:
        return None
    if name.rpartition(".")[2] == "EncDecAttention" and hasattr(block, "n_heads"):
        return ("T5 cross-attention (EncDecAttention): its first layer adds a zero position "
                "bias of config.num_heads heads that every cross-attention layer shares, and "
                "config.num_heads also sizes the self-attention, so its heads stay "
                "(its head dims can go)")
    one_kv = getattr(block, "num_kv_heads", None) == 1 and getattr(block, "num_heads", 1) > 1
    if one_kv and hasattr(block, "query_key_value"):
        return ("Falcon with one k/v head (multi_query): every q head is scored against the "
                "one shared k/v head, so the heads are tied together and no head or head dim "
                "can go")
    return None


def compare_attention(before: dict[str, int], after: dict[str, int],
                      lock_reasons: Iterable[str] = ()) -> AttentionReport:
    """Blocks whose q/k/v width shrank from `before` to `after`, and the attention locks."""
    full = [n for n, w in before.items() if after.get(n, w) >= w]
    reasons = list(dict.fromkeys(
        r for r in lock_reasons if any(word in r.lower() for word in ATTENTION_LOCK_WORDS)))
    return AttentionReport(len(before), len(before) - len(full), full, reasons)
