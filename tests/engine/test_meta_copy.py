"""meta_copy: what copy.deepcopy would give, parameters and buffers on meta."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torchvision

from engine.graph.probe import meta_copy


class Config:
    def __init__(self) -> None:
        self.hidden_size = 8
        self.names = ["a"]


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.head = nn.Linear(8, 10, bias=False)
        self.head.weight = self.emb.weight
        self.config = Config()
        self.widths = [8, 8]
        self.register_buffer("scale", torch.ones(8))
        self.extra = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(x) * self.scale)


class CopiesItself(nn.Module):
    copied = 0

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def __deepcopy__(self, memo: dict) -> CopiesItself:
        CopiesItself.copied += 1
        new = CopiesItself()
        new.fc = copy.deepcopy(self.fc, memo)
        return new


def test_structure_and_meta_tensors_match_the_original():
    model = torchvision.models.resnet18(weights=None).eval()
    clone = meta_copy(model)
    assert not clone.training
    assert [(n, type(m)) for n, m in clone.named_modules()] == [
        (n, type(m)) for n, m in model.named_modules()
    ]
    for (n, p), (n2, q) in zip(model.named_parameters(), clone.named_parameters(), strict=True):
        assert n == n2 and q.is_meta and q.shape == p.shape and q.requires_grad == p.requires_grad
        assert isinstance(q, nn.Parameter)
    for (_, b), (_, c) in zip(model.named_buffers(), clone.named_buffers(), strict=True):
        assert c.is_meta and c.shape == b.shape and c.dtype == b.dtype
    assert clone.layer1[0].conv1.stride == model.layer1[0].conv1.stride
    out = clone(torch.empty(1, 3, 32, 32, device="meta"))
    assert out.shape == (1, 1000) and not model.fc.weight.is_meta


def test_ties_stay_tied_and_mutable_attributes_are_not_shared():
    model = Tied()
    calls: list[int] = []
    model.head.register_forward_hook(lambda m, i, o: calls.append(1))
    clone = meta_copy(model)
    assert clone.head.weight is clone.emb.weight  # the tie survives
    assert clone.config is not model.config and clone.config.hidden_size == 8
    clone.config.hidden_size = 4
    clone.config.names.append("b")
    clone.widths[0] = 4
    assert model.config.hidden_size == 8 and model.config.names == ["a"] and model.widths == [8, 8]
    clone(torch.zeros(1, 3, dtype=torch.long, device="meta"))
    assert calls == [1]  # hooks are copied with the module
    assert clone.scale.is_meta and clone.extra is None


def test_a_module_that_copies_itself_is_asked_to():
    model = nn.Sequential(CopiesItself(), nn.ReLU())
    before = CopiesItself.copied
    clone = meta_copy(model)
    assert CopiesItself.copied == before + 1
    assert clone[0].fc.weight.is_meta and not model[0].fc.weight.is_meta


def test_the_memo_maps_every_module_parameter_and_buffer_to_its_copy():
    model = Tied()
    memo: dict = {}
    clone = meta_copy(model, memo)
    assert memo[id(model)] is clone and memo[id(model.head)] is clone.head
    assert memo[id(model.emb.weight)] is clone.emb.weight is clone.head.weight
    assert memo[id(model.scale)] is clone.scale
