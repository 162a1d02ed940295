"""Recovery throughput: engine.recover vs a plain PyTorch training loop, same work per step.

Both loops do exactly the same per step: teacher forward (no grad), student forward,
KL(T=4) + cross-entropy, backward, gradient clipping at 1.0, AdamW step, zero_grad and a
cosine learning-rate update, on the same in-memory batches (data decoding is not what
is compared). The student is the model pruned to half its channels, the teacher the
unpruned one. Runs are interleaved (plain, recover, plain, recover, ...) and the median
samples/s of each is reported, because this machine is shared and loaded. Both count
the time of training steps including fetching their batches from the DataLoader;
recover()'s BN re-estimation and evaluations are off here.

Usage: python -m benchmarks.recovery_speed [--rounds 3] [--threads 1]
       [--json benchmarks/results/recovery_speed.json]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.measure import machine, write_json
from engine.plan import PruningPlan, apply_plan
from engine.recover import Budget, RecoveryConfig, recover


def demo_workload() -> tuple[nn.Module, Any, TensorDataset, int, int]:
    from engine.data.digits import load_split
    from engine.models.digits_net import load_demo

    model, x = load_demo()
    xt, yt = map(torch.from_numpy, load_split("train"))
    return model, x, TensorDataset(xt, yt), 64, 60


def resnet18_workload() -> tuple[nn.Module, Any, TensorDataset, int, int]:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    n = 32 * 12
    data = TensorDataset(torch.randn(n, 3, 64, 64), torch.randint(0, 10, (n,)))
    return model, x, data, 32, 12


WORKLOADS: dict[str, Callable[[], tuple[nn.Module, Any, TensorDataset, int, int]]] = {
    "demo": demo_workload,
    "resnet18_64": resnet18_workload,
}


def plain_loop(student: nn.Module, teacher: nn.Module, loader: DataLoader, steps: int) -> float:
    """The hand-written loop a user would write; returns samples/s."""
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3, weight_decay=1e-4)
    student.train()
    teacher.eval()
    seen, step = 0, 0
    start = time.perf_counter()  # batches are fetched inside the timed span, as in recover()
    while step < steps:
        for x, y in loader:
            with torch.no_grad():
                t = teacher(x)
            s = student(x)
            kd = F.kl_div(F.log_softmax(s / 4, -1), F.log_softmax(t / 4, -1),
                          reduction="batchmean", log_target=True) * 16
            loss = kd + F.cross_entropy(s, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            for g in opt.param_groups:
                g["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
            seen += len(x)
            if step >= steps:
                break
    return seen / (time.perf_counter() - start)


def recover_loop(student: nn.Module, teacher: nn.Module, loader: DataLoader, steps: int) -> float:
    config = RecoveryConfig(budget=Budget(steps=steps), batch_size=loader.batch_size,
                            recalibrate_bn=False, warmup_fraction=0.0, eval_every=steps,
                            device="cpu", mixed_precision="no")
    return recover(student, loader, teacher=teacher, config=config).samples_per_s


def bench(name: str, rounds: int) -> dict[str, Any]:
    model, x, data, batch, steps = WORKLOADS[name]()
    teacher = copy.deepcopy(model)
    apply_plan(model, x, PruningPlan(pruning_ratio=0.5))
    loader = DataLoader(data, batch_size=batch, shuffle=True)
    plain_loop(copy.deepcopy(model), teacher, loader, 2)  # warm-up: allocator, kernels
    plain, ours = [], []
    for _ in range(rounds):
        plain.append(plain_loop(copy.deepcopy(model), teacher, loader, steps))
        ours.append(recover_loop(copy.deepcopy(model), teacher, loader, steps))
    p, r = statistics.median(plain), statistics.median(ours)
    return {"workload": name, "batch": batch, "steps": steps, "rounds": rounds,
            "plain_samples_per_s": round(p, 1), "recover_samples_per_s": round(r, 1),
            "ratio": round(r / p, 3), "plain_runs": [round(v, 1) for v in plain],
            "recover_runs": [round(v, 1) for v in ours]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--json", default="benchmarks/results/recovery_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.workloads:
        row = bench(name, args.rounds)
        rows.append(row)
        print(f"{name:<12} plain {row['plain_samples_per_s']:>8.1f} samples/s   recover "
              f"{row['recover_samples_per_s']:>8.1f} samples/s   ratio {row['ratio']:.3f}",
              flush=True)
    result = {"benchmark": "recovery_speed", "device": "cpu", "threads": args.threads,
              "machine": machine(), "results": rows}
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
