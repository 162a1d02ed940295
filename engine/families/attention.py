"""Find the attention layers of Hugging Face, timm and torch models, and read their heads.

Each family keeps its head layout in plain attributes that forward reads
(`self.head_dim` in a `view(..., -1, head_dim)`, `self.num_heads` in a timm
`reshape(B, N, 3, num_heads, head_dim)`). Families are recognised by those
attributes and by the names of their projection layers, never by importing
the library, so the engine stays importable without transformers or timm.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from torch import nn

__all__ = ["AttentionInfo", "find_attention", "detect_num_heads", "head_layout", "packed_units",
           "packed_style"]


@dataclasses.dataclass
class AttentionInfo:
    """One attention block: how its heads are laid out right now.

    kind: "split" (q_proj/k_proj/v_proj with head_dim: Llama, Qwen2, Mistral, HF ViT),
    "t5" (q/k/v/o with n_heads and key_value_proj_dim: T5, mT5, UMT5),
    "bert" (query/key/value with attention_head_size), "gpt2" (fused Conv1D c_attn),
    "fused" (timm/torchvision qkv Linear with num_heads), "mha" (nn.MultiheadAttention),
    "packed" (one q|k|v Linear of a decoder, laid out as `packed_layout` says: Phi-3's
    `qkv_proj`, Falcon's and GPT-NeoX's `query_key_value`).
    """

    name: str
    module: nn.Module
    kind: str
    heads: int
    kv_heads: int
    head_dim: int
    projections: dict[nn.Module, int]  # layer -> its head count (Torch-Pruning's num_heads)
    rope: bool = False


def _out(m: nn.Module | None) -> int | None:
    """Output width of a projection (Linear or HF Conv1D, whose weight is (in, out))."""
    if isinstance(m, nn.Linear):
        return int(m.weight.shape[0])
    if m is not None and isinstance(getattr(m, "nf", None), int) and hasattr(m, "weight"):
        return int(m.weight.shape[1])
    return None


def _int_attr(m: nn.Module, *names: str) -> int | None:
    for n in names:
        v = getattr(m, n, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def _split(m: nn.Module) -> tuple[int, int, int] | None:
    q, k, v = (getattr(m, n, None) for n in ("q_proj", "k_proj", "v_proj"))
    d = _int_attr(m, "head_dim")
    wq, wk = _out(q), _out(k)
    if d is None or wq is None or wk is None or not isinstance(v, nn.Module):
        return None
    if wq % d or wk % d:
        return None
    return wq // d, wk // d, d


def is_t5(m: nn.Module) -> bool:
    """T5-style attention: q/k/v/o Linears, `n_heads` and `key_value_proj_dim` (T5 reshapes
    with `view(..., -1, key_value_proj_dim)`: heads are inferred, so the stored counts and
    `inner_dim` must follow every prune)."""
    return all(isinstance(getattr(m, n, None), nn.Linear) for n in ("q", "k", "v", "o")) and (
        _int_attr(m, "key_value_proj_dim") is not None and _int_attr(m, "n_heads") is not None)


def _t5(m: nn.Module) -> tuple[int, int, int] | None:
    if not is_t5(m):
        return None
    h = _int_attr(m, "n_heads")
    wq, wk, wv = (_out(getattr(m, n)) for n in ("q", "k", "v"))
    assert h is not None and wq is not None
    if wq % h or wq != wk or wq != wv:
        return None
    return h, h, wq // h


def _bert(m: nn.Module) -> tuple[int, int, int] | None:
    d = _int_attr(m, "attention_head_size")
    wq = _out(getattr(m, "query", None))
    if d is None or wq is None or wq % d or not isinstance(getattr(m, "key", None), nn.Module):
        return None
    return wq // d, wq // d, d


def _gpt2(m: nn.Module) -> tuple[int, int, int] | None:
    d = _int_attr(m, "head_dim")
    w = _out(getattr(m, "c_attn", None))
    if d is None or w is None or getattr(m, "q_attn", None) is not None or w % (3 * d):
        return None
    return w // (3 * d), w // (3 * d), d


def fused_names(m: nn.Module) -> tuple[str, str]:
    """(fused projection, head count) attribute names: timm/torchvision `qkv`/`num_heads`,
    torchvision MaxViT `to_qkv`/`n_heads`."""
    if isinstance(getattr(m, "to_qkv", None), nn.Linear) and _int_attr(m, "n_heads"):
        return "to_qkv", "n_heads"
    return "qkv", "num_heads"


def _fused(m: nn.Module) -> tuple[int, int, int] | None:
    proj_name, heads_name = fused_names(m)
    qkv = getattr(m, proj_name, None)
    h = _int_attr(m, heads_name)
    w = _out(qkv)
    if h is None or w is None or not isinstance(qkv, nn.Linear) or w % (3 * h):
        return None
    d = _int_attr(m, "head_dim") or w // (3 * h)
    if w != 3 * h * d:
        return None
    return h, h, d


def _packed_proj(m: nn.Module) -> nn.Linear | None:
    for name in ("qkv_proj", "query_key_value"):
        layer = getattr(m, name, None)
        if isinstance(layer, nn.Linear):
            return layer
    return None


def packed_style(m: nn.Module) -> str | None:
    """How a decoder packs q, k and v into one projection, from attribute names alone:
    "blocks" (Phi-3, Falcon's multi-query: all q heads, then all k, then all v),
    "groups" (Falcon's new decoder architecture: per KV head its q heads, its k, its v),
    "interleaved" (Falcon's classic layout, GPT-NeoX: q, k, v of each head in turn)."""
    if isinstance(getattr(m, "qkv_proj", None), nn.Linear) and _int_attr(m, "head_dim") \
            and _int_attr(m, "num_key_value_heads") and isinstance(getattr(m, "o_proj", None),
                                                                    nn.Module):
        return "blocks"
    if not isinstance(getattr(m, "query_key_value", None), nn.Linear) or \
            not isinstance(getattr(m, "dense", None), nn.Module):
        return None
    if _int_attr(m, "head_size") and not hasattr(m, "num_kv_heads"):
        return "interleaved"  # GPT-NeoX
    if not all(_int_attr(m, a) for a in ("head_dim", "num_heads", "num_kv_heads")):
        return None
    if getattr(m, "new_decoder_architecture", False):
        return "groups"
    return "blocks" if getattr(m, "multi_query", False) else "interleaved"


def _packed(m: nn.Module) -> tuple[int, int, int] | None:
    """(heads, kv_heads, head_dim) of a packed q|k|v decoder block, from its current width:
    head_dim is fixed (RoPE), the KV head count is stored, the q heads follow."""
    style = packed_style(m)
    w = _out(_packed_proj(m))
    if style is None or w is None:
        return None
    hkv = _int_attr(m, "num_key_value_heads", "num_kv_heads") or 1
    stored = _int_attr(m, "num_heads", "_arborist_num_heads")  # Falcon; Phi-3 once lifted
    if stored is not None:  # the truth (whole-head pruning updates it first): d follows
        per_d = 3 * stored if style == "interleaved" else stored + 2 * hkv
        if w % per_d == 0 and stored % hkv == 0:
            return stored, stored if style == "interleaved" else hkv, w // per_d
    d = _int_attr(m, "head_dim", "head_size")
    if d is None or w % d:
        return None
    slots = w // d
    if style == "interleaved":
        return (slots // 3, slots // 3, d) if slots % 3 == 0 else None
    h = slots - 2 * hkv
    return (h, hkv, d) if h > 0 and h % hkv == 0 else None


def packed_units(m: nn.Module, width: int) -> tuple[np.ndarray, int, int] | None:
    """For each of `width` output positions of a packed projection: the removable unit it
    belongs to (a KV head with its q heads; -1: shared by all units, Falcon's single
    multi-query k/v head), with the unit count and the q heads per unit."""
    got = _packed(m)
    style = packed_style(m)
    if got is None or style is None or _out(_packed_proj(m)) != width:
        return None
    h, hkv, d = got
    slot = np.arange(width) // d
    if style == "interleaved":
        return slot // 3, h, 1
    if style == "groups":
        return slot // (h // hkv + 2), hkv, h // hkv
    rep = h // hkv
    if hkv == 1 and h > 1:  # multi-query: each q head alone; k and v stay
        return np.where(slot < h, slot, -1), h, 1
    unit = np.where(slot < h, slot // rep, (slot - h) % hkv)
    return unit, hkv, rep


def _projections(kind: str, m: nn.Module, h: int, hkv: int) -> dict[nn.Module, int]:
    if kind == "split":
        return {m.q_proj: h, m.k_proj: hkv, m.v_proj: hkv}
    if kind == "bert":
        return {m.query: h, m.key: h, m.value: h}
    if kind == "t5":
        return {m.q: h, m.k: h, m.v: h}
    if kind == "gpt2":
        return {m.c_attn: h}
    if kind == "fused":
        return {getattr(m, fused_names(m)[0]): h}
    if kind == "packed":
        return {_packed_proj(m): h}
    return {m: h}


def head_layout(m: nn.Module) -> tuple[str, int, int, int] | None:
    """(kind, heads, kv_heads, head_dim) of an attention module, from its current widths."""
    if isinstance(m, nn.MultiheadAttention):
        return "mha", m.num_heads, m.num_heads, m.head_dim
    readers = (("split", _split), ("t5", _t5), ("bert", _bert), ("gpt2", _gpt2),
               ("fused", _fused), ("packed", _packed))
    for kind, read in readers:
        got = read(m)
        if got is not None:
            return (kind, *got)
    return None


def _uses_rope(model: nn.Module) -> bool:
    """Rotary embeddings: a rotary module (HF `rotary_emb`, timm `rope`) or a RoPE config."""
    for m in model.modules():
        if "rotary" in type(m).__name__.lower():
            return True
    cfg = getattr(model, "config", None)
    params = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None)
    return bool(params) or getattr(cfg, "rope_theta", None) is not None


def find_attention(model: nn.Module) -> list[AttentionInfo]:
    """Every attention block whose head layout this module understands, in model order."""
    rope = _uses_rope(model)
    out: list[AttentionInfo] = []
    taken: set[int] = set()
    for name, m in model.named_modules():
        if id(m) in taken or not m._modules:  # a block holds its projections as submodules
            continue
        got = head_layout(m)
        if got is None:
            continue
        kind, h, hkv, d = got
        proj = _projections(kind, m, h, hkv)
        taken.update(id(p) for p in proj)
        out.append(AttentionInfo(name, m, kind, h, hkv, d, proj, rope and kind != "mha"))
    return out


def detect_num_heads(model: nn.Module) -> dict[nn.Module, int]:
    """Torch-Pruning's `num_heads` for `model`: each q/k/v (or fused qkv) layer -> its heads.

    GQA layers get their own counts (k_proj/v_proj: KV heads), as Torch-Pruning expects.
    """
    heads: dict[nn.Module, int] = {}
    for info in find_attention(model):
        heads.update(info.projections)
    return heads
