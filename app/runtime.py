"""Process-wide runtime settings applied by the entry points (never by library code; the GUI
tests apply the GUI start's collector in tests/app/conftest.py).

GUI start calls `guard_none_refcount()` before the first Qt call and
`collect_garbage_on_gui_thread()` once the QApplication exists; entry points call
`freeze_long_lived_objects()` once everything long-lived exists.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from collections.abc import Callable
from typing import Any

_IMMORTAL = 1 << 60  # what CPython 3.12+ effectively gives None
_gui_collector: Any = None  # pyqtgraph's GarbageCollector while installed


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


def collect_garbage_on_gui_thread(interval_s: float = 0.5) -> None:
    """Run the cyclic garbage collector only on the GUI thread, from a Qt timer.

    Why: a collection runs in whichever thread allocates past the threshold, here a
    preview, prune or evaluation worker. A closed dialog or window that sits in a
    reference cycle (lambdas connected to its signals) is then destroyed on that worker
    thread, and Qt later crashes on the GUI thread (a segfault in the event loop, seen once
    in the GUI tests while a Taylor preview and a prune ran together). pyqtgraph's
    GarbageCollector disables automatic collection and collects by generation on a timer.
    Needs a QApplication; idempotent; `automatic_garbage_collection()` undoes it.
    """
    global _gui_collector
    if _gui_collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _gui_collector = GarbageCollector(interval=interval_s)


def gui_collector_check() -> None:
    """One timer tick's work now (on the calling thread, which must be the GUI's)."""
    if _gui_collector is not None:
        _gui_collector.check()


def automatic_garbage_collection() -> None:
    """Give collection back to CPython (for a process that leaves its GUI phase)."""
    global _gui_collector
    if _gui_collector is not None:
        _gui_collector.timer.stop()
        _gui_collector = None
        gc.enable()


def _void_qt_call() -> Callable[[], None]:
    from PySide6.QtCore import QPointF

    point = QPointF()
    return lambda: point.setX(1.0)


def none_refcount_drains(probe: Callable[[], object] | None = None, calls: int = 64) -> bool:
    """Whether void Qt calls drain None's reference count in this process.

    shiboken6 6.12.0 (abi3 wheel) on CPython 3.11: every void Qt call (painter.setPen,
    item.setPos, ...) returns None without a new reference, so None's refcount drains by
    one per call and the process aborts with "deallocating None" after a few thousand
    calls (still so with PySide6 6.12.0 + CPython 3.11.7, checked when this was written).
    CPython 3.12+ makes None immortal, which hides the bug, so it is never probed there.
    `probe` (a void call; a Qt setter by default) runs `calls` times and the drain is
    measured, so fixed PySide6 versions are left alone without a version table.
    """
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    if sys.getrefcount(None) > _IMMORTAL // 2:
        return True  # already guarded: don't drain it further just to look
    call = probe if probe is not None else _void_qt_call()
    before = sys.getrefcount(None)
    for _ in range(calls):
        call()
    return sys.getrefcount(None) <= before - calls // 2


def guard_none_refcount(probe: Callable[[], object] | None = None) -> bool:
    """Give None the effective immortality of CPython 3.12+ where Qt drains its refcount.

    Call once at GUI start (app.__main__.run_gui; tests/app/conftest.py for GUI tests),
    before the first Qt call that returns None. Returns whether the guard is in place.
    Harmless where applied: None is never deallocated anyway.
    """
    if not none_refcount_drains(probe):
        return False
    if sys.getrefcount(None) < _IMMORTAL // 2:
        ctypes.c_ssize_t.from_address(id(None)).value += _IMMORTAL
    return True
