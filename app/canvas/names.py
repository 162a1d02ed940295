"""Short names that keep what tells layers apart. No Qt.

Why: big models share long prefixes ("features.denseblock3.denselayer12.conv1"); cutting
the middle or keeping a fixed two-part tail ("mlp.0", "mlp.0", "mlp.0") hides the one
part that differs. Here the shared prefix is what goes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

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


def shorten_dotted(name: str, fits: Callable[[str], bool]) -> str:
    """The longest dotted tail of `name` that `fits` (a width test), led by an ellipsis.

    Why whole parts: cutting characters ("…nseblock3.denselayer12") or the middle hides
    the index that tells blocks apart; dropping the leading parts first drops what the
    neighbours share ("features."), and a part is either shown whole or not at all. When
    even the last part does not fit, it is returned as "…last" for the caller to elide.
    """
    if fits(name):
        return name
    parts = name.split(".")
    for k in range(1, len(parts)):
        tail = ELLIPSIS + ".".join(parts[k:])
        if fits(tail):
            return tail
    return ELLIPSIS + parts[-1] if len(parts) > 1 else name


def label_core(name: str) -> str:
    """`name` without its leading parts that carry no index ("features.", "model."): the
    part a label must show whole ("…denseblock3.denselayer12.conv1")."""
    parts = name.split(".")
    k = 0
    while k < len(parts) - 1 and not any(ch.isdigit() for ch in parts[k]):
        k += 1
    return name if k == 0 else ELLIPSIS + ".".join(parts[k:])
