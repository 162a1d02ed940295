"""Measurement helpers shared by the benchmarks: RSS peaks, machine load, medians."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import resource
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


def minor_faults() -> int:
    """Page faults this process has taken so far (first touches of freshly mapped memory)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def without_mmap_allocations() -> bool:
    """Make glibc serve every allocation from its heap and keep freed memory, so forwards
    after the first take no page faults (what preloading jemalloc or tcmalloc gives a
    deployed PyTorch service).

    Why: by default glibc mmaps each tensor above its dynamic threshold (at most 32 MB) and
    unmaps it on free, so every forward faults its large activations in again: about 1.3 GB
    per ResNet-50 forward at batch 16, a third of its time. Small pruned models fault far
    less, and the threshold moves with allocation history, so speedups measured this way
    are inflated and shift between runs. Returns False where mallopt is unavailable.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


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
