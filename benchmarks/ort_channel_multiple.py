"""Channel multiples on ONNX Runtime CPU (and PyTorch CPU): mobilenet_v2 pruned at 0.3.

Why: Torch-Pruning users found MobileNetV2 three times slower on ORT CPU after pruning
until the widths were rounded to 16; ORT's MLAS kernels use the NCHWc layout with blocks
of 8 (AVX2) or 16 (AVX-512) channels only for convs whose channels are whole blocks.
`engine.latency.suggested_round_to("ort")` follows that; this measures it.

The unpruned model and the three pruned copies (round_to 1, 8, 16) are timed in the same
interleaved rounds on each runtime (engine.latency.runners: ORT exports each model to
ONNX in memory, CPUExecutionProvider, intra-op threads = torch's), so load drift hits all
four alike. Reported: best-of and median ms (90 % bootstrap interval of the median), and
the speed-up of each over the unpruned model (ratio of medians).

Usage: python -m benchmarks.ort_channel_multiple [--threads 1] [--rounds 15] [--ratio 0.3]
       [--json benchmarks/results/ort_channel_multiple.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from typing import Any

import numpy as np
import torch
import torchvision

from engine.latency import runner_for, suggested_round_to
from engine.plan import PruningPlan, apply_plan
from engine.plan.scan import ScanPreviewer
from engine.utils.latency import compare_latency

MULTIPLES = (1, 8, 16)


def _interval(samples: list[float], reps: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    arr = np.asarray(samples)
    meds = np.median(rng.choice(arr, (reps, arr.size)), axis=1)
    return float(np.percentile(meds, 5)), float(np.percentile(meds, 95))


def run(threads: int, rounds: int, ratio: float, devices: list[str]) -> dict[str, Any]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    pv = ScanPreviewer(model, x)
    variants: list[tuple[str, torch.nn.Module, float]] = [("unpruned", model, 1.0)]
    for r in MULTIPLES:
        plan = PruningPlan(pruning_ratio=ratio, round_to=r)
        pruned = copy.deepcopy(model)
        apply_plan(pruned, x, plan)
        variants.append((f"round_to {r}", pruned, pv.preview(plan).macs_ratio))
    out: dict[str, Any] = {"model": "mobilenet_v2", "ratio": ratio, "threads": threads,
                           "rounds": rounds, "cpu": torch.backends.cpu.get_cpu_capability(),
                           "suggested_round_to": {d: suggested_round_to(d) for d in devices},
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "load_before": os.getloadavg(), "rows": []}
    for device in devices:
        runner = runner_for(device)
        calls = [runner.prepare(m, x) for _, m, _ in variants]
        timed = compare_latency(calls, min_rounds=rounds, max_rounds=rounds, warmup_rounds=3)
        med0 = float(np.median(timed.samples_s[0]))
        for (label, _, macs), s in zip(variants, timed.samples_s, strict=True):
            ms = [1e3 * v for v in s]
            out["rows"].append({"runtime": device, "variant": label, "macs_ratio": macs,
                                "best_ms": min(ms), "median_ms": float(np.median(ms)),
                                "median_90": _interval(ms),
                                "speedup": med0 / float(np.median(s))})
    out["load_after"] = os.getloadavg()
    return out


def markdown(res: dict[str, Any]) -> str:
    names = {"cpu": "PyTorch CPU", "ort": "ONNX Runtime CPU"}
    rows = ["| runtime | model | MACs kept | best-of (ms) | median (ms) [90 % interval] | "
            "speed-up vs unpruned (medians) |", "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lo, hi = r["median_90"]
        rows.append(f"| {names.get(r['runtime'], r['runtime'])} | {r['variant']} | "
                    f"{r['macs_ratio']:.3f} | {r['best_ms']:.2f} | {r['median_ms']:.2f} "
                    f"[{lo:.2f}-{hi:.2f}] | {r['speedup']:.2f}x |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--ratio", type=float, default=0.3)
    ap.add_argument("--devices", default="ort,cpu")
    ap.add_argument("--json")
    args = ap.parse_args()
    res = run(args.threads, args.rounds, args.ratio, args.devices.split(","))
    print(markdown(res))
    print(f"suggested round_to: {res['suggested_round_to']}; CPU {res['cpu']}; load average "
          f"before {tuple(round(v, 2) for v in res['load_before'])}, after "
          f"{tuple(round(v, 2) for v in res['load_after'])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
