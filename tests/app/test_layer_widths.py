"""The GUI's layer widths are the engine's (Session.layer_widths), not guesses from
attribute names: nn.Embedding and nn.LSTM used to show None in the result table."""

from __future__ import annotations

import torch
from torch import nn

from app import engine_api
from app.dialogs.prune_result import PruneResultDialog
from engine.plan import PruningPlan
from engine.workflow import Session


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 32)
        self.lstm = nn.LSTM(32, 48, batch_first=True)
        self.head = nn.Linear(48, 5)

    def forward(self, x):
        return self.head(self.lstm(self.emb(x))[0][:, -1])


def test_result_table_shows_embedding_and_lstm_widths(qtbot) -> None:
    torch.manual_seed(0)
    session = Session(Tagger().eval(), torch.randint(0, 100, (2, 7)), source="tagger")
    session.trace()
    doc = engine_api.document_of(session, "tagger", "Tagger")
    assert engine_api.layer_widths(doc)["emb"] == (32, 32)
    assert engine_api.layer_widths(doc)["lstm"] == (32, 48)
    result = engine_api.prune_copy(doc, PruningPlan(pruning_ratio=0.25))
    rows = {c.name: c for c in result.layers}
    assert (rows["lstm"].in_before, rows["lstm"].out_before) == (32, 48)
    assert rows["lstm"].out_after < 48 and rows["head"].in_after == rows["lstm"].out_after
    assert rows["emb"].out_before == 32 and rows["emb"].out_after is not None
    dialog = PruneResultDialog(result)
    qtbot.addWidget(dialog)
    cells = {
        dialog.table.item(r, 0).text(): dialog.table.item(r, 3).text()
        for r in range(dialog.table.rowCount())
    }
    assert cells["lstm"] == f"48 → {rows['lstm'].out_after}"
    assert "None" not in " ".join(cells.values())
    assert dialog.rows["Accuracy"].startswith("not measured")  # no data chosen
