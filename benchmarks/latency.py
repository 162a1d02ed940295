"""CPU latency of pruned models next to their MACs reduction.

Each model is pruned with BasePruner (MagnitudeImportance, local ratio, round_to=8, final
classifier ignored) at several ratios; the original and all pruned copies are then timed
interleaved (one forward of each per round, so load drift hits every variant alike) at batch 16.
Speedup = median latency before / after; MACs speedup = MACs before / after. Target: the
measured speedup is within 20% of the MACs speedup. Each case also gets a 90% bootstrap interval
of measured / MACs over the rounds and a verdict: met, missed, or within the noise.

Usage: python -m benchmarks.latency [--models resnet50,mobilenet_v2,convnext_tiny]
       [--ratios 0.25,0.5,0.75] [--batch 16] [--rounds 11] [--threads 1] [--json out.json]
       [--no-mmap]
"""

from __future__ import annotations

import argparse
import copy
import functools
import resource
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torchvision

import engine
from engine.utils import count_ops_and_params
from engine.utils.latency import compare_latency

from .measure import machine, median, minor_faults, without_mmap_allocations, write_json


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


def time_interleaved(
    models: list[nn.Module], x: torch.Tensor, rounds: int
) -> tuple[list[list[float]], list[list[int]]]:
    """Latency samples and page faults per forward of each model: one forward of each model
    per round, after a warm-up round (engine.utils.latency.compare_latency).

    (Timing the second of two back-to-back forwards instead was tried: on this VM it made
    the pruned models slower and noisier, e.g. MobileNetV2 at 0.75 62 -> 105 ms.)
    """
    with torch.inference_mode():
        result = compare_latency(
            [functools.partial(m, x) for m in models],
            min_rounds=rounds,
            max_rounds=rounds,
            counter=minor_faults,
        )
    return result.samples_s, result.counter_deltas


def speedup_interval(
    base: list[float], variant: list[float], level: float = 0.9, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap interval of median(base) / median(variant) over the timing rounds.

    Rounds are resampled whole (both models' samples of a round together): they were timed
    back to back under the same machine load, so pairing keeps that shared drift out of the
    interval. On a shared 2-core VM a point estimate near a threshold says little; the
    interval says whether a case is clearly met, clearly missed or within the noise.
    """
    b, v = np.asarray(base, dtype=np.float64), np.asarray(variant, dtype=np.float64)
    if b.shape != v.shape or b.size == 0:
        raise ValueError("need the same, non-zero number of rounds for both models")
    picks = np.random.default_rng(seed).integers(0, b.size, size=(n_boot, b.size))
    ratios = np.median(b[picks], axis=1) / np.median(v[picks], axis=1)
    tail = (1.0 - level) / 2
    lo, hi = np.quantile(ratios, [tail, 1.0 - tail])
    return float(lo), float(hi)


def verdict(interval: tuple[float, float], threshold: float = 0.8) -> str:
    """'met' / 'missed' only when the whole interval is on one side of the threshold."""
    lo, hi = interval
    return "met" if lo >= threshold else "missed" if hi < threshold else "within noise"


PAGE_MB = resource.getpagesize() / 2**20

KINDS = ("conv/linear", "depthwise conv", "norm", "activation", "other")


def kind_of(m: nn.Module) -> str:
    """Where a leaf layer's time goes: MAC-bound GEMMs, or memory-bound per-channel work
    (which shrinks with the channel count, not with its square like the MACs)."""
    if isinstance(m, nn.modules.conv._ConvNd):
        return "depthwise conv" if m.groups > 1 and m.groups == m.in_channels else "conv/linear"
    if isinstance(m, nn.Linear):
        return "conv/linear"
    if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)) or (
        "Norm" in type(m).__name__
    ):
        return "norm"
    if type(m).__module__.startswith("torch.nn.modules.activation"):
        return "activation"
    return "other"


def time_by_kind(model: nn.Module, x: torch.Tensor, rounds: int = 2) -> dict[str, float]:
    """Seconds per forward spent in leaf layers of each kind (hooks; a separate pass, so the
    hooks' overhead never touches the latency samples). Work outside leaf layers (residual
    adds, layer scales, reshapes) is the forward's total minus these."""
    spent = dict.fromkeys(KINDS, 0.0)
    started: dict[int, float] = {}
    handles = []
    for m in model.modules():
        if next(m.children(), None) is not None:
            continue
        kind = kind_of(m)

        def pre(mod: nn.Module, _inp: Any) -> None:
            started[id(mod)] = time.perf_counter()

        def post(mod: nn.Module, _inp: Any, _out: Any, kind: str = kind) -> None:
            spent[kind] += time.perf_counter() - started.pop(id(mod))

        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with torch.inference_mode():
            model(x)  # warm-up
            spent.update(dict.fromkeys(KINDS, 0.0))
            t0 = time.perf_counter()
            for _ in range(rounds):
                model(x)
            total = (time.perf_counter() - t0) / rounds
    finally:
        for h in handles:
            h.remove()
    out = {k: v / rounds for k, v in spent.items()}
    out["outside layers"] = max(0.0, total - sum(out.values()))
    return out


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
    samples, faults = time_interleaved(variants, xb, rounds)
    kinds = [time_by_kind(m, xb) for m in variants]
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
        lo, hi = speedup_interval(rows[0].latencies_s, v.latencies_s)
        d["speedup_over_macs_90pct"] = [lo / d["macs_speedup"], hi / d["macs_speedup"]]
        d["verdict"] = verdict(tuple(d["speedup_over_macs_90pct"]))
        d["time_by_kind_s"] = kinds[len(out)]
        d["faulted_mb_per_forward"] = float(np.median(faults[len(out)])) * PAGE_MB
        out.append(d)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet50,mobilenet_v2,convnext_tiny")
    ap.add_argument("--ratios", default="0.25,0.5,0.75")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--round-to", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="")
    ap.add_argument(
        "--no-mmap",
        action="store_true",
        help="serve all allocations from glibc's heap and never trim it: no page faults per "
        "forward, as with jemalloc/tcmalloc (see measure.without_mmap_allocations)",
    )
    args = ap.parse_args()
    if args.no_mmap and not without_mmap_allocations():
        raise SystemExit("--no-mmap: glibc's mallopt is not available here")
    torch.set_num_threads(args.threads)
    ratios = [float(r) for r in args.ratios.split(",")]
    report: dict[str, Any] = {
        "machine_before": machine(),
        "batch": args.batch,
        "round_to": args.round_to,
        "threads": args.threads,
        "device": "cpu",
        "allocator": "glibc, no mmap, no trim" if args.no_mmap else "glibc default",
        "rows": [],
    }
    for name in args.models.split(","):
        rows = bench(name, ratios, args.batch, args.rounds, args.round_to)
        report["rows"] += rows
        for d in rows:
            print(
                f"{name:14s} ratio {d['ratio']:.2f}  MACs {d['macs'] / 1e9:6.2f}G  "
                f"latency {d['latency_s'] * 1e3:8.1f} ms  speedup {d['measured_speedup']:5.2f} "
                f"vs MACs {d['macs_speedup']:5.2f}  ({d['speedup_over_macs']:.2f}, 90% "
                f"{d['speedup_over_macs_90pct'][0]:.2f}-{d['speedup_over_macs_90pct'][1]:.2f}: "
                f"{d['verdict']}; faults {d['faulted_mb_per_forward']:.0f} MB/forward)",
                flush=True,
            )
        report["machine_after"] = machine()
        if args.json:
            write_json(args.json, report)


if __name__ == "__main__":
    main()
