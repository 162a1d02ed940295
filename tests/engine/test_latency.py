"""engine.utils.latency.compare_latency, driven by a fake clock (no real timing in tests)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from engine.utils.latency import check_latency, compare_latency


class FakeClock:
    """Time moves only when a fake forward 'runs'."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def forward(self, name: str, seconds: float):
        def run() -> None:
            self.calls.append(name)
            self.now += seconds

        return run


def test_interleaves_rounds_after_warm_up_and_reports_the_ratio_of_medians():
    clock = FakeClock()
    durations = iter([0.010, 0.030, 0.012, 0.011, 0.050, 0.010])  # slow outliers in a round
    slow = clock.forward("big", 0.0)

    def big() -> None:
        slow()
        clock.now += next(durations, 0.010)

    small = clock.forward("small", 0.002)
    result = compare_latency([big, small], min_rounds=5, max_rounds=5, clock=clock)
    assert clock.calls == ["big", "small"] * 6  # one warm-up round, then 5 timed ones
    assert result.rounds == 5
    assert result.samples_s[1] == pytest.approx([0.002] * 5)
    # the warm-up took the first duration; the median of the rest ignores the outliers
    assert result.median_s(0) == pytest.approx(0.012)
    assert result.speedup(1) == pytest.approx(6.0)


def test_budget_stops_after_min_rounds_and_max_rounds_caps():
    clock = FakeClock()
    fns = [clock.forward("a", 0.5), clock.forward("b", 0.5)]
    # 1 s per round: a 2.5 s budget is spent after 3 rounds, but at least 4 are taken
    assert compare_latency(fns, min_rounds=4, max_rounds=10, budget_s=2.5, clock=clock).rounds == 4
    assert compare_latency(fns, min_rounds=1, max_rounds=10, budget_s=2.5, clock=clock).rounds == 3
    assert compare_latency(fns, min_rounds=1, max_rounds=2, budget_s=None, clock=clock).rounds == 2


def test_total_time_cap_cuts_below_min_rounds_but_keeps_one_round():
    clock = FakeClock()
    fns = [clock.forward("a", 4.0), clock.forward("b", 4.0)]  # 8 s per round
    capped = compare_latency(fns, min_rounds=3, max_rounds=9, max_total_s=10.0, clock=clock)
    assert capped.rounds == 1  # warm-up (8 s) + one round (16 s) is past the 10 s cap
    clock.calls.clear()
    cold = compare_latency(
        fns, min_rounds=3, max_rounds=9, max_total_s=10.0, warmup_rounds=0, clock=clock
    )
    assert cold.rounds == 2 and clock.calls == ["a", "b"] * 2  # no warm-up: 8 s, then 16 s


def test_cancel_between_rounds_returns_what_was_measured():
    clock = FakeClock()
    fns = [clock.forward("a", 0.1)]
    result = compare_latency(
        fns, min_rounds=5, max_rounds=5, cancel=lambda: len(clock.calls) >= 3, clock=clock
    )
    assert result.rounds == 2  # warm-up + 2 timed rounds ran before cancel() turned true
    assert result.samples_s[0] == pytest.approx([0.1, 0.1])


def test_counter_deltas_per_forward():
    clock = FakeClock()
    ticks = {"n": 0}

    def a() -> None:
        ticks["n"] += 7

    def b() -> None:
        ticks["n"] += 1

    result = compare_latency(
        [a, b], min_rounds=3, max_rounds=3, clock=clock, counter=lambda: ticks["n"]
    )
    assert result.counter_deltas == [[7, 7, 7], [1, 1, 1]]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least one forward"):
        compare_latency([])
    with pytest.raises(ValueError, match="min_rounds <= max_rounds"):
        compare_latency([lambda: None], min_rounds=5, max_rounds=2)


def test_real_models_with_the_real_clock_give_positive_samples():
    net = nn.Sequential(nn.Linear(32, 32), nn.ReLU())
    x = torch.randn(4, 32)
    with torch.inference_mode():
        result = compare_latency([lambda: net(x), lambda: net(x)], min_rounds=3, max_rounds=3)
    assert result.rounds == 3
    assert all(s > 0 for row in result.samples_s for s in row)


class _FailsAfter(nn.Module):
    """Runs `ok` forwards, then raises: a model whose timing cannot finish."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.left = ok

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.left == 0:
            raise RuntimeError("odd model\nsecond line")
        self.left -= 1
        return self.lin(x)


def test_check_latency_reports_failures_and_cancel_instead_of_raising() -> None:
    good, x = nn.Linear(4, 4), torch.randn(2, 4)
    failed = check_latency(good, _FailsAfter(ok=2), x)
    assert (failed.before_s, failed.after_s, failed.rounds) == (None, None, 0)
    assert failed.error == "RuntimeError: odd model"
    cancelled = check_latency(good, good, x, cancel=lambda: True)
    assert (cancelled.rounds, cancelled.error) == (0, "cancelled")
    meta = nn.Linear(4, 4, device="meta")
    on_meta = check_latency(meta, meta, x.to("meta"))
    assert (on_meta.device, on_meta.rounds) == ("meta", 0) and "meta" in on_meta.error
    ok = check_latency(good, good, x)
    assert ok.device == "cpu" and 3 <= ok.rounds <= 25 and ok.before_s > 0 and ok.after_s > 0
    assert ok.to_dict()["rounds"] == ok.rounds and ok.to_dict()["error"] is None
