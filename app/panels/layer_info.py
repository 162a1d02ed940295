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
    """Why a layer is in no prunable group, in the engine's words where it has them."""
    if plan is not None and name in getattr(plan, "ignored_layers", ()):
        return "ignored in the plan (never pruned)"
    graph = getattr(doc, "graph", None)
    m = _module(doc, name)
    if graph is not None and m is not None:
        try:
            graph.port_of(m)
        except ValueError as exc:
            return str(exc)
        except Exception:  # noqa: BLE001 - any engine failure: fall back to the list below
            pass
        reasons = [r for r in getattr(graph, "lock_reasons", []) if f"'{name}'" in r]
        if reasons:
            return "; ".join(dict.fromkeys(reasons))
        info = doc.node_by_name(name)
        if info is not None and _feeds_output(doc, info.id):
            return "its output is the model's output, whose size is fixed"
        general = list(dict.fromkeys(getattr(graph, "lock_reasons", [])))
        if general:
            shown = "; ".join(general[:3]) + ("; …" if len(general) > 3 else "")
            return f"its channels are fixed by the traced graph ({shown})"
    return "its channels are fixed by the traced graph (no group can change them)"


def _feeds_output(doc: Any, node_id: int) -> bool:
    """True when no edge leaves this node's downstream chain of shape-only ops."""
    out_edges: dict[int, list[int]] = {}
    for s, d in doc.summary.edges:
        out_edges.setdefault(s, []).append(d)
    sinks = [n.id for n in doc.summary.nodes if n.id not in out_edges]
    output = max(sinks) if sinks else None  # the last node traced: the model's output
    frontier, seen = [node_id], set()
    while frontier:
        n = frontier.pop()
        if n in seen:
            continue
        seen.add(n)
        nxt = out_edges.get(n, [])
        if not nxt:
            if n == output:
                return True
            continue
        for d in nxt:
            info = doc.node(d)
            if info is not None and not info.is_layer:
                frontier.append(d)
    return False
