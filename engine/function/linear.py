"""Pruners for nn.Linear and nn.Embedding (plain 2-D weight matrices)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .base import BasePruningFunc, keep_indices, normalize_idxs, prune_tensor_

__all__ = ["LinearPruner", "EmbeddingPruner"]


class LinearPruner(BasePruningFunc):
    """Linear weight is ``(out_features, in_features)``; bias follows the outputs."""

    TARGET_MODULES: tuple[type, ...] = (nn.Linear,)

    def prune_out_channels(self, layer: nn.Linear, idxs: Sequence[int]) -> nn.Linear:
        removed = normalize_idxs(idxs, layer.out_features, "out feature")
        if removed:
            keep = keep_indices(layer.out_features, removed, "out features")
            prune_tensor_(layer.weight, 0, keep)
            prune_tensor_(layer.bias, 0, keep)
            layer.out_features = len(keep)
        return layer

    def prune_in_channels(self, layer: nn.Linear, idxs: Sequence[int]) -> nn.Linear:
        removed = normalize_idxs(idxs, layer.in_features, "in feature")
        if removed:
            keep = keep_indices(layer.in_features, removed, "in features")
            prune_tensor_(layer.weight, 1, keep)
            layer.in_features = len(keep)
        return layer

    def get_out_channels(self, layer: nn.Linear) -> int:
        return layer.out_features

    def get_in_channels(self, layer: nn.Linear) -> int:
        return layer.in_features


class EmbeddingPruner(BasePruningFunc):
    """Prunes ``embedding_dim`` (weight dim 1); the vocabulary axis is never a channel.

    In and out are the same axis, so ``prune_in_channels is prune_out_channels``
    (bound methods compare equal, letting the graph de-duplicate them).
    """

    TARGET_MODULES: tuple[type, ...] = (nn.Embedding,)

    def prune_out_channels(self, layer: nn.Embedding, idxs: Sequence[int]) -> nn.Embedding:
        removed = normalize_idxs(idxs, layer.embedding_dim, "embedding dim")
        if removed:
            keep = keep_indices(layer.embedding_dim, removed, "embedding dims")
            prune_tensor_(layer.weight, 1, keep)
            layer.embedding_dim = len(keep)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Embedding) -> int:
        return layer.embedding_dim

    get_in_channels = get_out_channels
