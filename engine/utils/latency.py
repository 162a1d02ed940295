"""Wall-clock latency of models side by side: did pruning make the model faster here?

Why interleaved: on a shared machine the load drifts; timing one forward of each model per
round puts the drift on every model alike, and the ratio of medians stays meaningful even
when the absolute times do not. MACs predict this ratio only where matrix products
dominate (docs/benchmarks.md: memory-bound work shrinks with the width, not its square).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import median

import torch


@dataclass
class LatencyComparison:
    """Seconds per forward of each model, one sample per round (same order as the models)."""

    samples_s: list[list[float]]
    # counter(): how much it moved during each timed forward (e.g. page faults), if asked
    counter_deltas: list[list[int]] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return len(self.samples_s[0]) if self.samples_s else 0

    def median_s(self, i: int) -> float:
        return median(self.samples_s[i])

    def speedup(self, i: int, reference: int = 0) -> float:
        """How many times faster model i is than the reference (ratio of medians)."""
        return self.median_s(reference) / self.median_s(i)


def compare_latency(
    forwards: Sequence[Callable[[], object]],
    *,
    min_rounds: int = 3,
    max_rounds: int = 15,
    budget_s: float | None = None,
    max_total_s: float | None = None,
    warmup_rounds: int = 1,
    cancel: Callable[[], bool] = lambda: False,
    counter: Callable[[], int] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> LatencyComparison:
    """Time each forward once per round, interleaved, after `warmup_rounds` untimed rounds.

    Stops after `max_rounds`, or once `min_rounds` are done and `budget_s` (wall time of
    the timed rounds so far) is spent, or, even short of `min_rounds`, once `max_total_s`
    (warm-up included) is spent and one round is timed: a model whose forward takes
    minutes gets one sample, not three. `cancel()` is asked between rounds (then it returns
    what it has). Callers wrap their models: `lambda: model(x)` under
    `torch.inference_mode()`; CUDA work is synchronized before each clock read.
    """
    if not forwards:
        raise ValueError("compare_latency needs at least one forward to time")
    if min_rounds < 1 or max_rounds < min_rounds:
        raise ValueError(f"need 1 <= min_rounds <= max_rounds, got {min_rounds}, {max_rounds}")
    sync = torch.cuda.synchronize if torch.cuda.is_initialized() else (lambda: None)
    result = LatencyComparison([[] for _ in forwards])
    if counter is not None:
        result.counter_deltas = [[] for _ in forwards]
    started = clock()
    for _ in range(warmup_rounds):
        if cancel():
            return result
        for fn in forwards:
            fn()
    spent = 0.0
    for r in range(max_rounds):
        if cancel() or (r >= min_rounds and budget_s is not None and spent >= budget_s):
            break
        if r >= 1 and max_total_s is not None and clock() - started >= max_total_s:
            break
        for i, fn in enumerate(forwards):
            before = counter() if counter is not None else 0
            sync()
            t0 = clock()
            fn()
            sync()
            dt = clock() - t0
            result.samples_s[i].append(dt)
            spent += dt
            if counter is not None:
                result.counter_deltas[i].append(counter() - before)
    return result


@dataclass
class LatencyCheck:
    """Original vs pruned forward time on the example input, where the models live."""

    device: str  # "cpu", "cuda", "meta"
    before_s: float | None
    after_s: float | None
    rounds: int
    error: str = ""  # why it could not be measured (a pruning result stands regardless)

    def to_dict(self) -> dict[str, object]:
        return {
            "device": self.device,
            "before_ms": None if self.before_s is None else 1e3 * self.before_s,
            "after_ms": None if self.after_s is None else 1e3 * self.after_s,
            "rounds": self.rounds,
            "error": self.error or None,
        }


def check_latency(
    original: torch.nn.Module,
    pruned: torch.nn.Module,
    inputs: object,
    *,
    budget_s: float = 2.0,
    warmup_rounds: int = 1,
    cancel: Callable[[], bool] = lambda: False,
) -> LatencyCheck:
    """Whether the MACs a pruning saved became time saved on this machine: interleaved
    forwards of both models on `inputs` (at least 3 rounds, then until `budget_s` is spent,
    at most 25; a single round once 3 x `budget_s` is gone, for models with slow forwards).
    `warmup_rounds=0` when both models have just run on these inputs (an output check).
    MACs overstate the speedup where memory-bound work (norms, activations, depthwise
    convs) dominates; docs/benchmarks.md shows by how much. Never raises for a model that
    fails to run: the error is reported in the result instead."""
    from engine.io.errors import short_reason
    from engine.io.input_spec import call_with

    param = next(iter(pruned.parameters()), None)
    device = param.device.type if param is not None else "cpu"
    if device == "meta":
        return LatencyCheck(device, None, None, 0, "no weights to run: the model is on meta")
    try:
        with torch.inference_mode():
            result = compare_latency(
                [lambda: call_with(original, inputs), lambda: call_with(pruned, inputs)],
                min_rounds=3,
                max_rounds=25,
                budget_s=budget_s,
                max_total_s=3 * budget_s,
                warmup_rounds=warmup_rounds,
                cancel=cancel,
            )
    except Exception as exc:  # an odd model must not cost the user the pruning result
        return LatencyCheck(device, None, None, 0, short_reason(exc, limit=200))
    if result.rounds == 0:
        return LatencyCheck(device, None, None, 0, "cancelled")
    return LatencyCheck(device, result.median_s(0), result.median_s(1), result.rounds)
