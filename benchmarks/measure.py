"""Measurement helpers shared by the benchmarks: RSS peaks, machine load, medians."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0) so VmHWM measures what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    return _status_kb("VmHWM") / 1024


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of `fn()`. The other engine's garbage is collected first (GC stays on
    while timing: a full collection that one's own allocations trigger is a real cost)."""
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def machine() -> dict[str, Any]:
    """What the numbers were measured on: shared 2-core boxes make absolute times noisy."""
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_1_5_15": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_text(path: str, text: str) -> None:
    """Atomic write (engine.io.atomic): an interrupted sweep never leaves half a report."""
    from engine.io import atomic_write

    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str, obj: Any) -> None:
    import json

    write_text(path, json.dumps(obj, indent=1) + "\n")
