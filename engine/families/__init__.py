"""Model families (Hugging Face transformers, timm, torchvision attention) made prunable.

`refresh_attributes(model)` fixes the attributes and config that forward reads
after pruning; `detect_num_heads(model)` fills Torch-Pruning's `num_heads`;
`check_head_dim_pruning` refuses head-dim pruning under rotary embeddings;
`pruner_kwargs(model)` bundles what a no-code tool passes to BasePruner. The graph
uses this package too: `coupling` ties q/k/v head sizes that one attribute describes
(BERT, HF ViT), `outputs.output_transform_for` picks HF logits when none is given,
and engine.function.attributes calls `refresh_attributes` after every prune (and in
the probe). Nothing here imports transformers or timm: families are recognised by
attribute names.
"""

from __future__ import annotations

from .attention import AttentionInfo, detect_num_heads, find_attention, head_layout
from .outputs import (
    model_output,
    output_transform_for,
    pruner_kwargs,
    root_module_types_for,
)
from .refresh import RefreshReport, refresh_attributes
from .rope import RopeHeadDimError, check_head_dim_pruning, rope_attention

__all__ = [
    "AttentionInfo",
    "RefreshReport",
    "RopeHeadDimError",
    "check_head_dim_pruning",
    "detect_num_heads",
    "find_attention",
    "head_layout",
    "model_output",
    "output_transform_for",
    "pruner_kwargs",
    "refresh_attributes",
    "rope_attention",
    "root_module_types_for",
]
