"""engine.latency runners: ONNX Runtime tables, CUDA synchronisation, cache keys, round_to.

No timed assertions: timings are only checked to be positive and finite; predictions are
checked for structure and monotonicity in width.
"""

from __future__ import annotations

import copy
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

from engine.latency import (
    TABLE_VERSION,
    CudaRunner,
    LatencyTable,
    OrtCPURunner,
    TorchCPURunner,
    cached_table,
    check_device,
    measure_table,
    predict_model,
    predict_plan,
    runner_for,
    suggested_round_to,
)
from engine.latency.calibrate import mixed_plans
from engine.latency.devices import cuda_round_to, ort_cpu_round_to
from engine.latency.predict import table_key
from engine.models.digits_net import load_demo
from engine.plan import PruningPlan, apply_plan
from engine.plan.scan import ScanPreviewer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_ort_runner_times_a_conv_and_runs_what_torch_runs():
    conv = nn.Conv2d(8, 16, 3, padding=1).eval()
    x = torch.randn(1, 8, 20, 20, generator=torch.Generator().manual_seed(0))
    runner = OrtCPURunner()
    assert runner.threads == torch.get_num_threads() == 1
    t = runner.time(conv, x, min_reps=5, max_reps=5)
    assert len(t.samples_ms) == 5
    assert all(math.isfinite(v) and v > 0 for v in t.samples_ms)
    assert 0 < t.best <= t.median and math.isfinite(t.median)
    sess, feed = runner.session(conv, x)  # the timed session computes the conv itself
    out = sess.run(None, feed)[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, conv(x).numpy(), atol=1e-4, rtol=1e-4)
    # a rebuilt layer of the same shapes (a later sweep) reuses the session: no re-export
    again = runner.session(copy.deepcopy(conv), x)
    assert again[0] is sess
    other = runner.session(nn.Conv2d(8, 8, 3, padding=1).eval(), x)
    assert other[0] is not sess
    runner.clear()
    assert runner.session(conv, x)[0] is not sess


def test_time_models_interleaves_on_each_runner():
    a, b = nn.Linear(32, 32).eval(), nn.Linear(32, 4).eval()
    x = torch.randn(2, 32)
    for runner in (TorchCPURunner(), OrtCPURunner()):
        ms = runner.time_models([a, b], x, rounds=3)
        assert len(ms) == 2 and all(math.isfinite(v) and v > 0 for v in ms)


@pytest.fixture(scope="module")
def ort_demo():
    model, ex = load_demo()
    return model, ex, measure_table(model, ex, device="ort", passes=1), ScanPreviewer(model, ex)


def test_ort_table_predicts_pruned_models_monotone_in_width(ort_demo, tmp_path):
    model, ex, table, pv = ort_demo
    assert table.device == "ort" and table.version == TABLE_VERSION
    assert {"stem.0", "stem.1", "block.conv1", "fc"} <= set(table.entries)
    assert [p.label for p in table.calibration][:4] == [
        "unpruned", "uniform keep 0.25", "uniform keep 0.5", "uniform keep 0.75"]
    assert all(math.isfinite(p.measured_ms) and p.measured_ms > 0 for p in table.calibration)
    for e in table.entries.values():  # the monotone table: narrower never costs more
        flat = [v for row in e.ms for v in row]
        assert all(math.isfinite(v) and v > 0 for v in flat)
        for i, row in enumerate(e.ms):
            assert row == sorted(row)
            if i + 1 < len(e.ms):
                assert all(u <= w for u, w in zip(row, e.ms[i + 1], strict=True))
    assert predict_plan(table, pv, PruningPlan(pruning_ratio=0.0)) == pytest.approx(
        table.full_model_ms)
    last = table.full_model_ms
    for r in (0.3, 0.6, 0.9):
        plan = PruningPlan(pruning_ratio=r)
        predicted = predict_plan(table, pv, plan)
        pruned = copy.deepcopy(model)
        apply_plan(pruned, ex, plan)
        assert predicted == pytest.approx(predict_model(table, pruned, ex), rel=1e-9)
        assert 0 < predicted <= last + 1e-12
        last = predicted
    back = LatencyTable.load(table.save(tmp_path / "ort.json"))
    assert back.to_dict() == table.to_dict()


def test_cache_key_differs_per_device_and_ort_version(ort_demo, monkeypatch, tmp_path):
    model, ex, table, _ = ort_demo
    cpu, ort = table_key(model, ex, "cpu"), table_key(model, ex, "ort")
    assert cpu != ort and table_key(model, ex, "ort") == ort
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "__version__", "0.0.1-other")
    assert table_key(model, ex, "ort") != ort  # another ORT: its table is not reused
    monkeypatch.undo()
    # cached_table measures once per key, with the device's runner, then reads the file
    import engine.latency.predict as predict

    calls = []

    def fake_measure(m, x, *, device, **kw):
        calls.append(device)
        return table

    monkeypatch.setattr(predict, "measure_table", fake_measure)
    first = cached_table(model, ex, device="ort", cache_dir=tmp_path)
    second = cached_table(model, ex, device="ort", cache_dir=tmp_path)
    assert calls == ["ort"] and (tmp_path / f"{ort}.json").is_file()
    assert first.to_dict() == second.to_dict() and second.device == "ort"
    stale = LatencyTable.load(tmp_path / f"{ort}.json")
    stale.version = TABLE_VERSION - 1  # an older table version is measured again
    stale.save(tmp_path / f"{ort}.json")
    cached_table(model, ex, device="ort", cache_dir=tmp_path)
    assert calls == ["ort", "ort"]


def test_cuda_runner_synchronises_around_each_timed_call():
    events: list[str] = []
    ticks = iter(range(1000))

    class Probe(nn.Module):
        def forward(self, x):
            events.append("call")
            return x

    runner = CudaRunner(sync=lambda: events.append("sync"), torch_device="cpu",
                        clock=lambda: float(next(ticks)))
    t = runner.time(Probe(), torch.zeros(1), warmup=1, min_reps=3, max_reps=3)
    assert events[0] == "call"  # the warm-up, untimed
    assert events[1:] == ["sync", "call", "sync"] * 3
    assert t.samples_ms == [1000.0] * 3  # one fake clock tick between the fenced reads
    assert runner.device == "cuda"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_runner_on_a_real_gpu():
    runner = runner_for("cuda")
    t = runner.time(nn.Conv2d(16, 32, 3).cuda(), torch.randn(1, 16, 64, 64, device="cuda"))
    assert all(math.isfinite(v) and v > 0 for v in t.samples_ms)
    parts = runner.key_parts()
    assert torch.cuda.get_device_name(0) in parts and any(p.startswith("sm_") for p in parts)
    assert suggested_round_to("cuda") in (1, 8)


def test_round_to_suggestions_follow_the_device():
    assert cuda_round_to((6, 1)) == 1  # Pascal: no tensor cores
    assert cuda_round_to((7, 0)) == 8 and cuda_round_to((9, 0)) == 8
    assert cuda_round_to((8, 6), "int8") == 16
    assert cuda_round_to(None) == 8
    assert ort_cpu_round_to(lambda: "AVX512", machine="x86_64") == 16
    assert ort_cpu_round_to(lambda: "AVX2", machine="x86_64") == 8
    assert ort_cpu_round_to(lambda: "DEFAULT", machine="aarch64") == 16
    assert suggested_round_to("ort") in (8, 16)


def test_ort_needs_onnxruntime_and_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if missing
    with pytest.raises(ValueError, match="pip install onnxruntime"):
        check_device("ort")
    with pytest.raises(ValueError, match="pip install onnxruntime"):
        runner_for("ort")
    assert check_device("cpu") == "cpu"


def test_mixed_calibration_plans_are_seeded_and_non_uniform():
    model, ex = load_demo()
    a = mixed_plans(model, ex, (1001, 1002))
    b = mixed_plans(model, ex, (1001, 1002))
    assert [p.group_ratios for _, p in a] == [p.group_ratios for _, p in b]
    assert a[0][1].group_ratios != a[1][1].group_ratios
    for _, plan in a:
        ratios = list(plan.group_ratios.values())
        assert len(set(ratios)) > 1 and all(0.1 <= r <= 0.7 for r in ratios)
