"""Keep container modules' plain width attributes in step with their pruned layers.

Some forwards read a width from an attribute instead of a tensor
(torchvision's VisionTransformer reshapes with `self.hidden_dim`). Pruning the
layers alone would leave such a model broken, so after every prune (and in the
probe, so those groups are not locked) `refresh_attributes` recomputes them.
Fixers are looked up by class name to avoid importing the libraries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

__all__ = ["AttributeRefresher", "refresh_attributes", "register_attribute_fixer"]

Fixer = Callable[[nn.Module], None]


def _vit(m: nn.Module) -> None:
    conv = getattr(m, "conv_proj", None)
    if isinstance(conv, nn.Conv2d) and isinstance(getattr(m, "hidden_dim", None), int):
        m.hidden_dim = conv.out_channels


def _vit_block(m: nn.Module) -> None:
    attn = getattr(m, "self_attention", None)
    if isinstance(attn, nn.MultiheadAttention) and isinstance(getattr(m, "num_heads", None), int):
        m.num_heads = attn.num_heads


_FIXERS: dict[tuple[str, str], Fixer] = {
    ("torchvision.models.vision_transformer", "VisionTransformer"): _vit,
    ("torchvision.models.vision_transformer", "EncoderBlock"): _vit_block,
}


def register_attribute_fixer(cls: type, fixer: Fixer) -> None:
    """Call `fixer(module)` on every instance of `cls` after pruning."""
    _FIXERS[(cls.__module__, cls.__qualname__)] = fixer


def refresh_attributes(
    model: nn.Module, touched: Iterable[object] | None = None, index: Any = None
) -> None:
    """Recompute the width attributes (and HF config) `model`'s forward reads.

    `index` (`families.refresh.module_index(model)`) spares a walk over every module;
    who prunes a model repeatedly keeps one in an `AttributeRefresher`. `touched` (the
    group's modules or parameters) limits the re-reads to those, their ancestors and
    tied twins, so a step stays linear in depth; None refreshes everything.
    """
    from ..families.refresh import affected_modules, module_index  # lazy: families imports us

    index = index if index is not None else module_index(model)
    _refresh(model, index, affected_modules(index, touched) if touched is not None else None)


def _refresh(model: nn.Module, index: Any, only: dict[int, nn.Module] | None) -> None:
    from ..families.refresh import refresh_attributes as refresh_families

    for m in only.values() if only is not None else (m for _, m in index.named):
        fixer = _FIXERS.get((type(m).__module__, type(m).__qualname__))
        if fixer is not None:
            fixer(m)
    refresh_families(model, index, only)  # HF / timm attention attributes and HF config


class AttributeRefresher:
    """`refresh_attributes` for one model, with its module index built once.

    Owned by whoever prunes the model (its DependencyGraph, a previewer's meta copy):
    pruning never adds or replaces modules, so the index stays valid; a touched module
    the index has never seen (the user swapped a layer in between) makes it rebuild the
    index once. No process-wide hook is needed to notice module changes.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._index: Any = None

    def __call__(self, touched: Iterable[object] | None = None) -> None:
        from ..families.refresh import affected_modules, module_index  # lazy (see above)

        if self._index is None:
            self._index = module_index(self.model)
        only = None
        if touched is not None:
            touched = list(touched)
            only = affected_modules(self._index, touched)
            if only is None:  # a module this index never saw: the tree changed
                self._index = module_index(self.model)
                only = affected_modules(self._index, touched)
        _refresh(self.model, self._index, only)

    def forget(self) -> None:
        """Drop the index (after replacing modules by hand; the next call rebuilds it)."""
        self._index = None
