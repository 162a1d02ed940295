"""Couplings that live in a family's Python code, not in its tensors.

BERT and Hugging Face ViT view q, k and v with ONE attribute
(`attention_head_size` / `head_dim`). The traced ops couple q with k (q @ k^T)
and v with the output projection, but nothing ties q/k's head size to v's: the
graph would offer them as two groups that could shrink differently, which no
attribute can then describe. Uniting q, k and v position by position (what
Torch-Pruning does for declared heads) makes one group: pruning it narrows every
head of q, k and v alike, and `refresh_attributes` sets the one head size.
Rotary and GQA blocks are left alone (their q and v differ in shape, and RoPE
already fixes head_dim).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .attention import find_attention

__all__ = ["shared_head_size_layers", "couple_shared_head_size"]


def shared_head_size_layers(model: nn.Module) -> list[tuple[nn.Module, ...]]:
    """(q, k, v) of every attention block that reads one head size for all three."""
    out: list[tuple[nn.Module, ...]] = []
    for info in find_attention(model):
        if info.rope or info.heads != info.kv_heads:
            continue
        if info.kind == "bert":
            out.append((info.module.query, info.module.key, info.module.value))
        elif info.kind == "t5":
            out.append((info.module.q, info.module.k, info.module.v))
        elif info.kind == "split":
            out.append((info.module.q_proj, info.module.k_proj, info.module.v_proj))
    return out


def couple_shared_head_size(model: nn.Module, tracer: Any) -> int:
    """Unite the out channels of q, k and v position by position in a finished trace.

    Returns how many blocks were coupled. Skips blocks whose layers were not traced
    or whose widths differ.
    """
    coupled = 0
    for layers in shared_head_size_layers(model):
        ports = [tracer.ports.get((id(m), "out", None)) for m in layers]
        if any(p is None for p in ports) or len({p.slots.shape for p in ports}) != 1:
            continue
        for p in ports[1:]:
            tracer.slots.unite(ports[0].slots, p.slots)
        coupled += 1
    return coupled
