"""q/k RMSNorms over ALL heads' concatenated width (OLMoE, OLMo 2/3, FlexOlmo, MiniMax-M2).

Qwen3 and Gemma 3 normalise each head alone (`RMSNorm(head_dim)` after the view): removing
a head leaves every other head's norm as it was. OLMoE instead normalises the whole q
(and k) projection output, `q_norm(q_proj(x))` with `RMSNorm(H * head_dim)`, before the
view: its mean of squares divides by the full width W. Removing heads whose weights are
zero leaves the sum of squares unchanged but divides it by the smaller width W', which
rescales every kept head: whole-head pruning would no longer compute what it did.

The original divisor is kept by folding it into the norm itself, which stays the family's
own class (so pickles and `save_pretrained` see nothing new):

    w x / sqrt(S / W + eps) == (w * sqrt(W / W')) x / sqrt(S / W' + eps * W / W')

with S the sum of squares of the kept channels. `record_norm_widths` stamps W on each such
norm before any pruning (the dependency graph calls it); `refresh_qk_norms`, run by
`refresh_attributes` after every prune, rescales the weight and the module's own epsilon
when the width changed since the stamp. Exact for zeroed channels removed; a model reloaded
with `from_pretrained` takes the config's one `rms_norm_eps` instead of the module's
scaled one, which the refresh reports. Recognised by attribute names; transformers is not
imported.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .attention import _out, find_attention

__all__ = ["NORM_WIDTH_ATTR", "full_width_qk_norms", "record_norm_widths",
           "refresh_qk_norms"]

NORM_WIDTH_ATTR = "_arborist_norm_width"  # the width the norm's weight and epsilon fit
FIRST_WIDTH_ATTR = "_arborist_norm_width0"  # the width before any pruning
_PAIRS = (("q_norm", "q_proj"), ("k_norm", "k_proj"))
_EPS_NAMES = ("variance_epsilon", "eps")


def _eps_name(norm: nn.Module) -> str | None:
    for name in _EPS_NAMES:
        if isinstance(getattr(norm, name, None), float):
            return name
    return None


def is_rms_norm(norm: nn.Module) -> bool:
    """An RMS norm: a 1-D weight, no bias, a float epsilon (HF `*RMSNorm`, nn.RMSNorm)."""
    w = getattr(norm, "weight", None)
    return (isinstance(w, torch.Tensor) and w.dim() == 1
            and getattr(norm, "bias", None) is None and _eps_name(norm) is not None
            and ("rms" in type(norm).__name__.lower() or hasattr(norm, "variance_epsilon")))


def full_width_qk_norms(model: nn.Module) -> list[tuple[str, nn.Module, nn.Module]]:
    """(name, norm, projection) of every q/k norm whose weight spans its projection's whole
    output (more than one head), in model order."""
    out = []
    for info in find_attention(model):
        if info.kind != "split":
            continue
        for norm_name, proj_name in _PAIRS:
            norm, proj = getattr(info.module, norm_name, None), getattr(info.module, proj_name,
                                                                        None)
            w = getattr(norm, "weight", None)
            width = _out(proj)
            if not isinstance(w, torch.Tensor) or w.dim() != 1 or width is None:
                continue
            if w.shape[0] == width and width > info.head_dim:
                out.append((f"{info.name}.{norm_name}", norm, proj))
    return out


def record_norm_widths(model: nn.Module) -> int:
    """Stamp its current width on every full-width q/k RMS norm not stamped yet; returns how
    many were stamped. Call before pruning (afterwards the widths lie)."""
    stamped = 0
    for _, norm, _ in full_width_qk_norms(model):
        if is_rms_norm(norm) and not isinstance(getattr(norm, NORM_WIDTH_ATTR, None), int):
            setattr(norm, NORM_WIDTH_ATTR, int(norm.weight.shape[0]))
            setattr(norm, FIRST_WIDTH_ATTR, int(norm.weight.shape[0]))
            stamped += 1
    return stamped


def refresh_qk_norms(named: list[tuple[str, nn.Module]], report: Any) -> None:
    """Fold the divisor change of every stamped norm whose width moved into its weight and
    epsilon (see the module docstring); idempotent."""
    for name, norm in named:
        old = getattr(norm, NORM_WIDTH_ATTR, None)
        if not isinstance(old, int):
            continue
        new = int(norm.weight.shape[0])
        eps_name = _eps_name(norm)
        if new == old or new == 0 or eps_name is None:
            continue
        with torch.no_grad():
            norm.weight.mul_(math.sqrt(old / new))
        report.note(name, norm, eps_name, getattr(norm, eps_name) * old / new)
        setattr(norm, NORM_WIDTH_ATTR, new)
        report.changed.append(f"{name}.weight: scaled by sqrt({old}/{new}) (divisor kept)")
    scaled = [n for n, m in named if isinstance(getattr(m, NORM_WIDTH_ATTR, None), int)
              and _eps_name(m) is not None and _scaled(m)]
    if scaled:
        more = f" and {len(scaled) - 1} more" if len(scaled) > 1 else ""
        report.problems.append(
            f"{scaled[0]}{more}: "
            "q/k norms over all heads keep their original divisor through a scaled epsilon; "
            "a model reloaded with from_pretrained uses config.rms_norm_eps instead (outputs "
            "move by about eps / mean square); engine.load_state_dict restores it exactly")


def _scaled(norm: nn.Module) -> bool:
    """Whether this norm's epsilon was rescaled (its width moved since it was first stamped)."""
    first = getattr(norm, FIRST_WIDTH_ATTR, None)
    if first is None:
        return False
    return int(norm.weight.shape[0]) != first
