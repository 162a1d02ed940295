"""Default pruner instances, Torch-Pruning-style module-level functions, and a registry.

Each module-level ``prune_*`` function is a bound method of ONE shared default
instance, so ``prune_conv_out_channels == registry.lookup(conv).prune_out_channels``
holds and the dependency graph can compare handlers by equality.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from .activation import PReLUPruner
from .base import BasePruningFunc
from .conv import ConvPruner, ConvTransposePruner
from .hf_conv1d import HFConv1DPruner, lazy_types
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
from .rnn import RNNPruner

__all__ = ["default_pruners", "PrunerRegistry", "handler_kind", "handler_name"]

# One default instance per pruner; "name" is the Torch-Pruning handler prefix.
_DEFAULTS: dict[str, BasePruningFunc] = {
    "conv": ConvPruner(),
    "conv_transpose": ConvTransposePruner(),
    "linear": LinearPruner(),
    "batchnorm": BatchnormPruner(),
    "layernorm": LayernormPruner(),
    "groupnorm": GroupNormPruner(),
    "instancenorm": InstanceNormPruner(),
    "prelu": PReLUPruner(),
    "embedding": EmbeddingPruner(),
    "rmsnorm": RMSNormPruner(),
    "parameter": ParameterPruner(),
    "multihead_attention": MultiheadAttentionPruner(),
    "lstm": RNNPruner(),  # LSTM, GRU and RNN; Torch-Pruning names it after LSTM
    "hf_conv1d": HFConv1DPruner(),  # transformers Conv1D, matched lazily (lazy_types)
}

# (instance id, method name) -> display name. Aliased methods (prune_in_channels
# is prune_out_channels for norms) resolve to their __name__, i.e. "out".
_NAMES: dict[tuple[int, str], str] = {}
for _prefix, _pruner in _DEFAULTS.items():
    for _method in ("prune_out_channels", "prune_in_channels"):
        _NAMES.setdefault((id(_pruner), _method), f"prune_{_prefix}_{_method[len('prune_') :]}")


def default_pruners() -> dict[type, BasePruningFunc]:
    """A NEW dict mapping module types to the shared default instances."""
    out = {t: pruner for pruner in _DEFAULTS.values() for t in pruner.TARGET_MODULES}
    out.update(dict.fromkeys(lazy_types(), _DEFAULTS["hf_conv1d"]))  # only if already imported
    return out


def handler_name(fn: Callable[..., Any]) -> str:
    """Display name for a pruning handler, e.g. ``"prune_conv_out_channels"``.

    Handlers of other pruner instances read ``"MyPruner.prune_out_channels"``.
    """
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__name__", None)
    if isinstance(owner, BasePruningFunc) and name is not None:
        known = _NAMES.get((id(owner), name))  # defaults live forever: ids never reused
        if known is not None:
            return known
        return f"{type(owner).__name__}.{name}"
    return getattr(fn, "__qualname__", None) or repr(fn)


def handler_kind(fn: Callable[..., Any] | None) -> str | None:
    """Which side a pruning handler prunes: "out", "in", or None when it cannot be told.

    Read from the method itself, not its name: Torch-Pruning's custom pruners often
    write `prune_in_channels = prune_out_channels` (norm-like layers), which makes the
    in-handler's `__name__` "prune_out_channels"; such aliases prune the one set of
    channels a layer has, i.e. "out". Plain functions fall back to their name.
    """
    if fn is None:
        return None
    owner = getattr(fn, "__self__", None)
    func = getattr(fn, "__func__", None)
    if owner is not None and func is not None:
        cls = type(owner)
        if func is getattr(cls, "prune_out_channels", None):
            return "out"
        if func is getattr(cls, "prune_in_channels", None):
            return "in"
    name = getattr(fn, "__name__", "")
    if name.endswith("out_channels"):
        return "out"
    if name.endswith("in_channels"):
        return "in"
    return None


class PrunerRegistry:
    """Per-graph mapping of module types (or single modules) to pruners.

    Built from :func:`default_pruners` plus ``customized_pruners``; never touches
    global state, so one graph's custom pruners cannot leak into another.
    Keys of ``customized_pruners`` may be types or individual module instances
    (an instance key overrides its type for that one module).
    """

    def __init__(self, customized_pruners: Mapping[Any, BasePruningFunc] | None = None) -> None:
        self._by_type: dict[type, BasePruningFunc] = default_pruners()
        self._by_module: dict[int, tuple[nn.Module, BasePruningFunc]] = {}
        for key, pruner in (customized_pruners or {}).items():
            self.register(key, pruner)

    def register(self, key: type | nn.Module, pruner: BasePruningFunc) -> None:
        """Map a type (all its instances and subclasses) or one module to ``pruner``."""
        if not isinstance(pruner, BasePruningFunc):
            raise TypeError(
                f"pruner for {key!r} must be a BasePruningFunc, got {type(pruner).__name__}"
            )
        if isinstance(key, type):
            self._by_type[key] = pruner
        elif isinstance(key, nn.Module):
            self._by_module[id(key)] = (key, pruner)
        else:
            raise TypeError(
                f"registry keys must be types or nn.Module instances, got {type(key).__name__}"
            )

    def lookup(self, module: Any) -> BasePruningFunc | None:
        """Pruner for ``module``: instance override, exact type, then nearest MRO base."""
        hit = self._by_module.get(id(module))
        if hit is not None and hit[0] is module:
            return hit[1]
        for cls in type(module).__mro__:
            pruner = self._by_type.get(cls)
            if pruner is not None:
                return pruner
        return None

    def types(self) -> dict[type, BasePruningFunc]:
        """Copy of the type mapping (defaults merged with customisations)."""
        return dict(self._by_type)

    def __contains__(self, module: Any) -> bool:
        return self.lookup(module) is not None
