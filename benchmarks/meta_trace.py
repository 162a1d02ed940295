"""Huge models on the meta device: structure, groups and a MAC preview without any weights.

A 70 B Llama config is built under `torch.device("meta")` (no parameter memory), traced,
its groups enumerated, MACs/params counted, every group halved on the meta model and counted
again (the preview a user sees before pruning the real weights). Wall time per stage and the
process's peak RSS (kernel high-water mark, VmHWM / ru_maxrss) are reported.
Targets: under 60 s and under 2 GB.

Usage: python -m benchmarks.meta_trace [--shape llama_70b] [--json out.json]
"""

from __future__ import annotations

import argparse
import resource
from typing import Any

import torch

import engine
from engine.utils import count_ops_and_params

from .measure import machine, peak_rss_mb, rss_mb, timed, write_json
from .prunability import halve_group
from .workloads import build_llama


def run(shape: str, seq_len: int = 16) -> dict[str, Any]:
    torch.set_num_threads(1)
    out: dict[str, Any] = {"shape": shape, "seq_len": seq_len, "rss_at_start_mb": rss_mb()}
    hwm: dict[str, float] = {}  # peak RSS so far, after each stage: where memory goes
    t_build_model, w = timed(lambda: build_llama(shape, device="meta", seq_len=seq_len))
    hwm["build_model"] = peak_rss_mb()
    out["params"] = w.params
    t_trace, dg = timed(
        lambda: engine.DependencyGraph().build_dependency(
            w.model, w.example_inputs, output_transform=w.output_transform
        )
    )
    hwm["trace"] = peak_rss_mb()
    t_groups, groups = timed(lambda: list(dg.get_all_groups(ignored_layers=w.ignored_layers)))
    hwm["groups"] = peak_rss_mb()
    t_count, (macs, params) = timed(lambda: count_ops_and_params(w.model, w.example_inputs))
    hwm["count"] = peak_rss_mb()
    t_prune, _ = timed(lambda: [halve_group(g, 0.5) for g in groups])
    hwm["halve_all_groups"] = peak_rss_mb()
    t_count2, (macs2, params2) = timed(lambda: count_ops_and_params(w.model, w.example_inputs))
    hwm["count_after"] = peak_rss_mb()
    out["peak_rss_after_stage_mb"] = hwm
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
    out["seconds"]["total"] = sum(out["seconds"].values())
    out["peak_rss_mb"] = peak_rss_mb()
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    print(
        f"{args.shape}: {res['params'] / 1e9:.1f} B params, {res['nodes']} nodes, "
        f"{res['groups']} groups, MACs {res['macs'] / 1e9:.1f} G -> "
        f"{res['macs_after_halving'] / 1e9:.1f} G after halving every group; "
        + ", ".join(f"{k} {v:.1f}s" for k, v in s.items())
        + f"; peak RSS {res['peak_rss_mb']:.0f} MB"
    )
    if args.json:
        write_json(args.json, res)


if __name__ == "__main__":
    main()
