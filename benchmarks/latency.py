"""CPU latency of pruned models next to their MACs reduction.

Each model is pruned with BasePruner (MagnitudeImportance, local ratio, round_to=8, final
classifier ignored) at several ratios; the original and all pruned copies are then timed
interleaved (one forward of each per round, so load drift hits every variant alike) at batch 16.
Speedup = median latency before / after; MACs speedup = MACs before / after. Target: the
measured speedup is within 20% of the MACs speedup.

Usage: python -m benchmarks.latency [--models resnet50,mobilenet_v2,convnext_tiny]
       [--ratios 0.25,0.5,0.75] [--batch 16] [--rounds 7] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torchvision

import engine
from engine.utils import count_ops_and_params

from .measure import machine, median, write_json


@dataclass
class Variant:
    model: str
    ratio: float
    macs: int
    params: int
    latencies_s: list[float]

    @property
    def latency_s(self) -> float:
        return median(self.latencies_s) or float("nan")


def prune(model: nn.Module, x: torch.Tensor, ratio: float, round_to: int) -> nn.Module:
    model = copy.deepcopy(model)
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1:]
    pruner = engine.pruner.BasePruner(
        model,
        x,
        importance=engine.importance.MagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=head,
        round_to=round_to,
    )
    pruner.step()
    return model


def time_interleaved(models: list[nn.Module], x: torch.Tensor, rounds: int) -> list[list[float]]:
    """Latency samples per model: one forward of each model per round, after a warm-up round."""
    samples: list[list[float]] = [[] for _ in models]
    with torch.inference_mode():
        for r in range(rounds + 1):
            for i, m in enumerate(models):
                t0 = time.perf_counter()
                m(x)
                if r > 0:
                    samples[i].append(time.perf_counter() - t0)
    return samples


def bench(name: str, ratios: list[float], batch: int, rounds: int, round_to: int) -> list[dict]:
    torch.manual_seed(0)
    base = torchvision.models.get_model(name, weights=None).eval()
    x1 = torch.randn(1, 3, 224, 224)
    variants = [base] + [prune(base, x1, r, round_to).eval() for r in ratios]
    counts = [count_ops_and_params(m, x1) for m in variants]
    xb = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        ref_shape = tuple(base(xb).shape)
        for m in variants[1:]:
            if tuple(m(xb).shape) != ref_shape:
                raise RuntimeError(f"{name}: pruned model changed the output shape")
    samples = time_interleaved(variants, xb, rounds)
    rows = [
        Variant(name, r, int(c[0]), int(c[1]), s)
        for r, c, s in zip([0.0, *ratios], counts, samples, strict=True)
    ]
    out = []
    for v in rows:
        d: dict[str, Any] = asdict(v)
        d["latency_s"] = v.latency_s
        d["macs_speedup"] = rows[0].macs / v.macs
        d["measured_speedup"] = rows[0].latency_s / v.latency_s
        d["speedup_over_macs"] = d["measured_speedup"] / d["macs_speedup"]
        d["within_20pct"] = d["speedup_over_macs"] >= 0.8
        out.append(d)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet50,mobilenet_v2,convnext_tiny")
    ap.add_argument("--ratios", default="0.25,0.5,0.75")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--round-to", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ratios = [float(r) for r in args.ratios.split(",")]
    report: dict[str, Any] = {
        "machine_before": machine(),
        "batch": args.batch,
        "round_to": args.round_to,
        "threads": args.threads,
        "device": "cpu",
        "rows": [],
    }
    for name in args.models.split(","):
        rows = bench(name, ratios, args.batch, args.rounds, args.round_to)
        report["rows"] += rows
        for d in rows:
            print(
                f"{name:14s} ratio {d['ratio']:.2f}  MACs {d['macs'] / 1e9:6.2f}G  "
                f"latency {d['latency_s'] * 1e3:8.1f} ms  speedup {d['measured_speedup']:5.2f} "
                f"vs MACs {d['macs_speedup']:5.2f}  ({d['speedup_over_macs']:.2f})",
                flush=True,
            )
        report["machine_after"] = machine()
        if args.json:
            write_json(args.json, report)


if __name__ == "__main__":
    main()
