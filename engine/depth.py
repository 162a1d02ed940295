"""Depth pruning: remove whole residual blocks, the unit width pruning cannot offer.

A block whose output is `x + f(x)` on an unchanged residual stream (a ResNet block
without downsampling, a ViT encoder block, a Llama-style decoder layer) can go as a
whole: the stream then skips it. ShortGPT and Minitron show LLMs tolerate this well
when the blocks that change their input least go first, so a block's importance is
1 - cos(input, output) of its hidden states, averaged over calibration batches
(`engine.data.batch.Batch` items or plain inputs). A `DepthGroup` is one removable
block; `prune()` drops it (an nn.Identity in its place, or out of a Hugging Face layer
list with `config.num_hidden_layers`, `layer_types` and every `layer_idx` renumbered,
so `save_pretrained` / `from_pretrained` rebuild the shallower model).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data.batch import as_batch
from .io.input_spec import call_with

__all__ = ["DepthGroup", "block_importance", "depth_problems", "drop_blocks", "find_depth_groups"]

_TORCHVISION_BLOCKS = ("BasicBlock", "Bottleneck", "EncoderBlock")
_DEMO_MODULE = "engine.models.digits_net"  # Arborist's own demo model


@dataclasses.dataclass
class DepthGroup:
    """One removable residual block of `model`, by dotted name."""

    model: nn.Module
    name: str
    in_layer_list: bool  # a Hugging Face decoder/encoder layer list entry (removed, renumbered)

    @property
    def module(self) -> nn.Module:
        return dict(self.model.named_modules())[self.name]

    def prune(self) -> None:
        parent_name, _, child = self.name.rpartition(".")
        parent = dict(self.model.named_modules())[parent_name] if parent_name else self.model
        if not self.in_layer_list:
            setattr(parent, child, nn.Identity())
            return
        assert isinstance(parent, nn.ModuleList)
        del parent[int(child)]
        _renumber_layers(self.model, parent)


def first_tensor(obj: Any) -> torch.Tensor | None:
    """The first tensor in a block's input or output (blocks return tensors or tuples)."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)) and obj:
        return first_tensor(obj[0])
    return None


def first_input(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The block's input tensor as a forward hook sees it (positional first, else keyword)."""
    return first_tensor(args) if args else first_tensor(list(kwargs.values()))


def _hf_layer_list(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The decoder (or encoder) layer list of a Hugging Face model: the ModuleList whose
    length is config.num_hidden_layers."""
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if not isinstance(n, int):
        return None
    for name, m in model.named_modules():
        if isinstance(m, nn.ModuleList) and len(m) == n and n > 1 and name.endswith("layers"):
            return name, m
    return None


def _identity_shortcut(block: nn.Module) -> bool:
    """torchvision ResNet blocks keep the stream only without a downsample branch; ViT
    EncoderBlocks always do."""
    if type(block).__name__ == "EncoderBlock":
        return True
    return getattr(block, "downsample", None) is None and getattr(block, "stride", 1) == 1


def find_depth_groups(model: nn.Module) -> list[DepthGroup]:
    """Blocks that can be removed whole without changing any width."""
    found = _hf_layer_list(model)
    if found is not None:
        name, layers = found
        return [DepthGroup(model, f"{name}.{i}", True) for i in range(len(layers))]
    out = []
    for name, m in model.named_modules():
        if name and type(m).__module__ == _DEMO_MODULE and type(m).__name__ == "ResidualBlock":
            out.append(DepthGroup(model, name, False))  # the demo's relu(x + f(x)), x >= 0
            continue
        if (type(m).__module__.startswith("torchvision.") and name
                and type(m).__name__ in _TORCHVISION_BLOCKS and _identity_shortcut(m)):
            conv1 = getattr(m, "conv1", None)
            if conv1 is not None and getattr(conv1, "stride", (1, 1)) not in ((1, 1), 1):
                continue
            out.append(DepthGroup(model, name, False))
    return out


def block_importance(model: nn.Module, groups: list[DepthGroup],
                     batches: Iterable[Any]) -> dict[str, float]:
    """1 - cos(input, output) of each block's hidden states, flattened per sample and
    averaged over `batches` (Batch items, (inputs, labels) pairs or plain inputs). Low
    means the block barely changes the stream: the first to remove."""
    sums = {g.name: 0.0 for g in groups}
    counts = {g.name: 0 for g in groups}
    hooks = []
    owner = threading.get_ident()  # a GUI preview may run the same model on another thread

    def hook(name: str):
        def fn(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            if threading.get_ident() != owner:
                return
            x = first_input(args, kwargs)
            y = first_tensor(out)
            if x is None or y is None or x.shape != y.shape:
                return
            cos = F.cosine_similarity(x.reshape(x.shape[0], -1).float(),
                                      y.reshape(y.shape[0], -1).float(), dim=1)
            sums[name] += float((1 - cos).sum())
            counts[name] += int(cos.numel())
        return fn

    for g in groups:
        hooks.append(g.module.register_forward_hook(hook(g.name), with_kwargs=True))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for item in batches:
                call_with(model, as_batch(item).inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {n: sums[n] / counts[n] for n in sums if counts[n]}


def _renumber_layers(model: nn.Module, layers: nn.ModuleList) -> None:
    """After removing entries: config.num_hidden_layers, per-layer config lists and each
    layer's (and its submodules') `layer_idx`, which the KV cache indexes by."""
    config = model.config
    old_n = config.num_hidden_layers
    kept_old = [getattr(layer, "_arborist_layer_idx", None) for layer in layers]
    for i, layer in enumerate(layers):
        for m in layer.modules():
            if isinstance(getattr(m, "layer_idx", None), int):
                if kept_old[i] is None:
                    kept_old[i] = m.layer_idx
                m.layer_idx = i
        layer._arborist_layer_idx = i
    config.num_hidden_layers = len(layers)
    for attr in ("layer_types",):  # per-layer lists must shrink with the layers
        values = getattr(config, attr, None)
        if isinstance(values, list) and len(values) == old_n:
            setattr(config, attr, [values[k] for k in kept_old if k is not None])


def depth_problems(model: nn.Module, names: Iterable[str], where: str = "drop_blocks") -> list[str]:
    """One line per name that is not a removable block of `model` (unknown, or a block
    whose shortcut changes the stream's shape), naming the removable ones."""
    names = list(names)
    if not names:
        return []
    removable = [g.name for g in find_depth_groups(model)]
    known = set(removable)
    modules = {n for n, _ in model.named_modules()}
    listed = ", ".join(removable) if removable else "none in this model"
    problems = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            problems.append(f"{where}[{i}]: {name!r} is listed twice")
        seen.add(name)
        if name in known:
            continue
        what = ("is not a removable block (its shortcut changes the shape, or it is no "
                "residual block)" if name in modules else "is no module of this model")
        problems.append(f"{where}[{i}]: {name!r} {what}; removable blocks: {listed}")
    return problems


def drop_blocks(model: nn.Module, names: Iterable[str]) -> list[str]:
    """Remove the named blocks in place (ValueError for a name that is not removable).

    Layer-list entries go from the highest index down, so each name still means the block
    it named before any removal. Returns the names removed, in removal order."""
    names = list(dict.fromkeys(names))
    problems = depth_problems(model, names)
    if problems:
        raise ValueError(problems[0])
    groups = {g.name: g for g in find_depth_groups(model)}

    def order(name: str) -> tuple[int, int]:
        g = groups[name]
        return (1, -int(name.rpartition(".")[2])) if g.in_layer_list else (0, 0)

    ordered = sorted(names, key=order)
    for name in ordered:
        groups[name].prune()
    return ordered
