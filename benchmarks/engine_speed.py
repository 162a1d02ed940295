"""Engine speed and memory: Arborist vs Torch-Pruning, same models, same process.

Stages, each timed for both engines in alternating order (ABBA) and reported as medians:
  build    DependencyGraph().build_dependency(model, x)
  groups   list(dg.get_all_groups(ignored_layers=[classifier]))
  pruner   BasePruner(model, x, MagnitudeImportance(p=2), pruning_ratio=0.5, ...) (traces again)
  step     pruner.step() on that model (every group ranked and pruned)
Peak memory is measured in a fresh subprocess per (engine, model): the kernel's RSS high-water
mark is reset after the model is built, so the number is what pruner construction + step add.

Usage: python -m benchmarks.engine_speed [--models resnet50,...] [--repeats 3]
       [--json benchmarks/results/engine_speed.json]
Needs the `benchmarks` extra (torch-pruning); only benchmarks/ may import it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .measure import machine, median, peak_rss_mb, reset_peak_rss, rss_mb, timed, write_json
from .workloads import SPEED_MODELS, Workload, build_workload

STAGES = ("build", "groups", "pruner", "step")
ENGINES = ("ours", "torch_pruning")


def engine_module(name: str) -> Any:
    if name == "ours":
        import engine

        return engine
    if name == "torch_pruning":
        import torch_pruning

        return torch_pruning
    raise ValueError(f"unknown engine {name!r}; expected one of {ENGINES}")


@dataclass
class StageTimes:
    build: float
    groups: float
    pruner: float
    step: float
    n_groups: int
    params_after: int
    runs_after: bool


def _runs(w: Workload, model: torch.nn.Module) -> bool:
    """Whether the pruned model still runs with the same output shape (cheap sanity check)."""
    try:
        with torch.no_grad():
            out = call(model, w.example_inputs)
            ref = w.output_transform(out) if w.output_transform else out
        return tuple(ref.shape) == w.expected_shape
    except Exception:
        return False


def call(model: torch.nn.Module, inputs: Any) -> Any:
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def make_pruner(tp: Any, w: Workload, model: torch.nn.Module) -> Any:
    ignored = [_same_module(w.model, model, m) for m in w.ignored_layers]
    return tp.pruner.BasePruner(
        model,
        w.example_inputs,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=0.5,
        ignored_layers=ignored,
        output_transform=w.output_transform,
    )


def _same_module(src: torch.nn.Module, dst: torch.nn.Module, m: torch.nn.Module) -> Any:
    name = {v: k for k, v in src.named_modules()}[m]
    return dst.get_submodule(name)


def time_engine(tp: Any, w: Workload, check: bool) -> StageTimes:
    """One run of every stage on fresh copies of the workload's model.

    Every graph of ours owns its meta kernels and their layout memo, so each trace
    (build, and the pruner's own) starts cold, as the first model in a process would.
    """
    t_build, t_groups, n_groups = _time_graph(tp, w)
    m2 = copy.deepcopy(w.model)
    t_pruner, pruner = timed(lambda: make_pruner(tp, w, m2))
    t_step, _ = timed(pruner.step)
    params = sum(p.numel() for p in m2.parameters())
    ok = _runs(w, m2) if check else True
    return StageTimes(t_build, t_groups, t_pruner, t_step, n_groups, params, ok)


def _time_graph(tp: Any, w: Workload) -> tuple[float, float, int]:
    """Graph build and group enumeration on a fresh copy (freed before the pruner runs)."""
    model = copy.deepcopy(w.model)
    t_build, dg = timed(
        lambda: tp.DependencyGraph().build_dependency(
            model, w.example_inputs, output_transform=w.output_transform
        )
    )
    ignored = [_same_module(w.model, model, m) for m in w.ignored_layers]
    t_groups, groups = timed(lambda: list(dg.get_all_groups(ignored_layers=ignored)))
    return t_build, t_groups, len(groups)


def measure_memory(engine_name: str, model_name: str) -> dict[str, float]:
    """In this (fresh) process: RSS that pruner construction + step add over the built model."""
    torch.set_num_threads(1)
    tp = engine_module(engine_name)
    w = build_workload(model_name)
    model = copy.deepcopy(w.model)
    base = rss_mb()
    exact = reset_peak_rss()
    pruner = make_pruner(tp, w, model)
    pruner.step()
    return {"base_rss_mb": base, "peak_extra_mb": peak_rss_mb() - base, "hwm_reset": exact}


def memory_in_subprocess(engine_name: str, model_name: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.engine_speed", "--memory-of", engine_name, model_name]
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    cmd += ["--max-gb", str(limit / 2**30 if limit > 0 else 0)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_model(name: str, repeats: int, memory: bool, log: Callable[[str], None]) -> dict:
    w = build_workload(name)
    with torch.no_grad():
        out = call(w.model, w.example_inputs)
        w.expected_shape = tuple((w.output_transform(out) if w.output_transform else out).shape)
    runs: dict[str, list[StageTimes]] = {e: [] for e in ENGINES}
    errors: dict[str, str] = {}
    for r in range(repeats):
        order = ENGINES if r % 2 == 0 else ENGINES[::-1]  # ABBA: neither always goes first
        for e in order:
            if e in errors:
                continue
            try:
                runs[e].append(time_engine(engine_module(e), w, check=(r == 0)))
            except (Exception, MemoryError) as exc:  # report, keep going with the other one
                errors[e] = f"{type(exc).__name__}: {exc}"[:300]
                log(f"  {e} failed on {name}: {errors[e]}")
    row: dict[str, Any] = {"model": name, "params": w.params, "dtype": str(w.dtype)}
    for e in ENGINES:
        rs = runs[e]
        row[e] = {s: median([getattr(x, s) for x in rs]) for s in STAGES}
        row[e]["total"] = median([x.pruner + x.step for x in rs])
        row[e]["samples"] = {s: [round(getattr(x, s), 4) for x in rs] for s in STAGES}
        if rs:
            first = rs[0]
            row[e].update(n_groups=first.n_groups, params_after=first.params_after)
            row[e]["runs_after"] = first.runs_after
        if e in errors:
            row[e]["error"] = errors[e]
    row["ratio"] = {
        s: (row["ours"][s] / row["torch_pruning"][s])
        if row["ours"][s] and row["torch_pruning"][s]
        else None
        for s in (*STAGES, "total")
    }
    if memory:
        for e in ENGINES:
            row[e]["memory"] = memory_in_subprocess(e, name)
    return row


def format_row(row: dict) -> str:
    def f(x: float | None) -> str:
        return "   -  " if x is None else f"{x:6.2f}"

    o, t, r = row["ours"], row["torch_pruning"], row["ratio"]
    parts = [f"{row['model']:14s}"]
    for s in (*STAGES, "total"):
        parts.append(f"{s} {f(o[s])}/{f(t[s])}s (x{f(r[s])})")
    return "  ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(SPEED_MODELS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--json", default="")
    ap.add_argument("--append", action="store_true", help="update rows of an existing --json")
    ap.add_argument(
        "--max-gb",
        type=float,
        default=12.0,
        help="address-space cap (RLIMIT_AS): an engine that runs away (Torch-Pruning on swin_t "
        "took 17 GB) fails with MemoryError instead of taking the shared machine down",
    )
    ap.add_argument("--memory-of", nargs=2, metavar=("ENGINE", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.max_gb:
        cap = int(args.max_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if args.memory_of:
        print(json.dumps(measure_memory(*args.memory_of)))
        return
    torch.set_num_threads(1)
    report: dict[str, Any] = {"machine_before": machine(), "rows": []}
    if args.append and args.json and os.path.exists(args.json):
        with open(args.json) as f:
            report = json.load(f)
        report.setdefault("appended", []).append(machine())
    for name in args.models.split(","):
        row = bench_model(name, args.repeats, not args.no_memory, lambda s: print(s, flush=True))
        row["max_gb"] = args.max_gb
        report["rows"] = [r for r in report["rows"] if r["model"] != name] + [row]
        print(format_row(row), flush=True)
        if args.json:
            report["machine_after"] = machine()
            write_json(args.json, report)


if __name__ == "__main__":
    main()
