"""engine.recover on the real digits: losses, BN re-estimation, recovery, resume, DDP."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from engine.data.digits import load_split
from engine.models.digits_net import load_demo
from engine.plan import Previewer, PruningPlan, apply_plan, solve_ratio
from engine.recover import (
    BN_POINT,
    Budget,
    CheckpointError,
    RecoveryConfig,
    distill_kl,
    lr_factor,
    next_token_ce,
    prune_and_recover,
    recalibrate_batchnorm,
    recover,
    recovery_loss,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


ROOT = Path(__file__).resolve().parents[2]
ORIGINAL_ACC = 0.9944


def _tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_split(split)
    return torch.from_numpy(x), torch.from_numpy(y)


def heldout_accuracy(model: nn.Module) -> float:
    """The oracle: a direct forward pass over the held-out split."""
    x, y = _tensors("heldout")
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def train_loader(batch: int = 64, labels: bool = True) -> DataLoader:
    x, y = _tensors("train")
    data = TensorDataset(x, y) if labels else TensorDataset(x)
    return DataLoader(data, batch_size=batch, shuffle=True)


def pruned_demo(keep_macs: float = 0.4) -> tuple[nn.Module, nn.Module, float]:
    """(pruned demo, original as teacher, kept MACs fraction)."""
    model, x = load_demo()
    teacher = copy.deepcopy(model)
    plan = PruningPlan()
    solved = solve_ratio(Previewer(model, x), plan, target="macs", keep=keep_macs)
    outcome = apply_plan(model, x, plan.replace(pruning_ratio=solved.ratio))
    return model, teacher, outcome.macs_after / outcome.macs_before


# -- losses and schedule ---------------------------------------------------------------
def test_distill_kl_is_zero_only_for_equal_logits_and_scales_with_t_squared():
    torch.manual_seed(0)
    a, b = torch.randn(8, 10), torch.randn(8, 10)
    assert float(distill_kl(a, a, 4.0)) == pytest.approx(0.0, abs=1e-6)
    manual = F.kl_div(F.log_softmax(a / 2, 1), F.softmax(b / 2, 1), reduction="batchmean") * 4
    assert float(distill_kl(a, b, 2.0)) == pytest.approx(float(manual), rel=1e-5)


def test_next_token_ce_shifts_and_masks():
    torch.manual_seed(0)
    logits, ids = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1, 3:] = 0
    keep = mask[:, 1:].flatten().bool()
    manual = F.cross_entropy(logits[:, :-1].flatten(0, 1)[keep], ids[:, 1:].flatten()[keep])
    assert float(next_token_ce(logits, ids, mask)) == pytest.approx(float(manual), rel=1e-6)
    # a causal LM batch has labels of its own: "auto" = KL + next-token CE
    parts = recovery_loss("auto", logits, logits.roll(1, 2), None,
                          {"input_ids": ids, "attention_mask": mask}, temperature=1.0)
    assert set(parts.terms) == {"distill", "labels"}


def test_loss_kinds_follow_labels():
    s, t, y = torch.randn(4, 10), torch.randn(4, 10), torch.randint(0, 10, (4,))
    assert set(recovery_loss("auto", s, t, y, None, temperature=2).terms) == {"distill", "labels"}
    assert set(recovery_loss("auto", s, t, None, None, temperature=2).terms) == {"distill"}
    assert set(recovery_loss("labels", s, None, y, None, temperature=2).terms) == {"labels"}
    with pytest.raises(ValueError, match="needs labels"):
        recovery_loss("both", s, t, None, None, temperature=2)


def test_lr_schedule_warms_up_then_decays_to_zero():
    assert lr_factor(0.05, 0.1) == pytest.approx(0.5)
    assert lr_factor(0.1, 0.1) == pytest.approx(1.0)
    assert lr_factor(0.55, 0.1) == pytest.approx(0.5)
    assert lr_factor(1.0, 0.1) == pytest.approx(0.0, abs=1e-12)


def test_budget_needs_exactly_one_positive_value():
    with pytest.raises(ValueError, match="exactly one"):
        Budget(epochs=1, steps=3)
    with pytest.raises(ValueError, match="positive"):
        Budget(steps=0)
    assert Budget(epochs=2.5).total_steps(10) == 25


# -- batch-norm re-estimation ----------------------------------------------------------
def test_bn_recalibration_sets_the_data_statistics_and_is_its_own_curve_point():
    model, teacher, _ = pruned_demo()
    x, _ = _tensors("train")
    with torch.no_grad():  # oracle: the stem BN's input statistics over the whole split
        z = model.stem[0](x)
    recalibrate_batchnorm(model, [(x,)], max_batches=1)
    bn = model.stem[1]
    assert torch.allclose(bn.running_mean, z.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, z.var((0, 2, 3), unbiased=True), rtol=1e-4)
    assert bn.momentum == 0.1 and not model.training

    model, teacher, _ = pruned_demo()
    report = recover(model, train_loader(), teacher=teacher, metric=heldout_accuracy,
                     config=RecoveryConfig(budget=Budget(steps=1), device="cpu"))
    (s0, _, pruned), (s1, _, recal) = report.curve[0].as_row(), report.curve[1].as_row()
    assert (s0, s1) == (0, 0) and report.curve[1].label == BN_POINT
    assert recal > pruned + 0.1  # pruned demo ~0.16, BN alone ~0.5 on these digits


# -- the must-show runs ----------------------------------------------------------------
def test_pruned_demo_recovers_to_the_original_minus_one_point_on_heldout_data():
    torch.manual_seed(0)
    model, teacher, kept = pruned_demo()
    assert kept <= 0.40
    pruned_acc = heldout_accuracy(model)
    start = time.perf_counter()
    # no metric: nothing is selected on the held-out split the test measures on
    report = recover(model, train_loader(), teacher=teacher,
                     config=RecoveryConfig(budget=Budget(epochs=5), lr=3e-3, device="cpu"))
    seconds = time.perf_counter() - start
    recovered = heldout_accuracy(model)
    assert pruned_acc < 0.5
    assert recovered >= ORIGINAL_ACC - 0.01, report.to_dict()
    assert seconds < 120
    assert report.steps == 5 * 23 and report.epochs == 5.0 and report.samples_per_s > 0
    losses = [row[1] for row in report.to_dict()["curve"] if row[1] is not None]
    assert losses[-1] < losses[0] / 2


def test_distillation_alone_on_unlabeled_digits_reaches_the_original_minus_two_points():
    torch.manual_seed(0)
    model, teacher, _ = pruned_demo()
    report = recover(model, train_loader(labels=False), teacher=teacher,
                     config=RecoveryConfig(budget=Budget(epochs=5), loss="distill", lr=3e-3,
                                           device="cpu"))
    assert report.loss_kind == "distill"
    assert heldout_accuracy(model) >= ORIGINAL_ACC - 0.02


# -- evaluation, early stopping, cancel, resume --------------------------------------------
def test_early_stopping_restores_the_best_weights():
    model, teacher, _ = pruned_demo()
    values = iter([0.1, 0.2, 0.9, 0.5, 0.4, 0.3, 0.2, 0.1])
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def metric(m: nn.Module) -> float:
        value = next(values)
        if value == 0.9:
            snapshots[0] = copy.deepcopy(m.state_dict())
        return value

    report = recover(model, train_loader(), teacher=teacher, metric=metric,
                     config=RecoveryConfig(budget=Budget(steps=50), eval_every=2, patience=2,
                                           device="cpu"))
    assert report.stopped == "early-stopping"
    assert report.best_metric == pytest.approx(0.9) and report.best_step == 2
    assert report.steps == 6  # evaluations at 2 (best), 4, 6 -> two without improvement
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[0][k]), k


def test_cancel_then_resume_ends_exactly_where_an_uninterrupted_run_ends(tmp_path):
    def run(checkpoint: Path, cancel_at: int | None = None, resume: bool = False):
        torch.manual_seed(0)
        model, teacher, _ = pruned_demo()
        steps = {"n": 0}

        def cancel() -> bool:
            steps["n"] += 1
            return cancel_at is not None and steps["n"] >= cancel_at

        config = RecoveryConfig(budget=Budget(steps=30), eval_every=5, seed=7, lr=2e-3,
                                checkpoint=str(checkpoint), device="cpu")
        report = recover(model, train_loader(), teacher=teacher, metric=heldout_accuracy,
                         config=config, cancel=cancel, resume=resume)
        return model, report

    full_model, full = run(tmp_path / "a.ckpt")
    _, part = run(tmp_path / "b.ckpt", cancel_at=27)  # past an epoch end (23 steps)
    assert part.stopped == "cancelled" and part.steps == 27
    resumed_model, resumed = run(tmp_path / "b.ckpt", resume=True)
    assert resumed.resumed_from == 27 and resumed.steps == 30
    assert [p.step for p in resumed.curve] == [p.step for p in full.curve]
    assert [p.loss for p in resumed.curve[2:]] == pytest.approx(
        [p.loss for p in full.curve[2:]], rel=1e-5)  # the two step-0 points have no loss
    assert [p.metric for p in resumed.curve] == pytest.approx([p.metric for p in full.curve])
    for (k, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values(),
                           strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_a_checkpoint_for_other_shapes_is_refused(tmp_path):
    model, teacher, _ = pruned_demo()
    path = tmp_path / "c.ckpt"
    recover(model, train_loader(), teacher=teacher,
            config=RecoveryConfig(budget=Budget(steps=2), checkpoint=str(path), device="cpu"))
    other, teacher, _ = pruned_demo(keep_macs=0.7)
    with pytest.raises(CheckpointError, match="other shapes"):
        recover(other, train_loader(), teacher=teacher, resume=True,
                config=RecoveryConfig(budget=Budget(steps=2), checkpoint=str(path),
                                      device="cpu"))


def test_progress_reports_every_step_with_an_eta():
    model, teacher, _ = pruned_demo()
    events = []
    recover(model, train_loader(), teacher=teacher, progress=events.append,
            config=RecoveryConfig(budget=Budget(steps=6), eval_every=3, device="cpu"))
    steps = [e.step for e in events if e.point is None]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert all(e.total == 6 and e.eta_s is not None for e in events if e.point is None)
    assert [e.point.step for e in events if e.point is not None] == [0, 0, 3, 6]


def test_iterative_prune_recovers_between_steps():
    model, x = load_demo()
    result = prune_and_recover(model, x, PruningPlan(pruning_ratio=0.5, iterative_steps=2),
                               train_loader(), metric=heldout_accuracy,
                               config=RecoveryConfig(budget=Budget(steps=10), device="cpu"))
    assert result.outcome.steps_done == 2 and len(result.reports) == 2
    for report in result.reports:  # each step's recovery wins back accuracy it lost
        assert report.best_metric > report.curve[0].metric + 0.2
    assert heldout_accuracy(model) == pytest.approx(result.reports[1].curve[-1].metric)


# -- data parallel ---------------------------------------------------------------------
def _launch(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)


@pytest.mark.slow  # two torchrun launches: ~30 s on the shared 2-core machine
def test_two_processes_and_one_with_the_same_effective_batch_give_the_same_loss_curve(tmp_path):
    script = str(ROOT / "tests" / "engine" / "recover_ddp_run.py")
    _launch([sys.executable, "-m", "torch.distributed.run", "--standalone",
             "--nproc_per_node", "2", script, str(tmp_path / "two.json"), "32", "12"])
    _launch([sys.executable, script, str(tmp_path / "one.json"), "64", "12"])
    two = json.loads((tmp_path / "two.json").read_text())
    one = json.loads((tmp_path / "one.json").read_text())
    assert (two["processes"], one["processes"]) == (2, 1)
    a = [row[1] for row in two["curve"] if row[1] is not None]
    b = [row[1] for row in one["curve"] if row[1] is not None]
    assert len(a) == len(b) == 12
    assert a == pytest.approx(b, rel=1e-4)
    assert a[-1] < a[0]


def test_the_model_leaves_recovery_in_the_mode_it_came_in():
    model, teacher, _ = pruned_demo()
    model.eval()
    recover(model, train_loader(), teacher=teacher,
            config=RecoveryConfig(budget=Budget(steps=2), device="cpu"))
    assert not any(m.training for m in model.modules())


def test_feature_distillation_needs_layers_whose_shapes_pruning_kept():
    model, teacher, _ = pruned_demo()
    report = recover(model, train_loader(), teacher=teacher,
                     config=RecoveryConfig(budget=Budget(steps=3), feature_layers=("fc",),
                                           device="cpu"))
    assert report.steps == 3
    with pytest.raises(ValueError, match="pick layers whose outputs pruning left unchanged"):
        recover(model, train_loader(), teacher=teacher,
                config=RecoveryConfig(budget=Budget(steps=1), feature_layers=("block",),
                                      device="cpu"))


def test_a_time_budget_stops_on_time():
    model, teacher, _ = pruned_demo()
    report = recover(model, train_loader(), teacher=teacher,
                     config=RecoveryConfig(budget=Budget(minutes=0.01), device="cpu"))
    assert report.stopped == "time" and report.steps >= 1
    assert 0.6 <= report.seconds < 5


def test_bf16_mixed_precision_on_the_cpu_goes_through_accelerate():
    model, teacher, _ = pruned_demo()
    report = recover(model, train_loader(), teacher=teacher,
                     config=RecoveryConfig(budget=Budget(steps=4), eval_every=2,
                                           mixed_precision="bf16", device="cpu"))
    assert report.mixed_precision == "bf16"
    losses = [p.loss for p in report.curve if p.loss is not None]
    assert losses and all(math.isfinite(v) for v in losses)
    # a later full-precision run in the same process gets full precision again
    report = recover(model, train_loader(), teacher=teacher,
                     config=RecoveryConfig(budget=Budget(steps=1), device="cpu",
                                           mixed_precision="no"))
    assert report.mixed_precision == "no"


def test_a_causal_lm_recovers_with_next_token_ce_and_kl_on_token_batches():
    transformers = pytest.importorskip("transformers")
    from engine.data.batch import Batch

    config = transformers.LlamaConfig(vocab_size=32, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    teacher = transformers.LlamaForCausalLM(config).eval()
    student = copy.deepcopy(teacher)
    with torch.no_grad():  # a damaged student: what pruning leaves behind
        for p in student.parameters():
            p.add_(0.2 * torch.randn_like(p))
    gen = torch.Generator().manual_seed(1)
    # a learnable corpus: counting sequences (token i+1 follows token i, mod 32)
    starts = torch.randint(0, 32, (64, 1), generator=gen)
    ids = (starts + torch.arange(16)) % 32
    batches = [Batch({"input_ids": ids[i:i + 16], "attention_mask": torch.ones(16, 16,
                                                                               dtype=torch.long)})
               for i in range(0, 64, 16)]

    def next_token_loss(model: nn.Module) -> float:
        with torch.no_grad():
            out = model(input_ids=ids[:16])
        return float(next_token_ce(out.logits, ids[:16]))

    before = next_token_loss(student)
    report = recover(student, batches, teacher=teacher, metric=next_token_loss,
                     metric_name="next-token loss", greater_is_better=False,
                     config=RecoveryConfig(budget=Budget(steps=24), eval_every=8, lr=3e-3,
                                           device="cpu"))
    assert report.loss_kind == "auto" and report.steps == 24
    assert next_token_loss(student) < before
    assert report.best_metric == pytest.approx(min(p.metric for p in report.curve), abs=1e-5)


def test_lora_recovery_trains_adapters_and_merges_them_into_a_plain_model():
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from engine.data.batch import Batch

    config = transformers.LlamaConfig(vocab_size=32, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    teacher = transformers.LlamaForCausalLM(config).eval()
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.2 * torch.randn_like(p))
    embed = student.model.embed_tokens.weight.detach().clone()
    gate = student.model.layers[0].mlp.gate_proj.weight.detach().clone()
    ids = (torch.randint(0, 32, (32, 1), generator=torch.Generator().manual_seed(1))
           + torch.arange(16)) % 32
    batches = [Batch({"input_ids": ids[i:i + 16]}) for i in range(0, 32, 16)]

    def loss_of(model: nn.Module) -> float:
        with torch.no_grad():
            return float(next_token_ce(model(input_ids=ids).logits, ids))

    before = loss_of(student)
    recover(student, batches, teacher=teacher,
            config=RecoveryConfig(budget=Budget(steps=20), lr=1e-2, lora_rank=4, device="cpu"))
    assert loss_of(student) < before
    assert type(student.model.layers[0].mlp.gate_proj) is nn.Linear  # merged, no peft left
    assert not torch.equal(student.model.layers[0].mlp.gate_proj.weight, gate)  # adapted
    assert torch.equal(student.model.embed_tokens.weight, embed)  # not a LoRA target
    assert all(p.requires_grad for p in student.parameters())


def test_same_seed_same_weights_other_seed_other_weights():
    def run(seed: int) -> dict[str, torch.Tensor]:
        model, teacher, _ = pruned_demo()
        recover(model, train_loader(), teacher=teacher,
                config=RecoveryConfig(budget=Budget(steps=5), seed=seed, device="cpu"))
        return model.state_dict()

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
