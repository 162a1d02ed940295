"""Depth pruning: whole residual blocks go; importance is 1 - cos(in, out) from data.

Oracles: a block made an identity (its residual branch's last weights zeroed) is ranked
least important, and removing it leaves the outputs unchanged to 1e-5; a Hugging Face
decoder loses a layer, its config and layer indices follow, and it saves and reloads.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

from engine.data.batch import Batch
from engine.depth import block_importance, find_depth_groups

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


def test_resnet_identity_blocks_found_and_scored():
    model = _resnet()
    groups = find_depth_groups(model)
    assert [g.name for g in groups] == ["layer1.0", "layer1.1", "layer2.1", "layer3.1",
                                        "layer4.1"]
    with torch.no_grad():  # layer3.1's residual branch adds nothing: out = relu(x) = x
        model.layer3[1].bn2.weight.zero_()
        model.layer3[1].bn2.bias.zero_()
    scores = block_importance(model, groups, [Batch(X), Batch(X[:1])])
    assert set(scores) == {g.name for g in groups}
    assert min(scores, key=scores.get) == "layer3.1" and scores["layer3.1"] < 1e-6
    assert all(0 <= s <= 2 for s in scores.values())
    with torch.no_grad():
        before = model(X)
    params = sum(p.numel() for p in model.parameters())
    next(g for g in groups if g.name == "layer3.1").prune()
    assert isinstance(model.layer3[1], torch.nn.Identity)
    assert sum(p.numel() for p in model.parameters()) < params
    with torch.no_grad():
        torch.testing.assert_close(model(X), before, atol=1e-5, rtol=0)


def test_vit_encoder_blocks_are_depth_groups():
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=3,
                                               num_heads=2, hidden_dim=32, mlp_dim=64).eval()
    groups = find_depth_groups(vit)
    assert [g.name for g in groups] == [f"encoder.layers.encoder_layer_{i}" for i in range(3)]
    groups[1].prune()
    assert vit(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


def test_llama_layer_removed_config_and_cache_follow(tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=4, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 128, (1, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # layer 2 writes nothing into the residual stream
        model.model.layers[2].self_attn.o_proj.weight.zero_()
        model.model.layers[2].mlp.down_proj.weight.zero_()
        before = model(ids).logits
    groups = find_depth_groups(model)
    assert [g.name for g in groups] == [f"model.layers.{i}" for i in range(4)]
    scores = block_importance(model, groups, [{"input_ids": ids}])
    assert min(scores, key=scores.get) == "model.layers.2"
    groups[2].prune()
    assert model.config.num_hidden_layers == 3 and len(model.model.layers) == 3
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1, 2]
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, before, atol=1e-5, rtol=0)
        out = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 11)
    model.save_pretrained(tmp_path)
    again = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert again.config.num_hidden_layers == 3
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, before, atol=1e-5, rtol=0)
