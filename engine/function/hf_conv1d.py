"""Pruner for Hugging Face's ``transformers.pytorch_utils.Conv1D`` (GPT-2's projections).

Conv1D is a Linear with a transposed weight: ``weight`` is ``(in, out)`` and
forward reads ``self.nf`` to shape its output, so both the tensors and ``nf``/``nx``
must shrink. The class is matched by its import path, resolved lazily from
``sys.modules``: the engine never imports transformers, and a model containing a
Conv1D can only exist once transformers has been imported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from torch import nn

from .base import BasePruningFunc, keep_indices, normalize_idxs, prune_tensor_

__all__ = ["HFConv1DPruner", "lazy_types"]

# (module path, class name) of classes this pruner handles once their module is imported
LAZY_TARGETS: tuple[tuple[str, str], ...] = (("transformers.pytorch_utils", "Conv1D"),)


def lazy_types() -> tuple[type, ...]:
    """The Conv1D classes whose modules are already imported (never imports anything)."""
    found: list[type] = []
    for module_name, class_name in LAZY_TARGETS:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


class HFConv1DPruner(BasePruningFunc):
    """Weight ``(nx, nf)``: out channels are weight dim 1 (and the bias), in channels dim 0."""

    TARGET_MODULES: tuple[type, ...] = ()  # resolved lazily, see lazy_types()

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        n = self.get_out_channels(layer)
        removed = normalize_idxs(idxs, n, "out feature")
        if removed:
            keep = keep_indices(n, removed, "out features")
            prune_tensor_(layer.weight, 1, keep)
            prune_tensor_(getattr(layer, "bias", None), 0, keep)
            layer.nf = len(keep)
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        n = self.get_in_channels(layer)
        removed = normalize_idxs(idxs, n, "in feature")
        if removed:
            keep = keep_indices(n, removed, "in features")
            prune_tensor_(layer.weight, 0, keep)
            layer.nx = len(keep)
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.weight.shape[1])

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(layer.weight.shape[0])
