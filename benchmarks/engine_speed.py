"""Graph build + group enumeration: Arborist vs Torch-Pruning, same process, alternating runs.

Usage: python -m benchmarks.engine_speed --models resnet50,densenet121 --repeats 3 --json out.json
Requires the `benchmarks` extra (torch-pruning). Medians and ratios are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch_pruning
import torchvision

import engine


def time_ours(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, int]:
    t0 = time.perf_counter()
    dg = engine.DependencyGraph().build_dependency(model, x)
    n = len(list(dg.get_all_groups()))
    return time.perf_counter() - t0, n


def time_theirs(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, int]:
    t0 = time.perf_counter()
    dg = torch_pruning.DependencyGraph().build_dependency(model, x)
    n = len(list(dg.get_all_groups()))
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet50,densenet121")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    rows = []
    for name in args.models.split(","):
        model = torchvision.models.get_model(name, weights=None).eval()
        x = torch.randn(1, 3, 224, 224)
        ours, theirs = [], []
        for _ in range(args.repeats):
            t, n_ours = time_ours(model, x)
            ours.append(t)
            t, n_theirs = time_theirs(model, x)
            theirs.append(t)
        row = {
            "model": name,
            "ours_s": statistics.median(ours),
            "torch_pruning_s": statistics.median(theirs),
            "groups_ours": n_ours,
            "groups_torch_pruning": n_theirs,
        }
        row["ratio"] = row["ours_s"] / row["torch_pruning_s"]
        rows.append(row)
        print(f"{name:14s} build+groups: ours {row['ours_s']:.3f}s  torch-pruning "
              f"{row['torch_pruning_s']:.3f}s  ratio {row['ratio']:.2f}  groups {n_ours} vs "
              f"{n_theirs}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
