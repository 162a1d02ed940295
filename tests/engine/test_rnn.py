"""LSTM / GRU / Embedding pruning: hidden units of all layers and directions, embedding dims."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import engine as tp
from engine import function as F

ROOTS = [nn.Linear, nn.RNNBase, nn.Embedding]


class TextClassifier(nn.Module):
    """Embedding -> 2-layer bidirectional RNN -> Linear on the last step."""

    def __init__(self, cell: type = nn.LSTM, use_state: bool = False, **kw) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.rnn = cell(16, 24, num_layers=2, bidirectional=True, batch_first=True, **kw)
        width = kw.get("proj_size") or 24
        self.use_state = use_state
        self.fc = nn.Linear(width if use_state else 2 * width, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, state = self.rnn(self.emb(tokens))
        if self.use_state:
            h_n = state[0] if isinstance(state, tuple) else state
            return self.fc(h_n[-1])
        return self.fc(out[:, -1])


TOKENS = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(0))


def model_of(cell: type = nn.LSTM, **kw) -> TextClassifier:
    torch.manual_seed(0)
    return TextClassifier(cell, **kw).eval()


def prune_half(model: TextClassifier) -> None:
    imp = tp.importance.MagnitudeImportance(target_types=[nn.Linear, nn.Embedding])
    tp.pruner.BasePruner(model, TOKENS, imp, pruning_ratio=0.5,
                         ignored_layers=[model.fc], root_module_types=ROOTS).step()


@pytest.mark.parametrize("cell, gates", [(nn.LSTM, 4), (nn.GRU, 3)])
def test_text_classifier_hidden_and_embedding_dims(cell, gates):
    model = model_of(cell)
    prune_half(model)
    rnn = model.rnn
    assert (rnn.hidden_size, rnn.input_size, model.emb.embedding_dim) == (12, 8, 8)
    assert model.fc.in_features == 24
    for sfx in ("", "_reverse"):
        assert tuple(getattr(rnn, f"weight_ih_l0{sfx}").shape) == (gates * 12, 8)
        assert tuple(getattr(rnn, f"weight_ih_l1{sfx}").shape) == (gates * 12, 24)
        assert tuple(getattr(rnn, f"weight_hh_l1{sfx}").shape) == (gates * 12, 12)
        assert tuple(getattr(rnn, f"bias_hh_l1{sfx}").shape) == (gates * 12,)
    assert model(TOKENS).shape == (2, 3)


def test_lstm_zero_importance_units_leave_output_unchanged():
    model = model_of(nn.LSTM)
    rnn, h = model.rnn, 24
    gone, emb_gone = [0, 5, 7], [2, 3]
    with torch.no_grad():  # make hidden units 0, 5, 7 and embedding dims 2, 3 unused
        for i in gone:
            model.fc.weight[:, [i, h + i]] = 0
            for k in range(2):
                for sfx in ("", "_reverse"):
                    getattr(rnn, f"weight_hh_l{k}{sfx}")[:, i] = 0
                    if k:
                        getattr(rnn, f"weight_ih_l{k}{sfx}")[:, [i, h + i]] = 0
        model.emb.weight[:, emb_gone] = 0
    ref = model(TOKENS)
    imp = tp.importance.MagnitudeImportance(target_types=[nn.Linear, nn.Embedding])
    pruner = tp.pruner.BasePruner(model, TOKENS, imp, pruning_ratio=0.125,
                                  ignored_layers=[model.fc], root_module_types=ROOTS)
    plans = {p.root_name: p.idxs for p in pruner.plan_step()}
    assert plans["rnn"] == [0, 5, 7, 24, 29, 31]  # both directions of each unit
    assert plans["emb"] == [2, 3]
    pruner.step()
    assert (rnn.hidden_size, model.emb.embedding_dim) == (21, 14)
    torch.testing.assert_close(model(TOKENS), ref, atol=1e-5, rtol=0)


def test_hidden_state_output_is_coupled():
    model = model_of(nn.GRU, use_state=True)
    dg = tp.DependencyGraph().build_dependency(model, TOKENS)
    group = dg.get_pruning_group(model.rnn, F.prune_lstm_out_channels, [1])
    assert sorted((dg.module2name[it.dep.target.module], it.idxs) for it in group) == [
        ("fc", [1]), ("rnn", [1, 25])]
    group.prune()
    assert (model.rnn.hidden_size, model.fc.in_features) == (23, 23)
    assert model(TOKENS).shape == (2, 3)


def test_lstm_projection_is_pruned_not_the_cells():
    model = model_of(nn.LSTM, proj_size=8)
    prune_half(model)
    rnn = model.rnn
    assert (rnn.hidden_size, rnn.proj_size, rnn.input_size) == (24, 4, 8)
    assert tuple(rnn.weight_hr_l1_reverse.shape) == (4, 24)
    assert tuple(rnn.weight_hh_l1.shape) == (96, 4)
    assert tuple(rnn.weight_ih_l1.shape) == (96, 8)
    assert model(TOKENS).shape == (2, 3)


def test_rnn_pruner_refuses_bad_indices():
    rnn = nn.LSTM(4, 6)
    with pytest.raises(ValueError, match="out of range"):
        F.prune_lstm_out_channels(rnn, [12])
    with pytest.raises(ValueError, match="at least one"):
        F.prune_lstm_out_channels(rnn, list(range(6)))


def test_pruned_classifier_is_exactly_a_smaller_one():
    """Same outputs, MACs and params as the classifier built with embedding 8, hidden 12."""
    model = model_of(nn.LSTM)
    prune_half(model)
    small = TextClassifier(nn.LSTM).eval()
    small.emb = nn.Embedding(50, 8)
    small.rnn = nn.LSTM(8, 12, num_layers=2, bidirectional=True, batch_first=True)
    small.fc = nn.Linear(24, 3)
    small.load_state_dict(model.state_dict())
    torch.testing.assert_close(small(TOKENS), model(TOKENS), atol=1e-6, rtol=0)
    assert tp.utils.count_ops_and_params(model, TOKENS) == tp.utils.count_ops_and_params(
        small, TOKENS)
