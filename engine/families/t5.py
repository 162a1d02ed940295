"""T5's decoder-output scale, kept when the residual width (d_model) is pruned.

T5ForConditionalGeneration multiplies the decoder's output by `model_dim ** -0.5`
before the tied lm_head (`config.scale_decoder_outputs`), with `model_dim` copied from
`config.d_model` at construction. Pruning d_model leaves the live model's `model_dim`
at the old width (right), but a model rebuilt from the refreshed config would scale by
the new width's root and its logits would differ by sqrt(old / new). So the ratio is
folded into the decoder's final RMS norm weight (which feeds only that scale) and
`model_dim` follows the config: the live and the reloaded model compute the original
function. Recognised by attribute names; transformers is not imported.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["fold_decoder_output_scale"]


def fold_decoder_output_scale(model: nn.Module, report: Any) -> None:
    """Make `model.model_dim` equal `config.d_model`, folding the scale change into
    `decoder.final_layer_norm.weight`. No-op unless both differ on a T5-style model."""
    config = getattr(model, "config", None)
    old, new = getattr(model, "model_dim", None), getattr(config, "d_model", None)
    norm = getattr(getattr(model, "decoder", None), "final_layer_norm", None)
    weight = getattr(norm, "weight", None)
    if not (isinstance(old, int) and isinstance(new, int) and old != new and new > 0):
        return
    if not getattr(config, "scale_decoder_outputs", False):
        report.note("", model, "model_dim", new)  # read nowhere else: keep it truthful
        return
    if not isinstance(weight, torch.Tensor):
        report.problems.append("model_dim: decoder.final_layer_norm not found; the scale "
                               "of a model rebuilt from the config would differ")
        return
    with torch.no_grad():
        weight.mul_(math.sqrt(new / old))  # x * w' * new**-0.5 == x * w * old**-0.5
    report.note("", model, "model_dim", new)
