"""The heads options follow the open model: off without attention, whole heads only under RoPE."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import VisionTransformer

from app import engine_api

pytestmark = pytest.mark.gui


def _tiny_vit() -> VisionTransformer:
    return VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64
    )


def _tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(cfg)


def test_attention_summary_counts_blocks_and_rope():
    vit = engine_api.attention_summary(_tiny_vit())
    assert (vit.blocks, vit.rope_blocks) == (2, 0)
    assert vit.text == "2 attention blocks"
    llama = engine_api.attention_summary(_tiny_llama())
    assert (llama.blocks, llama.rope_blocks) == (2, 2)
    assert "2 with rotary embeddings" in llama.text
    conv = engine_api.attention_summary(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)))
    assert conv.blocks == 0 and conv.text == "no attention layers in this model"
    assert engine_api.attention_summary(None).blocks == 0


def test_demo_disables_the_heads_options(demo_window):
    panel = demo_window.settings_panel
    assert not panel.heads_box.isEnabled()
    assert panel.heads_note.text() == "no attention layers in this model"


def test_rope_models_offer_whole_heads_only(demo_window):
    panel = demo_window.settings_panel
    att = engine_api.attention_summary(_tiny_llama())
    panel.set_attention(att.blocks, att.rope_blocks, att.text)
    assert panel.heads_box.isEnabled()
    assert not panel.head_dims.isEnabled() and panel.num_heads.isEnabled()
    att = engine_api.attention_summary(_tiny_vit())
    panel.set_attention(att.blocks, att.rope_blocks, att.text)
    assert panel.head_dims.isEnabled() and panel.num_heads.isEnabled()


def test_round_to_tooltip_names_this_cpus_channel_block(demo_window):
    from engine.utils.hardware import preferred_channel_multiple

    block = preferred_channel_multiple()
    assert engine_api.preferred_round_to() == block
    assert f"blocks of {block} channels" in demo_window.settings_panel.round_to.toolTip()
