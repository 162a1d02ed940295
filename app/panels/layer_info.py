"""What Properties says about one layer: attributes, weight shapes, heads, lock reason.
No Qt (plain rows), so it is tested without a widget.

Why: Netron shows kernel, stride, padding, groups and dilation; a locked layer needs the
reason the engine found, not "Group: none".
"""

from __future__ import annotations

from typing import Any

ATTRIBUTES = (
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "bias",
    "in_features",
    "out_features",
    "num_features",
    "normalized_shape",
    "eps",
    "embed_dim",
    "num_heads",
    "num_embeddings",
    "embedding_dim",
    "padding_mode",
)


def _module(doc: Any, name: str) -> Any:
    model = getattr(doc, "model", None)
    if model is None:
        return None
    try:
        return model.get_submodule(name)
    except (AttributeError, TypeError):
        return None


def _fmt(v: Any) -> str:
    if isinstance(v, tuple):
        return "×".join(str(x) for x in v)
    return str(v)


def layer_attributes(doc: Any, name: str) -> list[tuple[str, str]]:
    """(attribute, value) rows of the module: kernel, stride, padding, groups, …"""
    m = _module(doc, name)
    if m is None:
        return []
    rows = []
    for attr in ATTRIBUTES:
        if not hasattr(m, attr):
            continue
        v = getattr(m, attr)
        if attr == "bias":
            rows.append(("bias", "no" if v is None or v is False else "yes"))
        elif isinstance(v, (int, float, str, tuple, list)) and not isinstance(v, bool):
            rows.append((attr.replace("_", " "), _fmt(tuple(v) if isinstance(v, list) else v)))
    return rows


def weight_shapes(doc: Any, name: str) -> list[tuple[str, str]]:
    m = _module(doc, name)
    if m is None:
        return []
    return [
        (f"{pname} shape", "×".join(str(d) for d in p.shape))
        for pname, p in m.named_parameters(recurse=False)
    ]


def head_counts(doc: Any, name: str, plan: Any = None) -> tuple[int, int] | None:
    """(heads now, heads after the plan) for an attention layer, else None."""
    m = _module(doc, name)
    heads = getattr(m, "num_heads", None) if m is not None else None
    if not isinstance(heads, int):
        return None
    after = heads
    if plan is not None and getattr(plan, "prune_num_heads", False):
        ratio = plan.head_pruning_ratio_dict.get(name, plan.head_pruning_ratio)
        after = max(1, heads - int(heads * ratio))
    return heads, after


def lock_reason(doc: Any, name: str, plan: Any = None) -> str:
    """Why a layer is in no prunable group: the engine's sentence (engine.graph.lock_reason)."""
    from engine.graph.lock_reason import lock_reason as engine_reason

    ignored = getattr(plan, "ignored_layers", ()) if plan is not None else ()
    graph, m = getattr(doc, "graph", None), _module(doc, name)
    if graph is None or m is None:
        if name in ignored:
            return "ignored in the plan (never pruned)"
        return "its channels are fixed by the traced graph (no group can change them)"
    reason = engine_reason(graph, m, ignored)
    return reason or "prunable with another layer's group (its own ratio applies through it)"
