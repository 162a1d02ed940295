"""How fast an exact plan preview is once the graph is built (the GUI's live preview).

Times `Previewer.preview(plan)` on ResNet-50 (1x3x224x224): the graph is traced once,
the first preview of a criterion ranks every group (reported as `first_ms`), later
previews reuse the cached rankings (median `ms`). Per plan kind the default ratio is
swept to a new value every time (every group changes width); `edit_one_layer` sweeps
one layer's ratio instead (the GUI's common edit). Each kind's last preview is checked
against a really pruned copy (`exact`).

Whole attention heads (`prune_num_heads`) on vit_b_16 (1x3x224x224), graph built once:
`first_ms` is the first head plan (finds the head scopes, scores every head), `ms` the
median of later previews sweeping the head ratio, and `slow_path_ms` what every such
preview cost before head plans took the meta path (pruning a deep copy for real, which
`Previewer._simulate` still does for iterative plans).

Usage: python -m benchmarks.preview_speed [--model resnet50] [--heads-model vit_b_16]
       [--repeats 15] [--json benchmarks/results/preview_speed.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
import warnings
from typing import Any

import torch
import torchvision

from engine.io import atomic_write
from engine.plan import Previewer, PruningPlan, apply_plan
from engine.utils import count_ops_and_params


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def machine() -> dict[str, Any]:
    """Shared 2-core boxes make absolute times noisy: record the load with the numbers."""
    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "loadavg_1_5_15": list(os.getloadavg()), "platform": platform.platform(),
            "torch": torch.__version__, "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

PLANS: dict[str, PruningPlan] = {
    "local_0.5": PruningPlan(pruning_ratio=0.5),
    "global_0.5": PruningPlan(pruning_ratio=0.5, global_pruning=True),
    "isomorphic_0.5": PruningPlan(pruning_ratio=0.5, global_pruning=True, isomorphic=True),
    "local_0.3_round8": PruningPlan(pruning_ratio=0.3, round_to=8),
}


EDITED = "layer3.0.conv1"


def _timed_preview(previewer: Previewer, plan: PruningPlan) -> tuple[tuple[float, float], Any]:
    """((wall s, this process's CPU s), preview): CPU time shows the cost on a loaded box."""
    t0, c0 = time.perf_counter(), time.process_time()
    preview = previewer.preview(plan)
    return (time.perf_counter() - t0, time.process_time() - c0), preview


def _row(model: Any, x: Any, plan: PruningPlan, preview: Any, first: float,
         times: list[tuple[float, float]]) -> dict[str, Any]:
    """Timing figures, and whether the preview equals a really pruned copy's count."""
    pruned = copy.deepcopy(model)
    apply_plan(pruned, x, plan)
    exact = (preview.macs_after, preview.params_after) == count_ops_and_params(pruned, x)
    wall = [w for w, _ in times]
    cpu = [c for _, c in times]
    return {"first_ms": round(first * 1e3, 1), "ms": round(statistics.median(wall) * 1e3, 1),
            "min_ms": round(min(wall) * 1e3, 1),
            "cpu_ms": round(statistics.median(cpu) * 1e3, 1), "exact": exact,
            "macs_ratio": round(preview.macs_ratio, 4)}


def _setup(model_name: str) -> tuple[torch.nn.Module, torch.Tensor, float, Previewer]:
    """The model (seeded, one thread), its input and a timed Previewer over it."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = getattr(torchvision.models, model_name)(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    t_build, previewer = timed(lambda: Previewer(model, x))
    return model, x, t_build, previewer


def run(model_name: str, repeats: int) -> dict[str, Any]:
    model, x, t_build, previewer = _setup(model_name)
    rows: dict[str, Any] = {}
    for name, plan in PLANS.items():
        first, preview = timed(lambda p=plan: previewer.preview(p))
        times = []
        for i in range(repeats):
            # a new default ratio every time (as a slider): every group's width changes
            p = plan.replace(pruning_ratio=plan.pruning_ratio - 0.2 + 0.4 * (i + 1) / repeats)
            times.append(_timed_preview(previewer, p)[0])
        rows[name] = _row(model, x, plan, preview, first, times)
    # editing one layer's ratio (the GUI's common case): only that group's layers change
    plan = PruningPlan(pruning_ratio=0.5)
    times = []
    for i in range(repeats):
        p = plan.replace(layer_ratios={EDITED: 0.05 + 0.9 * i / repeats})
        wall_cpu, preview = _timed_preview(previewer, p)
        times.append(wall_cpu)
    rows["edit_one_layer"] = _row(model, x, p, preview, times[0][0], times[1:])
    for name, row in rows.items():
        print(f"{model_name} {name:16s} median {row['ms']:6.1f} ms wall, {row['cpu_ms']:6.1f} ms "
              f"CPU (min wall {row['min_ms']:.1f}, first {row['first_ms']:.1f}) "
              f"exact={row['exact']}")
    return {"model": model_name, "input": [1, 3, 224, 224], "previewer_build_s":
            round(t_build, 3), "repeats": repeats, "plans": rows}


HEAD_PLANS: dict[str, PruningPlan] = {
    "whole_heads_0.5": PruningPlan(pruning_ratio=0.0, prune_num_heads=True,
                                   head_pruning_ratio=0.5),
    "heads_0.5_and_dims_0.25": PruningPlan(pruning_ratio=0.25, prune_num_heads=True,
                                           head_pruning_ratio=0.5),
}


def run_heads(model_name: str, repeats: int) -> dict[str, Any]:
    """Whole-head previews of a torchvision ViT: meta path vs the former real-copy path."""
    model, x, t_build, previewer = _setup(model_name)
    rows: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, plan in HEAD_PLANS.items():
            (first, first_cpu), preview = _timed_preview(previewer, plan)
            times = []
            for i in range(repeats):
                # a new head ratio every time (as a slider): 1..11 of 12 heads go
                p = plan.replace(head_pruning_ratio=(1 + i % 11) / 12)
                times.append(_timed_preview(previewer, p)[0])
            row = _row(model, x, plan, preview, first, times)
            row["first_cpu_ms"] = round(first_cpu * 1e3, 1)
            slow = []
            for _ in range(2):
                t0, c0 = time.perf_counter(), time.process_time()
                previewer._simulate(plan)
                slow.append((time.perf_counter() - t0, time.process_time() - c0))
            row["slow_path_ms"] = round(min(w for w, _ in slow) * 1e3, 1)
            row["slow_path_cpu_ms"] = round(min(c for _, c in slow) * 1e3, 1)
            rows[name] = row
    for name, row in rows.items():
        print(f"{model_name} {name:24s} median {row['ms']:6.1f} ms wall, {row['cpu_ms']:6.1f} "
              f"ms CPU (min wall {row['min_ms']:.1f}, first {row['first_ms']:.1f} wall / "
              f"{row['first_cpu_ms']:.1f} CPU); slow path {row['slow_path_ms']:.1f} ms wall / "
              f"{row['slow_path_cpu_ms']:.1f} CPU; exact={row['exact']}")
    return {"model": model_name, "input": [1, 3, 224, 224], "previewer_build_s":
            round(t_build, 3), "repeats": repeats, "plans": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--heads-model", default="vit_b_16", help="'' to skip the head cases")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", default="benchmarks/results/preview_speed.json")
    args = ap.parse_args()
    result = run(args.model, args.repeats)
    if args.heads_model:
        result["whole_heads"] = run_heads(args.heads_model, args.repeats)
    result["machine"] = machine()
    text = json.dumps(result, indent=1) + "\n"
    atomic_write(args.json, lambda tmp: tmp.write_text(text))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
