"""Does calibrating on mixed-width copies predict mixed plans better than uniform copies only?

The calibration fit (engine.latency.calibrate) is a line through (table sum, measured)
points of uniformly pruned copies; in docs/benchmarks.md the seeded mixed plans were the
under-predicted ones. Here one uncalibrated table is built, then in ONE set of interleaved
rounds the program times: the unpruned model, the uniform calibration copies (kept
25/50/75 %), two mixed calibration copies (seeds 1001, 1002) and held-out plans (mixed
seeds 0, 1, 2 as in benchmarks/latency_model.py, and uniform 0.3 / 0.6 with round_to 8).
Both fits (uniform only; uniform + mixed) predict the held-out plans; the errors against
the best-of of the same rounds are printed. Timing all in the same rounds keeps the load
drift out of the comparison (not out of the absolute figures).

Usage: python -m benchmarks.latency_mixed_calibration [--models resnet18,mobilenet_v2]
       [--device cpu|ort] [--threads 1] [--rounds 15] [--repeats 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import time
from typing import Any

import torch
import torchvision

from engine.latency import CalibrationPoint, fit_calibration, measure_table, runner_for
from engine.latency.calibrate import mixed_copies, mixed_plans, raw_sum, uniform_copies
from engine.plan import PruningPlan, apply_plan

CAL_MIXED = (1001, 1002)
HELD_OUT_MIXED = (0, 1, 2)


def run(name: str, device: str, rounds: int, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    runner = runner_for(device)
    t0 = time.perf_counter()
    table = measure_table(model, x, runner=runner, passes=2, calibrated=False)
    print(f"{name} on {device}: table {time.perf_counter() - t0:.0f} s", flush=True)
    cal = [("unpruned", copy.deepcopy(model))] + uniform_copies(model, x)
    cal_mixed = mixed_copies(model, x, CAL_MIXED)
    held = []
    for label, plan in mixed_plans(model, x, HELD_OUT_MIXED) + [
            ("uniform 0.3, round_to 8", PruningPlan(pruning_ratio=0.3, round_to=8)),
            ("uniform 0.6, round_to 8", PruningPlan(pruning_ratio=0.6, round_to=8))]:
        m = copy.deepcopy(model)
        apply_plan(m, x, plan)
        held.append((label, m))
    everything = cal + cal_mixed + held
    sums = [raw_sum(table, m, x) for _, m in everything]
    sums[0] = table.table_full_ms
    out: dict[str, Any] = {"model": name, "device": device, "repeats": []}
    for rep in range(repeats):
        measured = runner.time_models([m for _, m in everything], x, rounds=rounds,
                                      budget_s=60.0, max_total_s=120.0)
        pts = [CalibrationPoint(label, s, ms)
               for (label, _), s, ms in zip(everything, sums, measured, strict=True)]
        n_u, n_m = len(cal), len(cal_mixed)
        fits = {"uniform only": fit_calibration(pts[:n_u]),
                "uniform + mixed": fit_calibration(pts[:n_u + n_m])}
        rows = []
        for p in pts[n_u + n_m:]:
            row = {"plan": p.label, "measured_ms": p.measured_ms}
            for fname, fit in fits.items():
                t = dataclasses.replace(table, fit=fit, full_model_ms=pts[0].measured_ms)
                pred = t.correct(p.table_ms)
                row[fname] = {"predicted_ms": pred, "error": pred / p.measured_ms - 1}
            rows.append(row)
            print(f"  rep {rep + 1} {p.label:<26} measured {p.measured_ms:7.2f} ms | "
                  + " | ".join(f"{k}: {row[k]['predicted_ms']:7.2f} ({row[k]['error']:+.1%})"
                               for k in fits), flush=True)
        out["repeats"].append({"fits": {k: dataclasses.asdict(v) if v else None
                                        for k, v in fits.items()},
                               "calibration": [dataclasses.asdict(p) for p in pts[:n_u + n_m]],
                               "held_out": rows})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--device", default="cpu", choices=("cpu", "ort", "cuda"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = {"threads": args.threads, "load_before": os.getloadavg(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "models": [run(m, args.device, args.rounds, args.repeats)
                      for m in args.models.split(",")]}
    res["load_after"] = os.getloadavg()
    print(f"load average before {res['load_before']}, after {res['load_after']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
