"""How fast an exact plan preview is once the graph is built (the GUI's live preview).

Times `Previewer.preview(plan)` on ResNet-50 (1x3x224x224): the graph is traced once,
the first preview of a criterion ranks every group (reported as `first_ms`), later
previews reuse the cached rankings (reported as median `ms`). Several plan kinds are
timed; each preview's MACs are also checked against a real pruned copy once.

Usage: python -m benchmarks.preview_speed [--model resnet50] [--repeats 15]
       [--json benchmarks/results/preview_speed.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
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


def run(model_name: str, repeats: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = getattr(torchvision.models, model_name)(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    t_build, previewer = timed(lambda: Previewer(model, x))
    rows: dict[str, Any] = {}
    for name, plan in PLANS.items():
        first, preview = timed(lambda p=plan: previewer.preview(p))
        times = []
        for i in range(repeats):
            # vary the ratio a little, as a slider would: still cached rankings
            p = plan.replace(pruning_ratio=plan.pruning_ratio + 0.001 * (i % 5))
            t0 = time.perf_counter()
            previewer.preview(p)
            times.append(time.perf_counter() - t0)
        pruned = copy.deepcopy(model)
        apply_plan(pruned, x, plan)
        exact = (preview.macs_after, preview.params_after) == count_ops_and_params(pruned, x)
        ms = statistics.median(times) * 1e3
        rows[name] = {"first_ms": round(first * 1e3, 1), "ms": round(ms, 1),
                      "min_ms": round(min(times) * 1e3, 1), "exact": exact,
                      "macs_ratio": round(preview.macs_ratio, 4)}
        print(f"{model_name} {name:18s} median {rows[name]['ms']:7.1f} ms  (min "
              f"{rows[name]['min_ms']:.1f}, first {rows[name]['first_ms']:.1f}) exact={exact}")
    return {"model": model_name, "input": [1, 3, 224, 224], "previewer_build_s":
            round(t_build, 3), "repeats": repeats, "plans": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", default="benchmarks/results/preview_speed.json")
    args = ap.parse_args()
    result = run(args.model, args.repeats)
    result["machine"] = machine()
    text = json.dumps(result, indent=1) + "\n"
    atomic_write(args.json, lambda tmp: tmp.write_text(text))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
