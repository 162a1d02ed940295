"""Huge models on the meta device: structure, groups and a MAC preview without any weights.

A 70 B Llama config is built under `torch.device("meta")` (no parameter memory), traced,
its groups enumerated, MACs/params counted, every group halved on the meta model and counted
again (the preview a user sees before pruning the real weights). Wall time per stage and the
process's peak RSS (kernel high-water mark, VmHWM / ru_maxrss) are reported, also for the
trace's own stages (forward, resolve, ports, probe), where the high-water mark is reset
(`/proc/self/clear_refs`) so each one's peak is its own.
Targets: under 60 s and under 2 GB. Node/group counts and MACs are checked against the
values recorded for the 70 B shape, so a faster or leaner engine cannot silently change them.

Usage: python -m benchmarks.meta_trace [--shape llama_70b] [--seq-len 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import resource
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

import engine
from engine.graph.dependency import DependencyGraph
from engine.graph.slots import SlotTable
from engine.utils import count_ops_and_params

from .measure import machine, peak_rss_mb, reset_peak_rss, rss_mb, timed, write_json
from .prunability import halve_group
from .workloads import build_llama

# what the 70 B config (seq len 16) gave before the memory work; must not change
REFERENCE: dict[tuple[str, int], dict[str, int]] = {
    ("llama_70b", 16): {
        "nodes": 3225,
        "groups": 161,
        "probe_runs": 4,
        "macs": 1099746508800,
        "params_counted": 68976648192,
        "macs_after_halving": 324555243520,
        "params_after_halving": 20395462656,
    }
}
TARGET_SECONDS = 60.0
TARGET_PEAK_MB = 2048.0


class Meter:
    """Seconds, own peak RSS and RSS after each segment; segments follow one another."""

    def __init__(self) -> None:
        self.overall = peak_rss_mb()
        self.segments: dict[str, dict[str, float]] = {}
        self._name: str | None = None
        self._t0 = 0.0

    def start(self, name: str | None) -> None:
        """Close the running segment (if any) and open `name` (None: open none)."""
        now = time.perf_counter()
        peak = peak_rss_mb()
        self.overall = max(self.overall, peak)
        if self._name is not None:
            self.segments[self._name] = {
                "seconds": now - self._t0,
                "peak_rss_mb": peak,
                "rss_after_mb": rss_mb(),
            }
        reset_peak_rss()
        self._name, self._t0 = name, time.perf_counter()


@contextlib.contextmanager
def trace_segments(meter: Meter) -> Iterator[None]:
    """Split `build_dependency` into forward / resolve / ports / probe segments."""

    def around(owner: type, attr: str, name: str, after: str | None) -> Callable[[], None]:
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            meter.start(name)
            try:
                return fn(*args, **kwargs)
            finally:
                if after is not None:
                    meter.start(after)

        setattr(owner, attr, wrapped)
        return lambda: setattr(owner, attr, fn)

    undo = [
        around(SlotTable, "resolve_both", "trace.resolve", "trace.nodes_and_ports"),
        around(DependencyGraph, "_fix_groups_the_code_cannot_absorb", "trace.probe", None),
    ]
    try:
        yield
    finally:
        for u in undo:
            u()


def run(shape: str, seq_len: int = 16) -> dict[str, Any]:
    torch.set_num_threads(1)
    out: dict[str, Any] = {"shape": shape, "seq_len": seq_len, "rss_at_start_mb": rss_mb()}
    meter = Meter()
    hwm: dict[str, float] = {}  # peak RSS so far, after each stage: where memory goes

    def stage(name: str, fn: Callable[[], Any]) -> tuple[float, Any]:
        meter.start(name)
        dt, res = timed(fn)
        meter.start(None)
        hwm[name] = meter.overall
        return dt, res

    t_build_model, w = stage(
        "build_model", lambda: build_llama(shape, device="meta", seq_len=seq_len)
    )
    out["params"] = w.params

    def trace() -> engine.DependencyGraph:
        with trace_segments(meter):
            meter.start("trace.forward")
            return engine.DependencyGraph().build_dependency(
                w.model, w.example_inputs, output_transform=w.output_transform
            )

    t0 = time.perf_counter()
    dg = trace()
    t_trace = time.perf_counter() - t0
    meter.start(None)
    hwm["trace"] = meter.overall
    t_groups, groups = stage(
        "groups", lambda: list(dg.get_all_groups(ignored_layers=w.ignored_layers))
    )
    t_count, (macs, params) = stage(
        "count", lambda: count_ops_and_params(w.model, w.example_inputs)
    )
    t_prune, _ = stage("halve_all_groups", lambda: [halve_group(g, 0.5) for g in groups])
    t_count2, (macs2, params2) = stage(
        "count_after", lambda: count_ops_and_params(w.model, w.example_inputs)
    )
    out["peak_rss_after_stage_mb"] = hwm
    out["stages"] = meter.segments  # each stage's own seconds and peak RSS
    out.update(
        nodes=len(dg.nodes),
        groups=len(groups),
        probe_runs=dg.probe_runs,
        locked_reasons=len(dg.lock_reasons),
        macs=macs,
        params_counted=params,
        macs_after_halving=macs2,
        params_after_halving=params2,
        seconds={
            "build_model": t_build_model,
            "trace": t_trace,
            "groups": t_groups,
            "count": t_count,
            "halve_all_groups": t_prune,
            "count_after": t_count2,
        },
    )
    s = out["seconds"]
    s["total"] = sum(s.values())
    out["peak_rss_mb"] = max(meter.overall, peak_rss_mb())
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    core = s["build_model"] + s["trace"] + s["groups"] + s["count"]
    ref = REFERENCE.get((shape, seq_len))
    out["checks"] = {
        "seconds_to_groups_and_macs": core,
        "under_60_s": core < TARGET_SECONDS,
        "peak_rss_through_count_mb": hwm["count"],
        "under_2_gb_through_count": hwm["count"] < TARGET_PEAK_MB,
        "under_2_gb_whole_run": out["peak_rss_mb"] < TARGET_PEAK_MB,
        "matches_reference": None if ref is None else {k: out[k] == v for k, v in ref.items()},
    }
    out["machine"] = machine()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="llama_70b")
    ap.add_argument("--seq-len", type=int, default=16)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    res = run(args.shape, args.seq_len)
    s = res["seconds"]
    c = res["checks"]
    print(
        f"{args.shape}: {res['params'] / 1e9:.1f} B params, {res['nodes']} nodes, "
        f"{res['groups']} groups, MACs {res['macs'] / 1e9:.1f} G -> "
        f"{res['macs_after_halving'] / 1e9:.1f} G after halving every group; "
        + ", ".join(f"{k} {v:.1f}s" for k, v in s.items())
        + f"; peak RSS {res['peak_rss_mb']:.0f} MB"
    )
    for name, seg in res["stages"].items():
        print(
            f"  {name:22s} {seg['seconds']:6.1f} s  peak {seg['peak_rss_mb']:6.0f} MB  "
            f"after {seg['rss_after_mb']:6.0f} MB"
        )
    print(
        f"groups + MACs in {c['seconds_to_groups_and_macs']:.1f} s (< 60: {c['under_60_s']}), "
        f"peak through the count {c['peak_rss_through_count_mb']:.0f} MB "
        f"(< 2 GB: {c['under_2_gb_through_count']}), whole run {res['peak_rss_mb']:.0f} MB"
    )
    if args.json:
        write_json(args.json, res)
    ref = c["matches_reference"]
    if ref is not None and not all(ref.values()):
        bad = ", ".join(k for k, ok in ref.items() if not ok)
        print(f"MISMATCH with the recorded {args.shape} structure: {bad}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
