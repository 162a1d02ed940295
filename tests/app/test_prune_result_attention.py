"""The prune result dialog says how many attention layers shrank, and why the rest did not."""

from __future__ import annotations

import torch
import torchvision
from PySide6.QtWidgets import QLabel
from torch import nn

from app import engine_api
from app.dialogs.prune_result import PruneResultDialog
from engine.plan import PruningPlan
from engine.workflow import Session


def _dialog(qtbot, model: nn.Module, x: torch.Tensor, plan: PruningPlan) -> PruneResultDialog:
    session = Session(model.eval(), x, source="net")
    session.trace()
    doc = engine_api.document_of(session, "net", "Net")
    result = engine_api.prune_copy(doc, plan)
    dialog = PruneResultDialog(result)
    qtbot.addWidget(dialog)
    return dialog


def _shown(dialog: PruneResultDialog) -> list[str]:
    return [label.text() for label in dialog.findChildren(QLabel)]


def test_dialog_shows_the_reason_attention_stayed_at_full_width(qtbot):
    torch.manual_seed(0)  # MultiheadAttention straight on the input: its width is the input's
    model = nn.Sequential(nn.TransformerEncoderLayer(8, 2, 64, dropout=0.0, batch_first=True),
                          nn.Linear(8, 10))
    dialog = _dialog(qtbot, model, torch.randn(1, 6, 8), PruningPlan(pruning_ratio=0.5))
    line = dialog.rows["Attention"]
    assert line.startswith("all 1 attention layers stayed at full width")
    assert "MultiheadAttention: fixed input channels" in line
    assert line in _shown(dialog)


def test_dialog_counts_pruned_attention_layers(qtbot):
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64,
        num_classes=10)
    plan = PruningPlan(pruning_ratio=0.5, ignored_layers=["heads.head"])
    dialog = _dialog(qtbot, model, torch.randn(1, 3, 32, 32), plan)
    assert dialog.rows["Attention"] == "attention layers pruned: 2 / 2"
    assert "attention layers pruned: 2 / 2" in _shown(dialog)


def test_no_attention_row_without_attention(qtbot):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    dialog = _dialog(qtbot, model, torch.randn(2, 8), PruningPlan(pruning_ratio=0.5))
    assert "Attention" not in dialog.rows


def test_dialog_names_every_lock_reason(qtbot):
    from engine.families.report import AttentionReport

    torch.manual_seed(0)
    model = nn.Sequential(nn.TransformerEncoderLayer(8, 2, 64, dropout=0.0, batch_first=True),
                          nn.Linear(8, 10))
    session = Session(model.eval(), torch.randn(1, 6, 8), source="net")
    session.trace()
    result = engine_api.prune_copy(engine_api.document_of(session, "net", "Net"),
                                   PruningPlan(pruning_ratio=0.5))
    reasons = [f"reshape lock {i}" for i in range(5)]
    result.report.attention = AttentionReport(1, 0, ["0.self_attn"], reasons)
    dialog = PruneResultDialog(result)
    qtbot.addWidget(dialog)
    line = dialog.rows["Attention"]
    assert all(r in line for r in reasons) and "also locked: reshape lock 3" in line
