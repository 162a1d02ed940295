"""After pruning, bring the attributes (and HF config) that forward reads back in line.

Pruning slices tensors; forwards of real model families also read plain
attributes: Llama's `num_key_value_groups` (GQA repeat), BERT's
`all_head_size`, GPT-2's `split_size`, timm's `num_heads`/`attn_dim`, and the
Hugging Face config (`hidden_size`, `num_attention_heads`, `head_dim`, ...) that
`generate()`, rotary embeddings and re-instantiation use. Torch-Pruning leaves
this to its users; a no-code tool must do it, so `refresh_attributes` derives
every value from the pruned weights.

Which way a projection shrank (fewer heads or narrower heads) is decided by the
head count stored on the module: whole-head pruning (engine/graph/heads.py)
updates it before calling us, so a shrink it does not explain narrowed every
head. Llama- and DETR-style blocks store only `head_dim` and reshape with
`view(..., -1, head_dim)`: read from the widths alone, narrower heads would look
like fewer heads (DETR: 4 heads of 16 pruned to 4 of 8 would become 2 of 16, and
each new head would mix two old ones, with unchanged shapes). So
`record_head_counts` stamps their head counts on them before any pruning (the
dependency graph calls it when it is built), and whole-head pruning lowers the
stamp like any stored count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from torch import nn

from .attention import (
    _int_attr,
    _out,
    find_attention,
    fused_names,
    head_layout,
    is_t5,
    packed_style,
)
from .moe import expert_width, is_fused_experts, refresh_moe
from .qk_norm import refresh_qk_norms
from .t5 import fold_decoder_output_scale

__all__ = ["HEAD_COUNT_ATTR", "KV_COUNT_ATTR", "RefreshReport", "record_head_counts",
           "refresh_attributes"]

HEAD_COUNT_ATTR = "_arborist_num_heads"  # stamped where a block stores no head count
KV_COUNT_ATTR = "_arborist_num_kv_heads"


@dataclasses.dataclass
class RefreshReport:
    """What `refresh_attributes` changed, and what it could not express."""

    changed: list[str] = dataclasses.field(default_factory=list)  # "path.attr: old -> new"
    problems: list[str] = dataclasses.field(default_factory=list)

    def note(self, where: str, obj: object, attr: str, value: object) -> None:
        old = getattr(obj, attr, None)
        if old != value:
            setattr(obj, attr, value)
            self.changed.append(
                f"{where}.{attr}: {old} -> {value}" if where else f"{attr}: {old} -> {value}"
            )


# ------------------------------------------------------------------ index
@dataclasses.dataclass
class _Index:
    """The few modules refresh can change, found once per model structure.

    Refreshing runs after every pruned group; walking every module each time made
    a step quadratic (densenet201: 200 groups x 700 modules, half of its step). So the
    object that prunes a model (its dependency graph, a previewer's meta copy) builds
    one with `module_index` and passes it to every refresh; pruning never adds modules.
    """

    named: list[tuple[str, nn.Module]]  # every module, named_modules order
    layers: list[tuple[str, nn.Module]]  # Linear, Embedding, HF Conv1D
    attention: list[tuple[str, nn.Module, str]]  # (name, module, kind)
    mlps: list[nn.Module]  # candidates for _intermediate_sizes
    heads: list[nn.Module]  # candidates for the config's head counts (find_attention's)
    parent: dict[int, nn.Module] = dataclasses.field(default_factory=dict)  # id(child) -> parent
    owner: dict[int, nn.Module] = dataclasses.field(default_factory=dict)  # id(param) -> module
    tied: dict[int, list[int]] = dataclasses.field(default_factory=dict)  # id(layer) -> sharers
    by_id: dict[int, nn.Module] = dataclasses.field(default_factory=dict)
    names: dict[int, str] = dataclasses.field(default_factory=dict)
    attention_by_id: dict[int, tuple[str, nn.Module, str]] | None = None
    # per-layer tables the config is derived from, so a partial refresh re-reads only
    # the entries a pruned group touched (None until the first refresh fills them)
    head_table: dict[int, _Layout | None] | None = None
    mlp_table: dict[int, int | None] | None = None


@dataclasses.dataclass
class _Layout:
    kind: str
    heads: int
    kv_heads: int
    head_dim: int


def _is_layer(m: nn.Module) -> bool:
    return isinstance(m, (nn.Linear, nn.Embedding)) or (hasattr(m, "nf") and hasattr(m, "nx"))


def _is_mlp(m: nn.Module) -> bool:
    return type(m).__name__.endswith("Intermediate") or is_fused_experts(m) or any(
        getattr(m, a, None) is not None
        for a in ("gate_proj", "up_proj", "fc1", "c_fc", "wi", "wi_0", "dense_h_to_4h",
                  "gate_up_proj"))


def module_index(model: nn.Module) -> _Index:
    """Index of `model`'s current module tree (one walk). Valid until a module is added,
    removed or replaced; keep it for as long as only pruning changes the model."""
    named = list(model.named_modules())
    layers = [(n, m) for n, m in named if _is_layer(m)]
    # attention blocks and MLPs hold their projections as submodules: leaves never are
    blocks = [(n, m) for n, m in named if m._modules]
    return _Index(
        named, layers,
        [(n, m, k) for n, m in blocks if (k := _kind_of(m)) is not None],
        # fused experts hold raw parameters, maybe no submodule (GPT-OSS)
        [m for _, m in named if (m._modules or is_fused_experts(m)) and _is_mlp(m)],
        _head_candidates(model, blocks),
        {id(c): m for _, m in named for c in m._modules.values() if c is not None},
        {id(p): m for _, m in named for p in m._parameters.values() if p is not None},
        _tied_layers(layers),
        {id(m): m for _, m in named},
        {id(m): n for n, m in named},
    )


def _tied_layers(layers: list[tuple[str, nn.Module]]) -> dict[int, list[int]]:
    """Layers sharing a weight (tied lm_head / embedding): pruning one reshapes the other."""
    by_weight: dict[int, list[int]] = {}
    for _, m in layers:
        w = getattr(m, "weight", None)
        if w is not None:
            by_weight.setdefault(id(w), []).append(id(m))
    return {i: ids for ids in by_weight.values() if len(ids) > 1 for i in ids}


def affected_modules(index: _Index, touched: Iterable[object]) -> dict[int, nn.Module] | None:
    """The touched modules, their ancestors (which hold head counts and widths) and
    their tied twins, by id; None when a touched object is unknown (refresh everything)."""
    ids: dict[int, nn.Module] = {}
    for obj in touched:
        if obj is None:
            continue  # a functional op: nothing to refresh
        if not isinstance(obj, nn.Module):
            obj = index.owner.get(id(obj))
        if obj is None or id(obj) not in index.by_id:
            return None  # not in this model's index (stale or foreign): refresh everything
        for start in (id(obj), *index.tied.get(id(obj), ())):
            cur: nn.Module | None = index.by_id[start]
            while cur is not None and id(cur) not in ids:
                ids[id(cur)] = cur
                cur = index.parent.get(id(cur))
    return ids


def _head_candidates(model: nn.Module, named: list[tuple[str, nn.Module]]) -> list[nn.Module]:
    """What `find_attention` finds now, plus blocks recognized by attribute names alone
    (their widths may only fit later); each refresh re-reads their layouts. `named`:
    the modules that have submodules (only those can be attention blocks)."""
    found = find_attention(model)
    ids = {id(i.module) for i in found}
    projections = {id(p) for i in found for p in i.projections}
    return [m for _, m in named
            if id(m) in ids or (id(m) not in projections and _kind_of(m) is not None)]


# ------------------------------------------------------------------ heads
def _widths(m: nn.Module, kind: str) -> tuple[int, int, int] | None:
    """Current (q, k, v) output widths of an attention module."""
    if kind == "split":
        ws = [_out(getattr(m, n, None)) for n in ("q_proj", "k_proj", "v_proj")]
    elif kind == "bert":
        ws = [_out(getattr(m, n, None)) for n in ("query", "key", "value")]
    elif kind == "t5":
        ws = [_out(getattr(m, n, None)) for n in ("q", "k", "v")]
    else:
        w = _out(getattr(m, "c_attn" if kind == "gpt2" else fused_names(m)[0], None))
        ws = [w // 3] * 3 if w is not None and w % 3 == 0 else [None]
    return tuple(ws) if all(ws) else None  # type: ignore[return-value]


def _layout_now(m: nn.Module, kind: str) -> tuple[int, int, int] | str:
    """(heads, kv_heads, head_dim) that the pruned widths imply, or why there is none.

    A head count stored on the module is the truth (whole-head pruning updates it
    first, so a shrink it does not explain narrowed the heads). Llama-style blocks
    store none; their head_dim is fixed by RoPE, so the heads must have changed.
    """
    if kind == "packed":  # head_dim and the KV count are stored; the q heads follow
        got = head_layout(m)
        if got is None or got[0] != "packed":
            return "its packed q|k|v width does not fit its head_dim and KV heads"
        return got[1], got[2], got[3]
    widths = _widths(m, kind)
    if widths is None:
        return "its q/k/v widths cannot be read"
    wq, wk, wv = widths
    h = _int_attr(m, "num_heads", "num_attention_heads", "n_heads", HEAD_COUNT_ATTR)
    if h is not None:
        if wq % h:
            return f"q width {wq} does not split into its {h} heads"
        d = wq // h
        groups = _int_attr(m, "num_key_value_groups") or 1
        hkv = _int_attr(m, "num_key_value_heads", KV_COUNT_ATTR) or max(h // groups, 1)
    else:
        d = _int_attr(m, "head_dim") or 0
        if not d or wq % d or wk % d:
            return f"q/k widths {wq}/{wk} are not multiples of head_dim {d}"
        h, hkv = wq // d, wk // d
    if wk != hkv * d or wv != hkv * d or h % hkv:
        return f"q/k/v widths {wq}/{wk}/{wv} do not fit {h} heads and {hkv} KV heads of {d}"
    return h, hkv, d


def record_head_counts(model: nn.Module) -> int:
    """Stamp (heads, kv_heads) on every q/k/v block that stores only `head_dim`, from its
    current (unpruned) widths; blocks already stamped or storing counts are left alone.
    Returns how many were stamped. Call before pruning: afterwards the widths lie."""
    stamped = 0
    for m in model.modules():
        if not m._modules or _kind_of(m) != "split":
            continue
        if _int_attr(m, "num_heads", "num_attention_heads", HEAD_COUNT_ATTR) is not None:
            continue
        widths = _widths(m, "split")
        d = _int_attr(m, "head_dim")
        if widths is None or not d or any(w % d for w in widths) or widths[1] != widths[2]:
            continue
        setattr(m, HEAD_COUNT_ATTR, widths[0] // d)
        setattr(m, KV_COUNT_ATTR, widths[1] // d)
        stamped += 1
    return stamped


def _kind_of(m: nn.Module) -> str | None:
    """The family of an attention module from its attribute names alone (widths may be stale)."""
    if isinstance(m, nn.MultiheadAttention):
        return None  # engine.function's own MHA pruner keeps it consistent

    def has(*names: str) -> bool:  # EVA keeps q_proj = None next to a fused qkv
        return all(isinstance(getattr(m, n, None), nn.Module) for n in names)

    if has("q_proj", "k_proj", "v_proj") and _int_attr(m, "head_dim"):
        return "split"
    if is_t5(m):
        return "t5"
    if has("query", "key", "value") and _int_attr(m, "attention_head_size"):
        return "bert"
    if hasattr(m, "c_attn") and _int_attr(m, "split_size") and getattr(m, "q_attn", None) is None:
        return "gpt2"
    proj_name, heads_name = fused_names(m)
    if isinstance(getattr(m, proj_name, None), nn.Linear) and _int_attr(m, heads_name):
        return "fused"
    if packed_style(m) is not None:
        return "packed"
    return None


def _apply_layout(
    name: str, m: nn.Module, kind: str, new: tuple[int, int, int], rep: RefreshReport
) -> None:
    h, hkv, d = new
    if kind == "split":
        rep.note(name, m, "head_dim", d)
        if hasattr(m, "num_key_value_groups"):
            rep.note(name, m, "num_key_value_groups", h // hkv)
        for attr in ("num_heads", "num_attention_heads"):
            if _int_attr(m, attr):
                rep.note(name, m, attr, h)
        if _int_attr(m, "num_key_value_heads"):
            rep.note(name, m, "num_key_value_heads", hkv)
    elif kind == "t5":
        rep.note(name, m, "key_value_proj_dim", d)
        rep.note(name, m, "n_heads", h)
        rep.note(name, m, "inner_dim", h * d)
    elif kind == "bert":
        rep.note(name, m, "attention_head_size", d)
        rep.note(name, m, "num_attention_heads", h)
        if hasattr(m, "all_head_size"):
            rep.note(name, m, "all_head_size", h * d)
    elif kind == "gpt2":
        rep.note(name, m, "head_dim", d)
        rep.note(name, m, "num_heads", h)
        rep.note(name, m, "split_size", h * d)
        rep.note(name, m, "embed_dim", h * d)
    elif kind == "packed":
        for attr in ("head_dim", "head_size"):
            if _int_attr(m, attr):
                rep.note(name, m, attr, d)
        if hasattr(m, "num_key_value_groups"):
            rep.note(name, m, "num_key_value_groups", h // hkv)
        for attr in ("num_heads", HEAD_COUNT_ATTR):
            if _int_attr(m, attr):
                rep.note(name, m, attr, h)
    else:
        rep.note(name, m, fused_names(m)[1], h)
        if _int_attr(m, "head_dim"):
            rep.note(name, m, "head_dim", d)
        if _int_attr(m, "attn_dim"):
            rep.note(name, m, "attn_dim", h * d)


def _refresh_heads(index: _Index, rep: RefreshReport, only: dict[int, nn.Module] | None) -> None:
    entries = index.attention
    if only is not None:
        if index.attention_by_id is None:
            index.attention_by_id = {id(e[1]): e for e in index.attention}
        entries = [index.attention_by_id[i] for i in only if i in index.attention_by_id]
    for name, m, kind in entries:
        layout = _layout_now(m, kind)
        if isinstance(layout, str):
            rep.problems.append(f"{name}: {layout}; attributes left unchanged")
            continue
        _apply_layout(name, m, kind, layout, rep)


# ------------------------------------------------------------ plain layers
def _refresh_layers(index: _Index, rep: RefreshReport, only: dict[int, nn.Module] | None) -> None:
    """Width attributes of layers whose weight was pruned through a tied twin (lm_head)."""
    names = index.names
    layers = index.layers if only is None else [
        (names[i], m) for i, m in only.items() if _is_layer(m)]
    for name, m in layers:
        if isinstance(m, nn.Linear):
            rep.note(name, m, "out_features", int(m.weight.shape[0]))
            rep.note(name, m, "in_features", int(m.weight.shape[1]))
        elif isinstance(m, nn.Embedding):
            rep.note(name, m, "embedding_dim", int(m.weight.shape[1]))
        elif hasattr(m, "nf") and hasattr(m, "nx") and getattr(m, "weight", None) is not None:
            if m.weight.dim() == 2:  # HF Conv1D
                rep.note(name, m, "nx", int(m.weight.shape[0]))
                rep.note(name, m, "nf", int(m.weight.shape[1]))


# ----------------------------------------------------------------- config
def _uniform(values: Iterable[int]) -> int | None:
    vals = set(values)
    return vals.pop() if len(vals) == 1 else None


def _hidden_size(model: nn.Module) -> int | None:
    get = getattr(model, "get_input_embeddings", None)
    emb = None
    if callable(get):
        try:
            emb = get()
        except (NotImplementedError, AttributeError):
            emb = None
    if isinstance(emb, nn.Embedding):
        return int(emb.weight.shape[1])
    proj = getattr(emb, "projection", None)
    if isinstance(proj, nn.Conv2d):
        return int(proj.weight.shape[0])
    return None


def _intermediate_size(m: nn.Module) -> int | None:
    """First projection of a transformer MLP (Llama gate/up, BERT intermediate, fc1, c_fc)."""
    if is_fused_experts(m):  # Mixtral: every expert has the same width
        return expert_width(m)
    for attr in ("gate_proj", "up_proj", "fc1", "c_fc", "wi", "wi_0", "dense_h_to_4h"):  # wi: T5
        w = _out(getattr(m, attr, None))
        if w is not None:
            return w
    fused = _out(getattr(m, "gate_up_proj", None))  # Phi-3: gate | up in one Linear
    if fused is not None and fused % 2 == 0:
        return fused // 2
    dense = getattr(m, "dense", None)
    if type(m).__name__.endswith("Intermediate") and _out(dense) is not None:
        return _out(dense)
    return None


def _head_entry(m: nn.Module) -> _Layout | None:
    got = head_layout(m)
    return _Layout(*got) if got is not None and got[0] != "mha" else None


def _update_tables(index: _Index, only: dict[int, nn.Module] | None) -> None:
    """Re-read the per-layer head layouts and MLP widths: all of them, or those in `only`."""
    if index.head_table is None or index.mlp_table is None or only is None:
        index.head_table = {id(m): _head_entry(m) for m in index.heads}
        index.mlp_table = {id(m): _intermediate_size(m) for m in index.mlps}
        return
    for i, m in only.items():
        if i in index.head_table:
            index.head_table[i] = _head_entry(m)
        if i in index.mlp_table:
            index.mlp_table[i] = _intermediate_size(m)


def _refresh_config(
    model: nn.Module, index: _Index, rep: RefreshReport, only: dict[int, nn.Module] | None
) -> None:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        return  # not a Hugging Face model
    hidden = _hidden_size(model)
    if hidden is not None and hasattr(config, "hidden_size"):
        rep.note("config", config, "hidden_size", hidden)
    _update_tables(index, only)
    assert index.head_table is not None and index.mlp_table is not None
    infos = [i for i in index.head_table.values() if i is not None]
    width = getattr(config, "hidden_size", None)
    derived = ("bert", "gpt2", "packed") if getattr(config, "model_type", "") in (
        "falcon", "gpt_neox") else ("bert", "gpt2")  # their head size is hidden // heads
    odd = sorted({i.heads * i.head_dim for i in infos if i.kind in derived} - {width})
    if odd:  # these configs derive head_dim = hidden_size // heads: no field to say otherwise
        rep.problems.append(
            f"config: attention width {odd} != hidden_size {width}; the pruned model runs, "
            "but type(model)(model.config) would not rebuild it"
        )
    if infos:
        fields = [
            ("num_attention_heads", [i.heads for i in infos]),
            ("num_key_value_heads", [i.kv_heads for i in infos]),
            ("head_dim", [i.head_dim for i in infos]),
        ]
        if hasattr(config, "num_kv_heads") and (getattr(config, "new_decoder_architecture", False)
                                                or not getattr(config, "multi_query", False)):
            fields.append(("num_kv_heads", [i.kv_heads for i in infos]))  # Falcon
        for attr, vals in fields:
            # head_dim is written for q/k/v families even when the config lacks it: they
            # fall back to hidden_size // heads, which pruning makes wrong
            derives_head_dim = attr == "head_dim" and infos[0].kind in ("split", "packed")
            if not (hasattr(config, attr) or derives_head_dim):
                continue
            if isinstance(getattr(type(config), attr, None), property):
                continue  # derived (Falcon's head_dim = hidden_size // heads): no field
            value = _uniform(vals)
            if value is None:
                rep.problems.append(
                    f"config.{attr}: layers now differ ({sorted(set(vals))}); left unchanged"
                )
                continue
            rep.note("config", config, attr, value)
    plain = next((a for a in ("n_inner", "d_ff", "ffn_hidden_size") if hasattr(config, a)),
                 "intermediate_size")
    by_attr: dict[str, list[int]] = {}
    for i, w in index.mlp_table.items():
        if w is not None:
            by_attr.setdefault(_mlp_config_attr(config, index, i, plain), []).append(w)
    for attr, sizes in by_attr.items():
        value = _uniform(sizes)
        if value is None:
            rep.problems.append(
                f"config.{attr}: layers now differ ({sorted(set(sizes))}); left unchanged"
            )
        elif attr == "n_inner" and config.n_inner is None and value == 4 * config.hidden_size:
            pass  # GPT-2's None means 4 * hidden, which still holds
        elif hasattr(config, attr):
            rep.note("config", config, attr, value)


def _mlp_config_attr(config: object, index: _Index, mlp_id: int, plain: str) -> str:
    """The config field an MLP's width is built from: MoE experts read
    `moe_intermediate_size` where the config has one (Qwen-MoE; Mixtral: intermediate_size),
    shared experts `shared_expert_intermediate_size`."""
    m = index.by_id.get(mlp_id)
    if m is not None and is_fused_experts(m) and hasattr(config, "moe_intermediate_size"):
        return "moe_intermediate_size"
    if "shared_expert" in index.names.get(mlp_id, "").rpartition(".")[2] and hasattr(
            config, "shared_expert_intermediate_size"):
        return "shared_expert_intermediate_size"
    return plain


# -------------------------------------------------------------- timm/torch
def _refresh_model_widths(model: nn.Module, rep: RefreshReport) -> None:
    """timm's informational widths (embed_dim, num_features) from the classifier's input."""
    head = getattr(model, "head", None)
    fc = head if isinstance(head, nn.Linear) else getattr(head, "fc", None)
    if not isinstance(fc, nn.Linear) or hasattr(model, "config"):
        return
    width = int(fc.weight.shape[1])
    for attr in ("num_features", "head_hidden_size"):
        if _int_attr(model, attr):
            rep.note("", model, attr, width)
    patch = getattr(getattr(model, "patch_embed", None), "proj", None)
    if isinstance(patch, nn.Conv2d) and _int_attr(model, "embed_dim"):
        rep.note("", model, "embed_dim", int(patch.weight.shape[0]))
    for attr in ("in_features", "num_features"):
        if head is not fc and _int_attr(head, attr):
            norm = getattr(head, "norm", None)
            shape = getattr(norm, "normalized_shape", None)
            if shape:
                rep.note("head", head, attr, int(shape[-1]))


def refresh_attributes(
    model: nn.Module, index: _Index | None = None, only: dict[int, nn.Module] | None = None
) -> RefreshReport:
    """Fix every width attribute forward (or the HF config) reads; idempotent and cheap.

    `index` (from `module_index`, kept by the caller across prunes) spares the walk over
    the modules; `only` (ids from `affected_modules`) limits the layer and attention
    re-reads to what a pruned group touched; the config still sees every layer through
    the index's per-layer tables, so it is written only when all layers agree.
    Works on weightless (meta) copies too: only shapes are read.
    """
    rep = RefreshReport()
    index = index if index is not None else module_index(model)
    _refresh_layers(index, rep, only)
    _refresh_heads(index, rep, only)
    refresh_moe(index.named, rep)  # Mixtral routers' and experts' hidden_dim
    refresh_qk_norms(index.named, rep)  # OLMoE: q/k norms over all heads keep their divisor
    _refresh_config(model, index, rep, only)
    fold_decoder_output_scale(model, rep)  # T5: d_model**-0.5 before lm_head
    _refresh_model_widths(model, rep)
    return rep
