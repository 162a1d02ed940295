"""Process-wide runtime settings applied by the entry points (never by library code or tests)."""

from __future__ import annotations

import gc


def freeze_long_lived_objects() -> None:
    """Move every object alive now out of the garbage collector's reach.

    Why: after importing torch, torchvision and Qt a process holds ~380k tracked objects, and
    every full collection walks all of them (~170-270 ms on a 2-core VM), wherever it is
    triggered: under the GIL a collection started by a worker thread stalls the GUI too.
    Frozen, they are skipped: the first ResNet-50 prune in a CLI process takes ~200 ms
    instead of ~380 ms. These objects live as long as the process anyway; the cost is that
    cyclic garbage already present at this moment is never reclaimed (import-time leftovers).
    Objects created afterwards are collected as usual.
    """
    gc.freeze()
