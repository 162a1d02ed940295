"""Why a layer's output channels are in no prunable group, in one sentence.

Why in the engine: the traced graph is what decides (an ignored layer, a type with no
pruning function or not run in forward, channels that reach the model's output, a
fixed-size attention/reshape lock); the GUI's Properties panel and the CLI report show
this sentence instead of guessing from the graph's picture.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

# words that mark a graph lock reason as an attention/reshape lock (also the attention
# report's filter, engine/families/report.py: one list, so the two cannot drift apart)
ATTENTION_LOCK_WORDS = ("head", "attention", "q/k", "qkv", "matmul", "reshape", "rotary",
                        "rope", "breaks the model's forward", "fixed-size", "joint")


def lock_reason(graph: Any, module: nn.Module, ignored: Iterable[str] = ()) -> str | None:
    """The reason `module`'s output channels cannot be pruned, or None when they can."""
    name = graph.module2name.get(module, type(module).__name__)
    if name in set(ignored):
        return "ignored in the plan (never pruned)"
    try:
        port = graph.port_of(module)
    except ValueError as exc:  # no pruning function for its type, or not run in forward
        return str(exc)
    group = graph.get_pruning_group(module, port.handler, [0]) if port.width() else None
    own = list(dict.fromkeys(r for r in graph.lock_reasons if f"'{name}'" in r))
    if group is not None and group.reaches_outputs:
        return "its output channels reach the model's output, whose size is fixed"
    if own:
        return "; ".join(own)
    if group is not None and not group.fixed:
        return None
    attention = [r for r in dict.fromkeys(graph.lock_reasons)
                 if any(w in r.lower() for w in ATTENTION_LOCK_WORDS)]
    if attention:
        return "fixed by an attention/reshape lock: " + "; ".join(attention[:3])
    general = [r for r in dict.fromkeys(graph.lock_reasons) if r != "model output"]
    if general:
        return "its channels are fixed by the traced graph (" + "; ".join(general[:3]) + ")"
    return "its channels are fixed by the traced graph (no group can change them)"
