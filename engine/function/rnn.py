"""Pruner for nn.LSTM / nn.GRU / nn.RNN: hidden units (all layers, both directions) and inputs.

An RNN's output is `num_directions` blocks of its hidden width, and every layer
shares one `hidden_size`, so one hidden unit is removed from every gate block of
every layer and direction, and from the next layer's input columns of each
direction. With `proj_size > 0` (LSTM) the visible hidden width is the
projection: pruning then removes projection rows, never the cells.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .base import BasePruningFunc, keep_indices, normalize_idxs, prune_tensor_

__all__ = ["RNNPruner", "gate_count"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def gate_count(layer: nn.RNNBase) -> int:
    try:
        return _GATES[layer.mode]
    except KeyError:
        raise ValueError(f"unknown RNN mode {layer.mode!r}") from None


def _directions(layer: nn.RNNBase) -> list[str]:
    return ["", "_reverse"] if layer.bidirectional else [""]


def _visible_width(layer: nn.RNNBase) -> int:
    return layer.proj_size if getattr(layer, "proj_size", 0) else layer.hidden_size


class RNNPruner(BasePruningFunc):
    """Out channels = `num_directions * visible hidden width` (the output's last dim)."""

    TARGET_MODULES: tuple[type, ...] = (nn.RNNBase,)
    channels_last = True  # (L, N, D*H) or (N, L, D*H)
    state_outputs = True  # h_n / c_n carry the hidden units in their last dim

    def prune_out_channels(self, layer: nn.RNNBase, idxs: Sequence[int]) -> nn.RNNBase:
        width = _visible_width(layer)
        removed = normalize_idxs(idxs, width * len(_directions(layer)), "hidden unit")
        units = sorted({i % width for i in removed})
        if not units:
            return layer
        keep = keep_indices(width, units, "hidden units")
        dirs = _directions(layer)
        projected = bool(getattr(layer, "proj_size", 0))
        gates = gate_count(layer)
        h = layer.hidden_size
        rows = [g * h + i for g in range(gates) for i in keep]
        next_cols = [d * width + i for d in range(len(dirs)) for i in keep]
        for k in range(layer.num_layers):
            for sfx in dirs:
                if projected:
                    prune_tensor_(getattr(layer, f"weight_hr_l{k}{sfx}"), 0, keep)
                else:
                    prune_tensor_(getattr(layer, f"weight_ih_l{k}{sfx}"), 0, rows)
                    prune_tensor_(getattr(layer, f"weight_hh_l{k}{sfx}"), 0, rows)
                    for b in ("bias_ih", "bias_hh"):
                        prune_tensor_(getattr(layer, f"{b}_l{k}{sfx}", None), 0, rows)
                prune_tensor_(getattr(layer, f"weight_hh_l{k}{sfx}"), 1, keep)
                if k > 0:
                    prune_tensor_(getattr(layer, f"weight_ih_l{k}{sfx}"), 1, next_cols)
        if projected:
            layer.proj_size = len(keep)
        else:
            layer.hidden_size = len(keep)
        return layer

    def prune_in_channels(self, layer: nn.RNNBase, idxs: Sequence[int]) -> nn.RNNBase:
        removed = normalize_idxs(idxs, layer.input_size, "input feature")
        if removed:
            keep = keep_indices(layer.input_size, removed, "input features")
            for sfx in _directions(layer):
                prune_tensor_(getattr(layer, f"weight_ih_l0{sfx}"), 1, keep)
            layer.input_size = len(keep)
        return layer

    def get_out_channels(self, layer: nn.RNNBase) -> int:
        return _visible_width(layer) * len(_directions(layer))

    def get_in_channels(self, layer: nn.RNNBase) -> int:
        return layer.input_size

    def get_out_channel_groups(self, layer: nn.RNNBase) -> int:
        return len(_directions(layer))
