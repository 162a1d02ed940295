"""The latency benchmark's bootstrap interval (benchmarks/latency.py): cheap, no timing."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.latency import speedup_interval, verdict


def test_noise_free_samples_give_a_point_interval():
    lo, hi = speedup_interval([2.0] * 9, [0.5] * 9)
    assert lo == pytest.approx(4.0) and hi == pytest.approx(4.0)


def test_interval_brackets_the_point_estimate_and_widens_with_noise():
    rng = np.random.default_rng(1)
    base = 2.0 + 0.05 * rng.standard_normal(21)
    quiet = 0.5 + 0.005 * rng.standard_normal(21)
    noisy = 0.5 + 0.1 * rng.standard_normal(21)
    point = float(np.median(base) / np.median(quiet))
    lo, hi = speedup_interval(list(base), list(quiet))
    assert lo <= point <= hi
    lo_n, hi_n = speedup_interval(list(base), list(noisy))
    assert hi_n - lo_n > 3 * (hi - lo)


def test_rounds_are_resampled_in_pairs():
    """A load factor shared by both models in a round cancels: the ratio is exact each round,
    so the paired interval stays a point even though each model's samples vary 3x."""
    load = np.linspace(1.0, 3.0, 15)
    lo, hi = speedup_interval(list(2.0 * load), list(0.5 * load))
    assert lo == pytest.approx(4.0) and hi == pytest.approx(4.0)


def test_verdict_needs_the_whole_interval_on_one_side():
    assert verdict((0.81, 0.9)) == "met"
    assert verdict((0.7, 0.79)) == "missed"
    assert verdict((0.78, 0.82)) == "within noise"


def test_mismatched_rounds_are_refused():
    with pytest.raises(ValueError, match="same, non-zero number of rounds"):
        speedup_interval([1.0, 2.0], [1.0])


def test_without_mmap_allocations_stops_per_forward_page_faults():
    """In a fresh process (mallopt is process-wide): a 64 MB tensor freed and allocated again
    faults all its pages in again under glibc's defaults, every time; after the switch the
    heap settles within a few rounds (glibc's heap grows in steps; the benchmark takes the
    median over rounds) and re-allocating faults nothing."""
    import resource
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import torch\n"
        "from benchmarks.measure import minor_faults, without_mmap_allocations\n"
        "def refaults():\n"
        "    torch.ones(16 << 20); f0 = minor_faults(); torch.ones(16 << 20)\n"
        "    return minor_faults() - f0\n"
        "before = [refaults() for _ in range(5)]\n"
        "assert without_mmap_allocations()\n"
        "after = [refaults() for _ in range(12)]\n"
        "print(min(before), min(after), after[-1])\n"
    )
    root = Path(__file__).parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=root)
    least_before, least_after, last = map(int, out.stdout.split())
    pages = (64 << 20) // resource.getpagesize()
    assert least_before > pages // 2
    assert least_after < pages // 20 and last < pages // 20
