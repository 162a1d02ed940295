"""Short names that keep what tells layers apart. No Qt.

Why: big models share long prefixes ("features.denseblock3.denselayer12.conv1"); cutting
the middle or keeping a fixed two-part tail ("mlp.0", "mlp.0", "mlp.0") hides the one
part that differs. Here the shared prefix is what goes.
"""

from __future__ import annotations

from collections.abc import Iterable

ELLIPSIS = "…"


def common_prefix(names: Iterable[str]) -> str:
    """The dotted prefix every name shares ("features.denseblock1." for one block)."""
    parts_list = [n.split(".") for n in names]
    if not parts_list:
        return ""
    shared: list[str] = []
    for column in zip(*parts_list, strict=False):
        if all(p == column[0] for p in column):
            shared.append(column[0])
        else:
            break
    if any(len(p) == len(shared) for p in parts_list):  # never swallow a whole name
        shared = shared[:-1]
    return ".".join(shared) + "." if shared else ""


def distinct_short_names(names: list[str], min_parts: int = 2) -> dict[str, str]:
    """Each name's shortest dotted tail (at least `min_parts` parts) unique in `names`."""
    split = {n: n.split(".") for n in names}
    out: dict[str, str] = {}
    for name, parts in split.items():
        k = min(min_parts, len(parts))
        while k < len(parts):
            tail = parts[-k:]
            clash = any(o != name and p[-k:] == tail for o, p in split.items())
            if not clash:
                break
            k += 1
        out[name] = ".".join(parts[-k:])
    return out


def drop_prefix(name: str, prefix: str) -> str:
    """`name` without `prefix`, marked with an ellipsis so it reads as shortened."""
    return ELLIPSIS + name[len(prefix) :] if prefix and name.startswith(prefix) else name
