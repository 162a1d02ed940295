"""Lift packed q|k|v decoder attention (Phi-3, GPT-NeoX) to a form whose heads can go.

Phi-3 slices its `qkv_proj` output at fixed bounds (`config.num_attention_heads *
head_dim`) and GPT-NeoX `chunk`s each head's 3 * head_size block in three: both cut
the channel dim itself into fixed pieces, which the tracer must lock, so no head could
ever be removed. The lifted forward first views the output as (slots, head_dim) -- the
head axis is then a structural dim of the channel layout -- and cuts along that axis
with counts read from the module (`_arborist_num_heads` and `num_key_value_heads`,
kept current by whole-head pruning). On an unpruned model it computes exactly what the
original does. Falcon needs no lift: its forward already views before it cuts.

The helpers of the model's own module (rotary embedding, attention interface) are
looked up in `sys.modules`, so the engine never imports transformers.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

from .refresh import HEAD_COUNT_ATTR

__all__ = ["lift_packed_attention"]

_CLASSES = {
    ("transformers.models.phi3.modeling_phi3", "Phi3Attention"): "phi3",
    ("transformers.models.gpt_neox.modeling_gpt_neox", "GPTNeoXAttention"): "neox",
}


def _hf(m: nn.Module) -> Any:
    base = type(m).__mro__[1] if type(m).__name__ == type(m).__mro__[1].__name__ else type(m)
    return sys.modules[base.__module__]


def _attend(m: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    hf = _hf(m)
    interface = hf.ALL_ATTENTION_FUNCTIONS.get_interface(
        m.config._attn_implementation, hf.eager_attention_forward)
    return interface(m, q, k, v, mask, dropout=0.0 if not m.training else m.attention_dropout,
                     scaling=m.scaling, **kwargs)


def _phi3_forward(self: nn.Module, hidden_states: torch.Tensor,
                  position_embeddings: tuple[torch.Tensor, torch.Tensor],
                  attention_mask: torch.Tensor | None, cache: Any = None,
                  past_key_values: Any = None, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    shape = hidden_states.shape[:-1]
    h, hkv = getattr(self, HEAD_COUNT_ATTR), self.num_key_value_heads
    slots = self.qkv_proj(hidden_states).view(*shape, -1, self.head_dim)
    q = slots[..., :h, :].transpose(1, 2)
    k = slots[..., h:h + hkv, :].transpose(1, 2)
    v = slots[..., h + hkv:, :].transpose(1, 2)
    cos, sin = position_embeddings
    q, k = _hf(self).apply_rotary_pos_emb(q, k, cos, sin)
    cache = cache if cache is not None else past_key_values
    if cache is not None:
        k, v = cache.update(k, v, self.layer_idx, kwargs=kwargs)
    out, weights = _attend(self, q, k, v, attention_mask,
                           sliding_window=getattr(self.config, "sliding_window", None), **kwargs)
    return self.o_proj(out.reshape(*shape, -1).contiguous()), weights


def _neox_forward(self: nn.Module, hidden_states: torch.Tensor,
                  attention_mask: torch.Tensor | None, layer_past: Any = None,
                  position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                  **kwargs: Any) -> tuple[torch.Tensor, Any]:
    shape = hidden_states.shape[:-1]
    qkv = self.query_key_value(hidden_states).view(*shape, -1, 3, self.head_size)
    q, k, v = (qkv[..., i, :].transpose(1, 2) for i in range(3))
    cos, sin = position_embeddings
    q, k = _hf(self).apply_rotary_pos_emb(q, k, cos, sin)
    if layer_past is not None:
        k, v = layer_past.update(k, v, self.layer_idx)
    out, weights = _attend(self, q, k, v, attention_mask, **kwargs)
    return self.dense(out.reshape(*shape, -1).contiguous()), weights


_LIFTED: dict[type, type] = {}


def _lifted_class(cls: type, kind: str) -> type:
    got = _LIFTED.get(cls)
    if got is None:
        forward = _phi3_forward if kind == "phi3" else _neox_forward
        name = "Lifted" + cls.__name__
        got = type(cls.__name__, (cls,), {"forward": forward, "__module__": __name__,
                                          "__qualname__": name, "__doc__": __doc__})
        globals()[name] = got  # pickle finds it as engine.families.lift_packed.<name>
        _LIFTED[cls] = got
    return got


def lift_packed_attention(model: nn.Module) -> list[str]:
    """Swap Phi-3 / GPT-NeoX attention for the lifted form (idempotent); returns the names.
    Phi-3 blocks get their q head count stamped, from the unpruned widths."""
    lifted = []
    for name, m in model.named_modules():
        kind = _CLASSES.get((type(m).__module__, type(m).__name__))
        if kind is None:
            continue
        if kind == "phi3" and not hasattr(m, HEAD_COUNT_ATTR):
            width = m.qkv_proj.weight.shape[0] // m.head_dim
            setattr(m, HEAD_COUNT_ATTR, width - 2 * m.num_key_value_heads)
        m.__class__ = _lifted_class(type(m), kind)
        lifted.append(name)
    return lifted


def __getattr__(name: str) -> type:
    """Unpickling in a fresh process: build the lifted class on first lookup."""
    import importlib

    for (module, cls_name), kind in _CLASSES.items():
        if name == "Lifted" + cls_name:
            return _lifted_class(getattr(importlib.import_module(module), cls_name), kind)
    raise AttributeError(name)
