"""The prune summary says how many attention layers shrank, and why the rest did not."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from engine.families.report import attention_report, attention_widths


class Net(nn.Module):
    """A timm-style fused attention (qkv Linear, num_heads) over a 32-wide stream."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.Module()
        self.attn.num_heads = 4
        self.attn.qkv = nn.Linear(32, 96)
        self.attn.proj = nn.Linear(32, 32)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return Net().eval()


def test_report_counts_pruned_and_full_width_layers():
    model = _net()
    before = attention_widths(model)
    assert before == {"attn": 96}
    rep = attention_report(before, model, ["reshape merges two channel axes", "conv input"])
    assert (rep.total, rep.pruned, rep.full_width) == (1, 0, ["attn"])
    assert rep.all_full_width
    assert rep.summary().startswith("all 1 attention layers stayed at full width")
    assert "reshape merges two channel axes" in rep.summary() and "conv input" not in rep.summary()
    with torch.no_grad():
        model.attn.qkv.weight = nn.Parameter(model.attn.qkv.weight[:48])
    rep = attention_report(before, model)
    assert (rep.pruned, rep.all_full_width) == (1, False)
    assert rep.summary() == "attention layers pruned: 1 / 1"


def test_apply_plan_outcome_carries_the_attention_report():
    from engine.plan import PruningPlan, apply_plan

    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64,
        num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    plan = PruningPlan(pruning_ratio=0.5, ignored_layers=["heads.head"])
    out = apply_plan(model, x, plan)
    assert out.attention is not None and out.attention.total == 2
    assert out.attention.pruned == 2 and out.attention.full_width == []


def test_session_prune_report_carries_the_attention_report():
    from engine.plan import PruningPlan
    from engine.workflow import Session

    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64,
        num_classes=10).eval()
    session = Session(model, torch.randn(1, 3, 32, 32))
    report = session.prune(PruningPlan(pruning_ratio=0.5, ignored_layers=["heads.head"]),
                           latency=False).report
    assert report.attention is not None
    assert report.attention.to_dict()["pruned"] == report.attention.to_dict()["total"] == 2
    assert report.attention.summary() == "attention layers pruned: 2 / 2"
    mlp = Session(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval(),
                  torch.randn(2, 8))
    assert mlp.prune(PruningPlan(pruning_ratio=0.5), latency=False).report.attention is None
