"""Latency model: predicted vs measured for pruned models, and a plan for a latency budget.

For resnet18 and mobilenet_v2 (random weights, batch 1, 224x224, this CPU):
1. measure the per-layer lookup table (engine.latency.measure_table, 3 sweeps) and
   calibrate it with whole-model timings of uniformly pruned copies (kept 25/50/75 %,
   engine.latency.calibrate: an affine fit of measured against table sums);
2. three plans each (uniform 0.25, uniform 0.5 with round_to 8, and a seeded mixed plan
   with per-group ratios in [0.1, 0.7]): predict from the table, prune a real copy, and
   time the original and the pruned copy interleaved (best-of and median over rounds,
   with a 90 % bootstrap interval of the median);
3. a plan for a budget of --budget x the whole model's time, re-timed just before
   planning (`engine.latency.recalibrate`; a sensitivity scan on 16 random images feeds
   the planner, fidelity is irrelevant to the timing), made closed-loop
   (`engine.latency.plan_latency_budget`: plan, prune, measure, correct the aim, re-plan),
   then pruned and timed again the same way as the other plans.

Prediction error = predicted / measured best-of - 1 (the table is built from best-of
timings). On a shared machine the load changes between building the table and timing,
so the report also gives the drift-corrected prediction (the predicted speed-up times
the original's best-of measured in the same rounds), and the scale-only prediction of
tables before calibration (version 1) for comparison.

On `--device ort` (or `cpu,ort`: both, one after the other) every table, calibration,
re-timing and measurement runs on ONNX Runtime's CPU provider (engine.latency.runners:
each model exported to ONNX in memory, intra-op threads = torch's).

Usage: python -m benchmarks.latency_model [--models resnet18,mobilenet_v2] [--rounds 15]
       [--budget 0.6] [--threads N] [--device cpu|ort|cuda|cpu,ort] [--passes 3]
       [--size 224] [--no-budget] [--json benchmarks/results/latency_model.json]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import random
import time
from typing import Any

import numpy as np
import torch
import torchvision

from engine.latency import (
    measure_table,
    plan_latency_budget,
    predict_model,
    predict_plan,
    recalibrate,
    runner_for,
)
from engine.plan import PlanError, PruningPlan, apply_plan
from engine.plan.scan import ScanPreviewer, ScanSettings, sensitivity_scan
from engine.utils.latency import compare_latency


def _interval(samples: list[float], reps: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    arr = np.asarray(samples)
    meds = np.median(rng.choice(arr, (reps, arr.size)), axis=1)
    return float(np.percentile(meds, 5)), float(np.percentile(meds, 95))


def _time(original: torch.nn.Module, pruned: torch.nn.Module, x: torch.Tensor,
          rounds: int, device: str = "cpu") -> dict[str, Any]:
    runner = runner_for(device)
    calls = [runner.prepare(original, x), runner.prepare(pruned, x)]
    c = compare_latency(calls, min_rounds=rounds, max_rounds=rounds, warmup_rounds=3)
    s0 = [1e3 * v for v in c.samples_s[0]]
    s1 = [1e3 * v for v in c.samples_s[1]]
    return {"orig_min_ms": min(s0), "orig_median_ms": float(np.median(s0)),
            "min_ms": min(s1), "median_ms": float(np.median(s1)),
            "median_90": _interval(s1), "rounds": rounds}


def _mixed_plan(pv: ScanPreviewer, seed: int) -> PruningPlan:
    rng = random.Random(seed)
    roots = [name for name, _ in pv.group_roots(PruningPlan())]
    return PruningPlan(pruning_ratio=0.0, round_to=8,
                       group_ratios={r: round(rng.uniform(0.1, 0.7), 2) for r in roots})


def run_model(name: str, rounds: int, budget: float | None, device: str = "cpu",
              passes: int = 3, size: int = 224) -> dict[str, Any]:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    t = time.perf_counter()
    table = measure_table(model, x, device=device, passes=passes)
    out: dict[str, Any] = {"model": name, "device": device, "size": size,
                           "table_s": time.perf_counter() - t,
                           "table_full_ms": table.full_model_ms, "scale": table.scale,
                           "calibration": [dataclasses.asdict(p) for p in table.calibration],
                           "fit": dataclasses.asdict(table.fit) if table.fit else None,
                           "plans": []}
    print(f"{name} on {device}: table {out['table_s']:.0f} s, full {table.full_model_ms:.2f} ms, "
          f"scale {table.scale:.2f}, fit {out['fit']}", flush=True)
    for p in table.calibration:
        print(f"  calibration {p.label}: table sum {p.table_ms:.2f} ms, measured "
              f"{p.measured_ms:.2f} ms", flush=True)
    pv = ScanPreviewer(model, x)
    plans = {"uniform 0.25": PruningPlan(pruning_ratio=0.25),
             "uniform 0.5, round_to 8": PruningPlan(pruning_ratio=0.5, round_to=8),
             "mixed (seeded), round_to 8": _mixed_plan(pv, 0)}
    for label, plan in plans.items():
        out["plans"].append(_case(label, model, x, table, pv, plan, rounds))
    if budget is None:
        out["budget"] = {"skipped": True}
        return out
    # a plan for a latency budget
    gen = torch.Generator().manual_seed(1)
    data = [torch.randn(8, 3, 224, 224, generator=gen) for _ in range(2)]
    t = time.perf_counter()
    scan = sensitivity_scan(model, x, data, PruningPlan(round_to=8), previewer=pv,
                            settings=ScanSettings(max_samples=16), cache_dir="")
    now = recalibrate(table, model, x)  # the load drifted while scanning: re-time the whole
    goal = budget * now.full_model_ms
    t_loop = time.perf_counter()
    try:
        loop = plan_latency_budget(scan, pv, now, model, x, goal)
    except PlanError as e:  # recorded, not fatal: the other model still runs
        out["budget"] = {"budget_ms": goal, "error_text": str(e)}
        return out
    for k, st in enumerate(loop.steps):
        print(f"  loop {k + 1}: aimed {st.aimed_ms:.2f} ms, predicted {st.predicted_ms:.2f}, "
              f"measured {st.measured_ms:.2f}", flush=True)
    case = _case(f"budget {goal:.2f} ms", model, x, now, pv, loop.result.plan, rounds)
    case["budget_ms"] = goal
    case["scan_s"] = t_loop - t
    case["loop_s"] = time.perf_counter() - t_loop
    case["loop"] = loop.to_dict()
    case["measured_vs_budget"] = case["measured"]["min_ms"] / goal - 1
    case["within_10pct_of_budget"] = abs(case["measured_vs_budget"]) <= 0.10
    out["budget"] = case
    return out


def _case(label: str, model: torch.nn.Module, x: torch.Tensor, table: Any, pv: ScanPreviewer,
          plan: PruningPlan, rounds: int) -> dict[str, Any]:
    predicted = predict_plan(table, pv, plan)
    pruned = copy.deepcopy(model)
    apply_plan(pruned, x, plan)
    from_model = predict_model(table, pruned, x)
    measured = _time(model, pruned, x, rounds, table.device)
    corrected = predicted / table.full_model_ms * measured["orig_min_ms"]
    scale_only = predict_plan(dataclasses.replace(table, fit=None), pv, plan)
    case = {"plan": label, "predicted_ms": predicted, "predicted_from_model_ms": from_model,
            "scale_only_ms": scale_only, "scale_only_error": scale_only / measured["min_ms"] - 1,
            "measured": measured, "error": predicted / measured["min_ms"] - 1,
            "drift_corrected_ms": corrected,
            "drift_corrected_error": corrected / measured["min_ms"] - 1,
            "macs_ratio": pv.preview(plan).macs_ratio}
    print(f"  {label}: predicted {predicted:.2f} ms, measured best {measured['min_ms']:.2f} "
          f"median {measured['median_ms']:.2f} {tuple(round(v, 2) for v in measured['median_90'])}"
          f" ms -> error {case['error']:+.1%} (drift-corrected {case['drift_corrected_error']:+.1%}"
          f"; scale-only {case['scale_only_error']:+.1%}), MACs {case['macs_ratio']:.3f}",
          flush=True)
    return case


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--budget", type=float, default=0.6)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--device", default="cpu",
                    help="cpu (PyTorch), ort (ONNX Runtime CPU), cuda, or a list: cpu,ort")
    ap.add_argument("--passes", type=int, default=3, help="table sweeps (default 3)")
    ap.add_argument("--size", type=int, default=224, help="input height = width")
    ap.add_argument("--no-budget", action="store_true", help="skip the latency-budget plan")
    ap.add_argument("--json")
    ap.add_argument("--markdown", metavar="JSON", help="only print the table for a results file")
    args = ap.parse_args()
    if args.markdown:
        with open(args.markdown) as f:
            print(markdown(json.load(f)))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    from engine.latency import check_device

    devices = [check_device(d) for d in args.device.split(",")]
    results = {"threads": torch.get_num_threads(), "cpu": torch.backends.cpu.get_cpu_capability(),
               "devices": devices, "versions": {d: runner_for(d).key_parts() for d in devices},
               "started": started, "load_before": os.getloadavg(),
               "models": [run_model(m, args.rounds, None if args.no_budget else args.budget,
                                    d, args.passes, args.size)
                          for d in devices for m in args.models.split(",")]}
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results["load_after"] = os.getloadavg()
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def markdown(results: dict[str, Any]) -> str:
    """The docs/benchmarks.md table for a results JSON."""
    rows = ["| model | device | plan | MACs kept | predicted (ms) | measured best-of (ms) | "
            "measured median (ms) [90 % interval] | original in the same rounds, best-of (ms) | "
            "error | drift-corrected error | scale-only error (uncalibrated) |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in results["models"]:
        for c in m["plans"] + ([m["budget"]] if "measured" in m.get("budget", {}) else []):
            me = c["measured"]
            lo, hi = me["median_90"]
            rows.append(f"| {m['model']} | {m.get('device', 'cpu')} | {c['plan']} | "
                        f"{c['macs_ratio']:.3f} | "
                        f"{c['predicted_ms']:.2f} | {me['min_ms']:.2f} | {me['median_ms']:.2f} "
                        f"[{lo:.2f}-{hi:.2f}] | {me['orig_min_ms']:.2f} | {c['error']:+.1%} | "
                        f"{c['drift_corrected_error']:+.1%} | "
                        f"{c.get('scale_only_error', float('nan')):+.1%} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
