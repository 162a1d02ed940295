"""Keep container modules' plain width attributes in step with their pruned layers.

Some forwards read a width from an attribute instead of a tensor
(torchvision's VisionTransformer reshapes with `self.hidden_dim`). Pruning the
layers alone would leave such a model broken, so after every prune (and in the
probe, so those groups are not locked) `refresh_attributes` recomputes them.
Fixers are looked up by class name to avoid importing the libraries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn

__all__ = ["refresh_attributes", "register_attribute_fixer"]

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


def refresh_attributes(model: nn.Module, touched: Iterable[object] | None = None) -> None:
    """Runs after every pruned group: the module list comes from a per-model cache
    (`families.refresh.module_index`). `touched` (the group's modules or parameters)
    limits the re-reads to those, their ancestors and tied twins, so a step stays
    linear in depth; None refreshes everything."""
    from ..families.refresh import affected_modules, module_index  # lazy: families imports us
    from ..families.refresh import refresh_attributes as refresh_families

    index = module_index(model)
    only = affected_modules(index, touched) if touched is not None else None
    for m in only.values() if only is not None else (m for _, m in index.named):
        fixer = _FIXERS.get((type(m).__module__, type(m).__qualname__))
        if fixer is not None:
            fixer(m)
    refresh_families(model, index, only)  # HF / timm attention attributes and HF config
