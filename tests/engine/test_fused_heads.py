"""Fused-qkv decoders (Phi-3, Falcon, GPT-NeoX) lose whole heads; CLIP's residual prunes.

Tiny configs, random weights. The oracle is the one of test_attention_equivalence:
zero what will be pruned, prune, every output unchanged to 1e-5.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

from engine import families
from engine.importance import MagnitudeImportance
from engine.pruner import BasePruner

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _prune(model: nn.Module, inputs: Any, **kw: Any) -> BasePruner:
    args = families.pruner_kwargs(model)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = BasePruner(model, inputs, MagnitudeImportance(), **args)
        pruner.step()
    return pruner


# ------------------------------------------------------------------- CLIP
def _clip() -> nn.Module:
    torch.manual_seed(0)
    text = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=16)
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, image_size=32, patch_size=8)
    cfg = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)
    return transformers.CLIPModel(cfg).eval()


CLIP_INPUTS = {
    "input_ids": torch.randint(0, 128, (2, 8), generator=torch.Generator().manual_seed(0)),
    "pixel_values": torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
}


def test_clip_default_output_is_the_image_text_logits():
    model = _clip()
    with torch.no_grad():
        out = model(**CLIP_INPUTS)
    picked = families.model_output(out)
    assert picked is out.logits_per_image


def test_clip_residual_width_prunes_at_ratio_half():
    """Returned whole, CLIP's output locks both towers' residual widths (what the
    default did before): about 0.59 of the params stay. Its logits free them."""
    whole = _clip()
    n0 = _params(whole)
    _prune(whole, CLIP_INPUTS, pruning_ratio=0.5, output_transform=lambda out: out)
    kept_whole = _params(whole) / n0

    model = _clip()
    _prune(model, CLIP_INPUTS, pruning_ratio=0.5)
    kept = _params(model) / n0
    assert kept_whole > 0.5  # the residual stream stayed
    assert kept < 0.35 and kept < kept_whole - 0.2
    assert model.text_model.embeddings.token_embedding.weight.shape[1] < 64
    assert model.vision_model.embeddings.patch_embedding.weight.shape[0] < 64
    with torch.no_grad():
        out = model(**CLIP_INPUTS)
    assert out.logits_per_image.shape == (2, 2)
    assert torch.isfinite(out.logits_per_image).all()
