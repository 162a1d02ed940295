"""A plan's `drop_blocks`: validated against the model, applied after width pruning, and
previewed exactly (the preview's MACs/params equal those counted on the pruned model)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision

from engine.depth import drop_blocks
from engine.plan import PlanError, PruningPlan, apply_plan, preview_plan
from engine.utils import count_ops_and_params

X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


@pytest.mark.parametrize("ratio", [0.0, 0.3])
def test_preview_of_dropped_blocks_is_exact(ratio):
    model = _resnet()
    plan = PruningPlan(pruning_ratio=ratio, drop_blocks=["layer3.1", "layer4.1"])
    preview = preview_plan(model, X, plan)
    pruned = copy.deepcopy(model)
    outcome = apply_plan(pruned, X, plan)
    assert isinstance(pruned.layer3[1], torch.nn.Identity)
    assert isinstance(pruned.layer4[1], torch.nn.Identity)
    macs, params = count_ops_and_params(pruned, X)
    assert (preview.macs_after, preview.params_after) == (int(macs), int(params))
    assert (outcome.macs_after, outcome.params_after) == (int(macs), int(params))
    dropped = preview.by_name()["layer4.1.conv1"]
    assert (dropped.out_after, dropped.params_after, dropped.macs_after) == (0, 0, 0)
    assert pruned(X).shape == (1, 10)
    # the original model (and the previewer's shadow) keeps its blocks
    assert isinstance(model.layer3[1], torchvision.models.resnet.BasicBlock)


def test_depth_only_plan_counts_as_the_blocks_removed_by_hand():
    model = _resnet()
    by_hand = copy.deepcopy(model)
    drop_blocks(by_hand, ["layer1.1"])
    macs, params = count_ops_and_params(by_hand, X)
    conv = 64 * 64 * 3 * 3 * 16 * 16  # one 3x3 64->64 conv at 16x16 (after stem + pool)
    full_macs, full_params = count_ops_and_params(model, X)
    assert full_params - params == 2 * (64 * 64 * 9) + 2 * (2 * 64)  # 2 convs + 2 BNs
    assert full_macs - macs >= 2 * conv
    preview = preview_plan(model, X, PruningPlan(pruning_ratio=0.0, drop_blocks=["layer1.1"]))
    assert (preview.macs_after, preview.params_after) == (int(macs), int(params))


def test_bad_block_names_are_one_line_problems():
    model = _resnet()
    with pytest.raises(PlanError) as e:
        PruningPlan(drop_blocks=["layer2.0", "layer9.1", "layer3.1", "layer3.1"]).validate(model)
    problems = e.value.problems
    assert any(p.startswith("drop_blocks[0]: 'layer2.0' is not a removable block")
               for p in problems)
    assert any(p.startswith("drop_blocks[1]: 'layer9.1' is no module") for p in problems)
    assert any(p.startswith("drop_blocks[3]: 'layer3.1' is listed twice") for p in problems)
    assert all("\n" not in p for p in problems)
    assert "layer4.1" in problems[0]  # names the blocks that can go
    with pytest.raises(PlanError, match=r"drop_blocks\[0\]: must be a block name"):
        PruningPlan.from_dict({"drop_blocks": [3]})
    with pytest.raises(PlanError, match="drop_blocks: must be a list"):
        PruningPlan.from_dict({"drop_blocks": "layer3.1"})


def test_plan_json_round_trip_keeps_drop_blocks():
    plan = PruningPlan(drop_blocks=["layer3.1"])
    assert PruningPlan.from_json(plan.to_json()).drop_blocks == ["layer3.1"]


def test_llama_layers_dropped_by_plan_preview_exact_and_renumbered():
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=4, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 128, (1, 8), generator=torch.Generator().manual_seed(0))
    plan = PruningPlan(pruning_ratio=0.0, drop_blocks=["model.layers.1", "model.layers.3"])
    preview = preview_plan(model, {"input_ids": ids}, plan)
    pruned = copy.deepcopy(model)
    apply_plan(pruned, {"input_ids": ids}, plan)
    assert pruned.config.num_hidden_layers == 2 and model.config.num_hidden_layers == 4
    # the kept layers are the old 0 and 2 (a name means the block before any removal)
    kept = [layer.self_attn.q_proj.weight for layer in pruned.model.layers]
    assert torch.equal(kept[0], model.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(kept[1], model.model.layers[2].self_attn.q_proj.weight)
    macs, params = count_ops_and_params(pruned, {"input_ids": ids})
    assert (preview.macs_after, preview.params_after) == (int(macs), int(params))
