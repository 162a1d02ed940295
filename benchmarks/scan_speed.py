"""Sensitivity scan speed: ResNet-50, N samples, 5 ratios per group, on this CPU.

Random-weight torchvision ResNet-50 (no downloads) on seeded random images; the scan
is run with and without prefix replay (same numbers: tests/engine/test_scan_planner.py
checks that), and one full forward of the calibration set is timed for scale.

`--units isomorphic` scans one unit per isomorphic class (engine/plan/scan.py); every
point's elapsed time is printed, so a run cut short still gives a per-point rate.

Usage: python -m benchmarks.scan_speed [--samples 256] [--size 224] [--no-baseline]
       [--units groups|isomorphic] [--stop-at-chance] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torchvision

from engine.plan import PruningPlan
from engine.plan.scan import ScanPreviewer, ScanSettings, sensitivity_scan


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--no-baseline", action="store_true", help="skip the run without replay")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--units", choices=("groups", "isomorphic"), default="groups")
    ap.add_argument("--stop-at-chance", action="store_true",
                    help="skip a unit's higher ratios once its agreement is at ~chance")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    ex = torch.zeros(1, 3, args.size, args.size)
    gen = torch.Generator().manual_seed(0)
    data = [torch.randn(min(args.batch, args.samples - i), 3, args.size, args.size,
                        generator=gen) for i in range(0, args.samples, args.batch)]
    t = time.perf_counter()
    with torch.inference_mode():
        for x in data:
            model(x)
    forward_s = time.perf_counter() - t
    t = time.perf_counter()
    pv = ScanPreviewer(model, ex)
    setup_s = time.perf_counter() - t
    out = {"samples": args.samples, "size": args.size, "forward_s": forward_s,
           "previewer_s": setup_s, "threads": torch.get_num_threads(), "units_mode": args.units,
           "stop_at_chance": args.stop_at_chance, "loadavg_start": os.getloadavg()}
    print(json.dumps(out), flush=True)
    for skip in ((True,) if args.no_baseline else (True, False)):
        t = time.perf_counter()
        every = 1 if args.units == "isomorphic" else 20

        def show(done: int, total: int, msg: str, t0: float = t, every: int = every) -> None:
            if done % every == 0:
                print(f"{time.perf_counter() - t0:8.1f} s  {done}/{total} {msg}  "
                      f"load {os.getloadavg()[0]:.2f}", flush=True)

        settings = ScanSettings(max_samples=args.samples, skip_prefix=skip, units=args.units,
                                stop_at_chance=args.stop_at_chance)
        res = sensitivity_scan(model, ex, data, PruningPlan(), previewer=pv, cache_dir="",
                               settings=settings, progress=show)
        key = "scan_s" if skip else "scan_no_replay_s"
        out[key] = time.perf_counter() - t
        out["units"] = len(res.curves)
        out["points"] = res.points_evaluated
        out["skipped_points"] = res.skipped_points
        out["loadavg_end"] = os.getloadavg()
        print(json.dumps(out), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
