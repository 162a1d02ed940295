"""Per-layer pruning functions (Torch-Pruning's ``tp.function`` / ``tp.pruner.function``).

``idxs`` passed to every function are channel indices to REMOVE. Layers are
modified in place and Parameter/buffer objects keep their identity.
"""

from __future__ import annotations

from .activation import PReLUPruner
from .base import BasePruningFunc, keep_indices, normalize_idxs, prune_tensor_
from .conv import ConvPruner, ConvTransposePruner, is_depthwise_conv
from .linear import EmbeddingPruner, LinearPruner
from .mha import MultiheadAttentionPruner
from .norm import (
    BatchnormPruner,
    GroupNormPruner,
    InstanceNormPruner,
    LayernormPruner,
    RMSNormPruner,
)
from .parameter import ParameterPruner
from .registry import _DEFAULTS, PrunerRegistry, default_pruners, handler_kind, handler_name
from .rnn import RNNPruner

_conv = _DEFAULTS["conv"]
_conv_transpose = _DEFAULTS["conv_transpose"]
_linear = _DEFAULTS["linear"]
_batchnorm = _DEFAULTS["batchnorm"]
_layernorm = _DEFAULTS["layernorm"]
_groupnorm = _DEFAULTS["groupnorm"]
_instancenorm = _DEFAULTS["instancenorm"]
_prelu = _DEFAULTS["prelu"]
_embedding = _DEFAULTS["embedding"]
_rmsnorm = _DEFAULTS["rmsnorm"]
_parameter = _DEFAULTS["parameter"]
_mha = _DEFAULTS["multihead_attention"]
_rnn = _DEFAULTS["lstm"]

prune_conv_out_channels = _conv.prune_out_channels
prune_conv_in_channels = _conv.prune_in_channels
# Depthwise convs are handled by ConvPruner itself (groups == in_channels).
prune_depthwise_conv_out_channels = _conv.prune_out_channels
prune_depthwise_conv_in_channels = _conv.prune_in_channels
prune_conv_transpose_out_channels = _conv_transpose.prune_out_channels
prune_conv_transpose_in_channels = _conv_transpose.prune_in_channels
prune_linear_out_channels = _linear.prune_out_channels
prune_linear_in_channels = _linear.prune_in_channels
prune_batchnorm_out_channels = _batchnorm.prune_out_channels
prune_batchnorm_in_channels = _batchnorm.prune_in_channels
prune_layernorm_out_channels = _layernorm.prune_out_channels
prune_layernorm_in_channels = _layernorm.prune_in_channels
prune_groupnorm_out_channels = _groupnorm.prune_out_channels
prune_groupnorm_in_channels = _groupnorm.prune_in_channels
prune_instancenorm_out_channels = _instancenorm.prune_out_channels
prune_instancenorm_in_channels = _instancenorm.prune_in_channels
prune_prelu_out_channels = _prelu.prune_out_channels
prune_prelu_in_channels = _prelu.prune_in_channels
prune_embedding_out_channels = _embedding.prune_out_channels
prune_embedding_in_channels = _embedding.prune_in_channels
prune_rmsnorm_out_channels = _rmsnorm.prune_out_channels
prune_rmsnorm_in_channels = _rmsnorm.prune_in_channels
prune_parameter_out_channels = _parameter.prune_out_channels
prune_parameter_in_channels = _parameter.prune_in_channels
prune_multihead_attention_out_channels = _mha.prune_out_channels
prune_multihead_attention_in_channels = _mha.prune_in_channels
prune_lstm_out_channels = _rnn.prune_out_channels  # Torch-Pruning's names; GRU/RNN too
prune_lstm_in_channels = _rnn.prune_in_channels

__all__ = [
    "BasePruningFunc",
    "ConvPruner",
    "ConvTransposePruner",
    "LinearPruner",
    "BatchnormPruner",
    "LayernormPruner",
    "GroupNormPruner",
    "InstanceNormPruner",
    "PReLUPruner",
    "EmbeddingPruner",
    "RMSNormPruner",
    "ParameterPruner",
    "MultiheadAttentionPruner",
    "RNNPruner",
    "PrunerRegistry",
    "default_pruners",
    "handler_kind",
    "handler_name",
    "is_depthwise_conv",
    "normalize_idxs",
    "keep_indices",
    "prune_tensor_",
] + [name for name in dir() if name.startswith("prune_") and name.endswith("_channels")]
