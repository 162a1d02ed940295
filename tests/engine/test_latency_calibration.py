"""engine.latency calibration fit and closed-loop budget planning: logic, with fake timers."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from engine.latency import (
    TABLE_VERSION,
    AffineFit,
    CalibrationPoint,
    LatencyTable,
    calibrate,
    fit_calibration,
    measure_table,
    plan_for_latency,
    predict_plan,
)
from engine.models.digits_net import load_demo
from engine.plan import PlanError, PruningPlan
from engine.plan.scan import ScanPreviewer


def _points(pairs):
    return [CalibrationPoint(f"p{i}", x, y) for i, (x, y) in enumerate(pairs)]


def test_fit_recovers_an_exact_line_and_rejects_untrustworthy_ones():
    fit = fit_calibration(_points([(10.0, 23.0), (5.0, 13.0), (2.0, 7.0)]))  # y = 2x + 3
    assert fit.slope == pytest.approx(2.0) and fit.intercept == pytest.approx(3.0)
    noisy = fit_calibration(_points([(1.0, 1.0), (2.0, 3.0), (3.0, 2.0)]))
    assert noisy.slope == pytest.approx(0.5) and noisy.intercept == pytest.approx(1.0)
    assert fit_calibration(_points([(4.0, 5.0)])) is None  # one point: no line
    assert fit_calibration(_points([(4.0, 5.0), (4.0, 6.0)])) is None  # one sum
    assert fit_calibration(_points([(1.0, 5.0), (2.0, 4.0)])) is None  # narrower slower
    assert fit_calibration(_points([(2.0, 0.1), (4.0, 10.0)])) is None  # negative below


def test_correction_rescales_the_fit_to_the_re_timed_full_model():
    t = LatencyTable("cpu", "", 1, {}, full_model_ms=23.0, table_full_ms=10.0,
                     fit=AffineFit(2.0, 3.0))
    assert t.correct(10.0) == pytest.approx(23.0)
    assert t.correct(5.0) == pytest.approx(13.0)  # scale-only would say 11.5
    drifted = dataclasses.replace(t, full_model_ms=46.0)  # what recalibrate changes
    assert drifted.correct(5.0) == pytest.approx(26.0)
    assert dataclasses.replace(t, fit=None).correct(5.0) == pytest.approx(11.5)


@pytest.fixture(scope="module")
def demo():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    model, ex = load_demo()
    yield model, ex, measure_table(model, ex, passes=1, calibrated=False), ScanPreviewer(model, ex)
    torch.set_num_threads(before)


def test_calibrate_times_the_uniform_copies_and_fits_them(demo, tmp_path):
    model, ex, table, pv = demo
    seen = []

    def fake_timer(models, inputs):
        # a device whose whole models cost 2 x the table sum + 0.5 ms
        from engine.latency.calibrate import raw_sum

        seen.extend(models)
        return [2.0 * raw_sum(table, m, inputs) + 0.5 for m in models]

    cal = calibrate(table, model, ex, timer=fake_timer)
    assert [p.label for p in cal.calibration] == [
        "unpruned", "uniform keep 0.25", "uniform keep 0.5", "uniform keep 0.75",
        "mixed seed 1001", "mixed seed 1002"]
    assert len(seen) == 6  # the mixed copies are timed in the same rounds
    sums = [p.table_ms for p in cal.calibration]
    assert sums[0] == pytest.approx(table.table_full_ms) and sums[1] < sums[2] < sums[3] < sums[0]
    assert all(sums[1] < s < sums[0] for s in sums[4:])  # ratios in [0.1, 0.7]: in between
    assert cal.fit.slope == pytest.approx(2.0) and cal.fit.intercept == pytest.approx(0.5)
    assert cal.full_model_ms == pytest.approx(2.0 * table.table_full_ms + 0.5)
    for r in (0.3, 0.6):  # the prediction follows the fake device's line for any plan
        plan = PruningPlan(pruning_ratio=r)
        raw = predict_plan(dataclasses.replace(table, full_model_ms=table.table_full_ms), pv,
                           plan)
        assert predict_plan(cal, pv, plan) == pytest.approx(2.0 * raw + 0.5)
    back = LatencyTable.load(cal.save(tmp_path / "t.json"))
    assert back.to_dict() == cal.to_dict() and back.version == TABLE_VERSION == 3


def _fake_planner(true_ms):
    """Plans keyed by their aim; the 'device' runs every plan true_ms(predicted) long."""
    calls = []

    def plan(aim):
        calls.append(aim)
        if aim < 1.0:
            raise PlanError("unreachable")
        ratio = round(1.0 - aim / 100.0, 6)
        return SimpleNamespace(plan=PruningPlan(pruning_ratio=0.0, group_ratios={"g": ratio}),
                               latency_ms=aim)  # a planner that hits its aim exactly

    def build(p):
        return p

    def measure(p):
        predicted = 100.0 * (1.0 - p.group_ratios["g"])
        return true_ms(predicted)

    return plan, build, measure, calls


def test_closed_loop_corrects_a_systematic_under_prediction():
    plan, build, measure, calls = _fake_planner(lambda ms: 1.3 * ms)
    out = plan_for_latency(plan, build, measure, 40.0, tolerance=0.05, iterations=4)
    assert calls[0] == 40.0 and calls[1] == pytest.approx(40.0 / 1.3)
    assert out.measured_ms == pytest.approx(40.0) and len(out.steps) == 2
    assert out.predicted_ms == pytest.approx(40.0 / 1.3)
    assert abs(out.within) <= 0.05


def test_closed_loop_stops_at_the_iteration_limit_and_keeps_the_best_under_budget():
    # a device whose error grows as the model shrinks: the loop converges slowly
    plan, build, measure, calls = _fake_planner(lambda ms: ms + 8.0)
    out = plan_for_latency(plan, build, measure, 20.0, tolerance=0.01, iterations=2)
    assert len(calls) == 2 and len(out.steps) == 2
    assert out.steps[0].measured_ms == pytest.approx(28.0)
    assert out.steps[1].aimed_ms == pytest.approx(20.0 * 20.0 / 28.0)
    assert out.measured_ms == pytest.approx(out.steps[1].measured_ms)  # the closer one
    with pytest.raises(PlanError, match="unreachable"):
        plan_for_latency(plan, build, measure, 0.5)
    with pytest.raises(PlanError, match="positive"):
        plan_for_latency(plan, build, measure, 0.0)
