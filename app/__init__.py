"""Arborist's PySide6 front end (the workbench window) and its entry point."""

from __future__ import annotations

import ctypes
import sys


def _immortalize_none() -> None:
    """Work around shiboken6 6.12.0 (abi3 wheel) on CPython 3.11: every void Qt call
    (painter.setPen, item.setPos, ...) returns None without a new reference, so None's
    refcount drains by one per call and the process aborts with "deallocating None"
    after a few thousand calls. CPython 3.12+ makes None immortal, which hides the bug;
    this gives 3.11 the same effective immortality. Harmless when the bug is absent:
    None is never deallocated anyway.
    """
    if sys.implementation.name == "cpython" and sys.version_info < (3, 12):
        ctypes.c_ssize_t.from_address(id(None)).value += 1 << 60


_immortalize_none()
