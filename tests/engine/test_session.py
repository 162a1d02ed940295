"""engine.workflow.Session end to end on the demo: the one workflow both front ends run."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from engine.data.digits import load_split
from engine.io.errors import UntrustedPickleError
from engine.plan import PruningPlan
from engine.utils.progress import Cancelled
from engine.workflow import InputsUnknown, Session


@pytest.fixture(scope="module")
def demo() -> Session:
    return Session.open("arborist:demo")


@pytest.fixture(scope="module")
def pruned(demo):
    seen: list[float] = []
    result = demo.prune(PruningPlan(pruning_ratio=0.25), latency=False,
                        progress=lambda f, m: seen.append(f))
    return result, seen


def test_open_runs_the_model_once_and_traces_on_demand(demo) -> None:
    assert demo.input_spec == "1,1,8,8" and demo.arch == "arborist:demo"
    assert tuple(demo.reference_output.shape) == (1, 10)
    assert demo.summary().groups  # traced lazily, then cached
    assert demo.counts() == (483146, 21690)


def test_prune_works_on_a_copy_and_matches_the_preview(demo, pruned) -> None:
    before = {k: v.clone() for k, v in demo.model.state_dict().items()}
    result, _ = pruned
    plan = PruningPlan(pruning_ratio=0.25)
    preview = demo.preview(plan)
    r = result.report
    assert result.session.model is not demo.model
    assert (r.macs_before, r.macs_after) == (preview.macs_before, preview.macs_after)
    assert (r.params_before, r.params_after) == (preview.params_before, preview.params_after)
    assert r.output_shape_before == r.output_shape_after == (1, 10)
    assert r.output_scale == float(demo.reference_output.abs().max())
    widths = result.session.layer_widths()
    for lp in preview.layers:
        assert widths[lp.name].out_channels == lp.out_after, lp.name
    # the original is untouched: same weights, same widths, same output
    again = Session.open("arborist:demo")
    for k, v in again.model.state_dict().items():
        torch.testing.assert_close(demo.model.state_dict()[k], v, rtol=0, atol=0)
    assert all(torch.equal(v, before[k]) for k, v in demo.model.state_dict().items())
    assert demo.counts() == (r.macs_before, r.params_before)


def test_progress_is_reported_with_increasing_fractions(pruned) -> None:
    _, seen = pruned
    assert len(seen) >= 3
    assert seen == sorted(seen) and 0.0 <= seen[0] and seen[-1] <= 1.0


def test_cancel_raises_the_shared_cancelled_and_keeps_the_original(demo) -> None:
    before = {k: v.clone() for k, v in demo.model.state_dict().items()}
    calls = []

    def cancel() -> bool:  # cancelled once pruning has begun
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        demo.prune(PruningPlan(pruning_ratio=0.5), latency=False, cancel=cancel)
    assert len(calls) > 2
    assert all(torch.equal(v, before[k]) for k, v in demo.model.state_dict().items())
    from engine.plan import Cancelled as PlanCancelled

    assert PlanCancelled is Cancelled  # one cancel exception for the whole engine


@pytest.mark.parametrize("name", ["m.onnx", "m.pt", "m.pt2", "m.safe.pt"])
def test_every_export_format_is_reloaded_and_validated(pruned, tmp_path, name) -> None:
    result, _ = pruned
    path = tmp_path / name
    fractions: list[float] = []
    report = result.session.export(str(path), progress=lambda f, m: fractions.append(f))
    assert report.ok, report.errors
    assert report.max_abs_diff is not None and report.max_abs_diff <= report.tolerance
    assert report.path == str(path) and report.file_size == path.stat().st_size
    assert os.listdir(tmp_path) == [name]  # staged, moved into place, nothing left over
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    data = report.to_dict()
    assert data["format"] == {"m.onnx": "onnx", "m.pt": "pytorch", "m.pt2": "pt2",
                              "m.safe.pt": "safe"}[name]
    assert "problem" not in data


def test_a_cancelled_export_writes_nothing(pruned, tmp_path) -> None:
    result, _ = pruned
    with pytest.raises(Cancelled):
        result.session.export(str(tmp_path / "m.pt"), cancel=lambda: True)
    assert os.listdir(tmp_path) == []


class PairNet(nn.Module):
    """Two inputs and no layer to read a shape from: nothing to guess its inputs by."""

    def forward(self, a, b):
        return a * b


def test_the_trust_gate_and_unknown_inputs(tmp_path) -> None:
    path = tmp_path / "net.pt"
    torch.save(PairNet(), path)
    with pytest.raises(UntrustedPickleError):
        Session.open(str(path))
    with pytest.raises(InputsUnknown, match="input shape"):
        Session.open(str(path), trust=True)
    session = Session.open(str(path), trust=True, input_spec="2,4;2,4")
    assert tuple(session.reference_output.shape) == (2, 4)


def test_layer_widths_come_from_the_engine_for_embedding_and_lstm() -> None:
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(100, 32)
            self.lstm = nn.LSTM(32, 48, batch_first=True)
            self.head = nn.Linear(48, 5)

        def forward(self, x):
            return self.head(self.lstm(self.emb(x))[0][:, -1])

    widths = Session(Tagger().eval(), torch.randint(0, 100, (2, 7))).layer_widths()
    assert (widths["emb"].in_channels, widths["emb"].out_channels) == (32, 32)
    assert (widths["lstm"].in_channels, widths["lstm"].out_channels) == (32, 48)
    assert (widths["head"].in_channels, widths["head"].out_channels) == (48, 5)
    assert widths["lstm"].params == sum(p.numel() for p in Tagger().lstm.parameters())


def test_prune_reports_metrics_on_evaluation_data_equal_to_a_forward_pass(demo, digit_folders):
    data = demo.open_data(str(digit_folders.heldout))
    result = demo.prune(PruningPlan(pruning_ratio=0.25), latency=False, eval_data=data)
    x, y = load_split("heldout")
    with torch.no_grad():
        direct = [
            int((m(torch.from_numpy(x)).argmax(1) == torch.from_numpy(y)).sum()) / len(y)
            for m in (demo.model, result.session.model)
        ]
    before, after = result.report.metrics_before, result.report.metrics_after
    assert before.samples == after.samples == 360
    assert before.accuracy == pytest.approx(direct[0], abs=1e-12)
    assert before.accuracy == pytest.approx(0.9944, abs=1e-4)  # digits_net.json's figure
    assert after.accuracy == pytest.approx(direct[1], abs=1e-12)
    assert after.agreement is not None and 0.0 <= after.agreement <= 1.0  # vs the original


def test_prune_reports_calibration_and_evaluation_per_batch(demo, digit_folders) -> None:
    """Honest progress (#20): the data calibration's backward passes and both evaluations
    move the bar batch by batch, and the result is what an unobserved run computes."""
    from engine.data import make_loader
    from engine.plan.calibration import data_calibration

    source = demo.open_data(str(digit_folders.heldout))
    eval_data = make_loader(source, batch_size=32, num_workers=0)  # 360 samples: 12 batches
    n_eval = len(eval_data)
    assert n_eval == 12

    def calibration():
        return data_calibration(make_loader(source, batch_size=64, num_workers=0))  # 6 batches

    plan = PruningPlan(pruning_ratio=0.25, importance="taylor", iterative_steps=2)
    seen: list[tuple[float, str]] = []
    result = demo.prune(plan, calibration=calibration(), eval_data=eval_data, latency=False,
                        progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert all(a < b for a, b in zip(fractions, fractions[1:], strict=False)), fractions
    assert 0.0 < fractions[0] and fractions[-1] <= 1.0
    messages = [m for _, m in seen]
    for step in (1, 2):
        cal = [m for m in messages if m.startswith(f"step {step}/2: calibration batch")]
        assert cal == [f"step {step}/2: calibration batch {k}/6 (gradients)" for k in range(1, 7)]
    for which in ("original", "pruned"):
        batches = [m for m in messages if m.startswith(f"evaluating the {which} model: batch")]
        assert len(batches) == n_eval
        assert batches[2].startswith(f"evaluating the {which} model: batch 3/{n_eval} (")
    # observing changes nothing: the same plan without a progress callback prunes alike
    quiet = demo.prune(plan, calibration=calibration(), eval_data=eval_data, latency=False)
    for k, v in quiet.session.model.state_dict().items():
        assert torch.equal(result.session.model.state_dict()[k], v), k
    assert result.report.metrics_after == quiet.report.metrics_after
    assert result.report.metrics_before == quiet.report.metrics_before
