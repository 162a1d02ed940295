"""Torch-Pruning's `tp.utils.benchmark`: latency, FPS, throughput and peak memory of a model.

Same signatures and return values (milliseconds, frames or samples per second, bytes);
timed with CUDA events on CUDA and with `time.perf_counter` elsewhere, so it runs on a
CPU-only machine too (Torch-Pruning's needs CUDA). For side-by-side comparisons on a
shared machine prefer `engine.utils.latency.compare_latency` (interleaved rounds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["measure_fps", "measure_latency", "measure_memory", "measure_throughput"]

RunFn = Callable[[nn.Module, Any], Any]


def _run(model: nn.Module, inputs: Any, run_fn: RunFn | None) -> Any:
    return run_fn(model, inputs) if run_fn is not None else model(inputs)


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def measure_latency(model: nn.Module, example_inputs: Any, repeat: int = 300, warmup: int = 50,
                    run_fn: RunFn | None = None) -> tuple[float, float]:
    """(mean, std) of one forward in milliseconds, after `warmup` untimed forwards.

    The model is put in eval mode (as Torch-Pruning does) and left there.
    """
    model.eval()
    for _ in range(warmup):
        _run(model, example_inputs, run_fn)
    cuda = _device(model).type == "cuda"
    times = []
    for _ in range(max(1, repeat)):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            _run(model, example_inputs, run_fn)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            _run(model, example_inputs, run_fn)
            times.append((time.perf_counter() - t0) * 1000.0)
    t = torch.tensor(times, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if t.numel() > 1 else 0.0


def measure_fps(model: nn.Module, example_inputs: Any, repeat: int = 300, warmup: int = 50,
                run_fn: RunFn | None = None) -> float:
    """Forwards per second (1000 / mean latency in ms)."""
    return 1000.0 / measure_latency(model, example_inputs, repeat, warmup, run_fn)[0]


def measure_throughput(model: nn.Module, example_inputs: torch.Tensor, repeat: int = 300,
                       warmup: int = 50, run_fn: RunFn | None = None) -> float:
    """Samples per second: the batch (first dim of `example_inputs`) per mean latency."""
    mean_ms = measure_latency(model, example_inputs, repeat, warmup, run_fn)[0]
    return example_inputs.shape[0] / (mean_ms / 1000.0)


@torch.no_grad()
def measure_memory(model: nn.Module, example_inputs: Any, device: Any = None,
                   run_fn: RunFn | None = None) -> int:
    """Peak CUDA memory in bytes allocated during one forward (needs CUDA)."""
    if not torch.cuda.is_available():
        raise RuntimeError("measure_memory reads CUDA's allocator statistics; no CUDA device")
    torch.cuda.reset_peak_memory_stats(device)
    model.eval()
    _run(model, example_inputs, run_fn)
    return torch.cuda.max_memory_allocated(device=device)
