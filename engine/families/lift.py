"""Lift attention blocks whose forward derives the head width from the residual width.

torchvision's Swin (`shifted_window_attention` reshapes qkv to `C // num_heads` with C
the *input* width, then folds the heads back into C) and MaxViT (`reshape(B, G, P, D)`
with D the input width) tie every attention width to the residual stream by Python
arithmetic that no tensor rule can see: the probe then has to lock the attention, and
"prune whole heads" cannot remove any. The lifted forms compute exactly the same thing
on an unpruned model but read the head width from the q/k/v projection and the output
width from the output projection, so head dims, whole heads and the residual width
prune independently. The softmax scale is frozen at lift time (the original forward
computes it from the unpruned width), so pruning zeroed dims leaves the output equal.

Lifting swaps the instance's class for a subclass (isinstance checks and state dicts
are unchanged); `lift_attention` is idempotent and the dependency graph calls it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["lift_attention", "window_attention"]

_SWIN = ("torchvision.models.swin_transformer", ("ShiftedWindowAttention",
                                                 "ShiftedWindowAttentionV2"))
_MAXVIT = ("torchvision.models.maxvit", ("RelativePositionalMultiHeadAttention",))


def _region_mask(ph: int, pw: int, window: list[int], shift: list[int],
                 like: torch.Tensor) -> torch.Tensor:
    """(windows, tokens, tokens) additive mask: -100 between tokens that the cyclic shift
    brought together from different image regions, 0 elsewhere."""
    def labels(n: int, w: int, s: int) -> torch.Tensor:
        ids = torch.zeros(n, device=like.device)
        ids[n - w: n - s] = 1
        ids[n - s:] = 2
        return ids

    wh, ww = window
    region = labels(ph, wh, shift[0])[:, None] * 3 + labels(pw, ww, shift[1])[None, :]
    region = region.view(ph // wh, wh, pw // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
    differ = region[:, None, :] != region[:, :, None]
    return differ.to(like.dtype) * -100.0


def window_attention(m: nn.Module, x: torch.Tensor, rel_bias: torch.Tensor,
                     logit_scale: torch.Tensor | None) -> torch.Tensor:
    """Shifted-window attention of a (B, H, W, C) map, widths read from the weights."""
    b, h, w, c = x.shape
    wh, ww = m.window_size
    pad_b, pad_r = (-h) % wh, (-w) % ww
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    ph, pw = h + pad_b, w + pad_r
    shift = [0 if wh >= ph else m.shift_size[0], 0 if ww >= pw else m.shift_size[1]]
    if sum(shift) > 0:
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    nh, nw = ph // wh, pw // ww
    tokens = wh * ww
    win = x.view(b, nh, wh, nw, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b * nh * nw, tokens, c)
    heads = m.num_heads
    head_dim = m.qkv.weight.shape[0] // 3 // heads
    qkv_bias = m.qkv.bias
    if logit_scale is not None and qkv_bias is not None:  # Swin V2: no key bias
        qkv = F.linear(win, m.qkv.weight).reshape(win.shape[0], tokens, 3, heads, head_dim)
        no_key = torch.tensor([1.0, 0.0, 1.0], device=x.device, dtype=x.dtype).view(3, 1, 1)
        qkv = qkv + qkv_bias.view(3, heads, head_dim) * no_key
    else:
        qkv = F.linear(win, m.qkv.weight, qkv_bias)
        qkv = qkv.reshape(win.shape[0], tokens, 3, heads, head_dim)
    qkv = qkv.permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    if logit_scale is not None:  # cosine attention
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(logit_scale, max=math.log(100.0)).exp()
    else:
        attn = (q * m.lifted_scale) @ k.transpose(-2, -1)
    attn = attn + rel_bias
    if sum(shift) > 0:
        mask = _region_mask(ph, pw, [wh, ww], shift, attn)
        attn = attn.view(b, nh * nw, heads, tokens, tokens) + mask[None, :, None]
        attn = attn.view(-1, heads, tokens, tokens)
    attn = F.dropout(F.softmax(attn, dim=-1), p=m.attention_dropout, training=m.training)
    out = (attn @ v).transpose(1, 2).reshape(win.shape[0], tokens, heads * head_dim)
    out = F.dropout(F.linear(out, m.proj.weight, m.proj.bias), p=m.dropout, training=m.training)
    c_out = out.shape[-1]
    out = out.view(b, nh, nw, wh, ww, c_out).permute(0, 1, 3, 2, 4, 5).reshape(b, ph, pw, c_out)
    if sum(shift) > 0:
        out = torch.roll(out, shifts=(shift[0], shift[1]), dims=(1, 2))
    return out[:, :h, :w, :].contiguous()


def _maxvit_attention(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MaxViT's relative-position attention over (B, G, P, D), head width from to_qkv."""
    b, g, p, _ = x.shape
    heads = m.n_heads
    head_dim = m.to_qkv.weight.shape[0] // 3 // heads
    q, k, v = torch.chunk(m.to_qkv(x), 3, dim=-1)
    q, k, v = (t.reshape(b, g, p, heads, head_dim).permute(0, 1, 3, 2, 4) for t in (q, k, v))
    scores = q @ (k * m.scale_factor).transpose(-2, -1)
    probs = F.softmax(scores + m.get_relative_positional_bias(), dim=-1)
    out = (probs @ v).permute(0, 1, 3, 2, 4).reshape(b, g, p, heads * head_dim)
    return m.merge(out)


_LIFTED: dict[type, type] = {}


def _lifted_class(cls: type) -> type:
    """A module-level subclass of `cls` with the lifted forward (picklable by name)."""
    got = _LIFTED.get(cls)
    if got is not None:
        return got
    name = "Lifted" + cls.__name__
    if cls.__name__ == "RelativePositionalMultiHeadAttention":
        def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
            return _maxvit_attention(self, x)
    elif cls.__name__ == "ShiftedWindowAttentionV2":
        def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
            return window_attention(self, x, self.get_relative_position_bias(), self.logit_scale)
    else:
        def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
            return window_attention(self, x, self.get_relative_position_bias(), None)
    # same __name__ (printouts, labels and class-name lookups stay as they were); the
    # qualified name is what pickle looks up in this module
    lifted = type(cls.__name__, (cls,), {"forward": forward, "__module__": __name__,
                                         "__qualname__": name, "__doc__": __doc__})
    globals()[name] = lifted  # so pickle finds it as engine.families.lift.<name>
    _LIFTED[cls] = lifted
    return lifted


def _liftable(m: nn.Module) -> bool:
    cls = type(m)
    for module, names in (_SWIN, _MAXVIT):
        if cls.__module__ == module and cls.__name__ in names:
            return True
    return False


def lift_attention(model: nn.Module) -> list[str]:
    """Swap every torchvision Swin / MaxViT attention block for its lifted form; returns
    their names. Call on an unpruned model (the frozen softmax scale is read now)."""
    lifted = []
    for name, m in model.named_modules():
        if not _liftable(m):
            continue
        if not hasattr(m, "lifted_scale") and hasattr(m, "qkv"):
            m.lifted_scale = (m.qkv.in_features // m.num_heads) ** -0.5
        m.__class__ = _lifted_class(type(m))
        lifted.append(name)
    return lifted


def __getattr__(name: str) -> type:
    """Unpickling in a fresh process: build the lifted class on first lookup."""
    import importlib

    if name.startswith("Lifted"):
        base = name[len("Lifted"):]
        for module, names in (_SWIN, _MAXVIT):
            if base in names:
                return _lifted_class(getattr(importlib.import_module(module), base))
    raise AttributeError(name)
