"""The probe's units are read from the labels; they must equal `smallest_unit` of each group."""

from __future__ import annotations

import torch
import torch.nn as nn

import engine
from engine.graph.probe import last_unit_class, smallest_unit, unit_ports


def _items(group) -> list[tuple[str, str, list[int]]]:  # noqa: ANN001
    return [(it.dep.target.name, it.dep.handler.__name__, list(it.idxs)) for it in group]


def _check(model: nn.Module, x) -> int:  # noqa: ANN001
    dg = engine.DependencyGraph().build_dependency(model, x, validate=False)
    roots = list(dg.group_roots(None, (object,)))
    groups = list(dg.get_all_groups(root_module_types=(object,)))
    assert len(roots) == len(groups)
    multi = 0
    for (state, classes), g in zip(roots, groups, strict=True):
        assert state.node is g[0].dep.target and classes.tolist() == g.classes.tolist()
        ours, ref = dg.last_unit(state, classes), smallest_unit(dg, g)
        assert (ours is None) == (ref is None)
        if ref is not None:
            assert _items(ours) == _items(ref)
            multi += len(ref[0].idxs) > 1
    return multi


def test_last_unit_matches_smallest_unit_with_multi_channel_units() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=50, attn_implementation="eager",
    )
    llama = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 50, (1, 6))
    assert _check(llama, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}) >= 1

    conv = nn.Sequential(
        nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.Conv2d(8, 4, 1)
    ).eval()
    assert _check(conv, torch.randn(1, 3, 8, 8)) == 2  # units span the conv groups


def _merged_unit_ports(dg) -> dict[int, list[int]]:  # noqa: ANN001
    """Per port, the indices the one-group-at-a-time units remove (the reference)."""
    out: dict[int, list[int]] = {}
    for state, classes in dg.group_roots(None, (object,)):
        unit = dg.last_unit(state, classes)
        if unit is None:
            continue
        for k, item in zip(unit.derivation.port_ids, unit, strict=True):
            out.setdefault(k, []).extend(item.idxs)
    return {k: sorted(v) for k, v in out.items()}


def test_all_units_at_once_equal_the_units_one_by_one() -> None:
    import torchvision
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=50, attn_implementation="eager",
    )
    ids = torch.randint(0, 50, (1, 6))
    cases = [
        (LlamaForCausalLM(cfg).eval(), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}),
        (nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=4),
                       nn.Conv2d(8, 4, 1), nn.Conv2d(4, 1, 1), nn.Conv2d(1, 3, 1)).eval(),
         torch.randn(1, 3, 8, 8)),  # conv 4->1: its one-channel unit would empty it
        (torchvision.models.resnet18(weights=None).eval(), torch.randn(1, 3, 32, 32)),
    ]
    for model, x in cases:
        dg = engine.DependencyGraph().build_dependency(model, x, validate=False)
        picked = [last_unit_class(s, c) for s, c in dg.group_roots(None, (object,))]
        fast = unit_ports(dg.index, [c for c in picked if c is not None])
        assert {k: v.tolist() for k, v in fast.items()} == _merged_unit_ports(dg)
        assert fast  # something to probe in every case
