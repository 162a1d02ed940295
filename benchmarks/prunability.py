"""Prune every group of every torchvision model by half and check the model still runs.

Usage: python -m benchmarks.prunability [--device meta|cpu] [--models a,b] [--json out.json]
Writes a Markdown table for the README/docs. Not part of the default test run.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from dataclasses import asdict, dataclass

import torch
import torchvision

import engine as tp


@dataclass
class Result:
    model: str
    ok: bool
    groups: int
    params_before: int
    params_after: int
    seconds: float
    reason: str = ""


def classification_models() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


def input_size(name: str) -> int:
    try:
        weights = torchvision.models.get_model_weights(name)
        first = next(iter(weights))
        return int(first.transforms().crop_size[0])
    except Exception:
        return 224


def build(name: str, device: str) -> torch.nn.Module:
    if device == "meta" and name.startswith("regnet"):
        # RegNet's builder calls .tolist() on a tensor, which meta tensors cannot do
        return build(name, "cpu").to("meta")
    kwargs = {"weights": None}
    if name == "googlenet" or name == "inception_v3":
        kwargs["aux_logits"] = False
        kwargs["init_weights"] = False
    if name.startswith("vit_h_14"):
        kwargs["image_size"] = 518
    with torch.device(device):
        return torchvision.models.get_model(name, **kwargs).eval()


def check_model(name: str, device: str = "meta", ratio: float = 0.5) -> Result:
    t0 = time.perf_counter()
    try:
        model = build(name, device)
        size = input_size(name)
        x = torch.randn(1, 3, size, size, device=device)
        with torch.no_grad():
            before = model(x)
        params_before = sum(p.numel() for p in model.parameters())
        dg = tp.DependencyGraph().build_dependency(model, x)
        groups = list(dg.get_all_groups())
        for g in groups:
            sets = g.channel_sets()
            n = len(g[0].idxs)
            chosen: list[int] = []
            for s in sets:
                if len(chosen) + len(s) > n * ratio:
                    break
                chosen += s
            if chosen:
                g.prune(idxs=chosen)
        with torch.no_grad():
            after = model(x)
        params_after = sum(p.numel() for p in model.parameters())
        ok = tuple(after.shape) == tuple(before.shape) and params_after < params_before
        reason = "" if ok else f"shape {tuple(before.shape)} -> {tuple(after.shape)}, params {params_before} -> {params_after}"
        return Result(name, ok, len(groups), params_before, params_after,
                      time.perf_counter() - t0, reason)
    except Exception as exc:
        tb = traceback.format_exc().strip().splitlines()[-3:]
        return Result(name, False, 0, 0, 0, time.perf_counter() - t0,
                      f"{type(exc).__name__}: {exc} | {' / '.join(tb)}"[:400])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="meta")
    ap.add_argument("--models", default="")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    names = args.models.split(",") if args.models else classification_models()
    results = []
    for name in names:
        r = check_model(name, args.device)
        results.append(r)
        status = "ok " if r.ok else "FAIL"
        print(f"{status} {name:28s} groups={r.groups:4d} params {r.params_before/1e6:8.2f}M -> "
              f"{r.params_after/1e6:8.2f}M  {r.seconds:6.2f}s {r.reason}", flush=True)
    n_ok = sum(r.ok for r in results)
    print(f"{n_ok} of {len(results)} models pruned and ran")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=1)


if __name__ == "__main__":
    main()
