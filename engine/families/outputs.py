"""What a no-code tool passes to the pruner for a model family.

Hugging Face models return output dataclasses; tracing needs the tensor that
counts (`logits`), or the model output lock would fall on the wrong dim. GPT-2's
Conv1D layers must be group roots like Linear for its hidden and MLP widths to
be offered at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..function.hf_conv1d import lazy_types
from .attention import detect_num_heads

__all__ = ["model_output", "output_transform_for", "root_module_types_for", "pruner_kwargs"]

DEFAULT_ROOT_TYPES: tuple[type, ...] = (nn.modules.conv._ConvNd, nn.Linear, nn.LSTM)


def model_output(out: Any) -> Any:
    """`logits` of a Hugging Face output if it has them (CLIP-style dual encoders:
    `logits_per_image`), else `last_hidden_state`, else `out`.

    CLIP's output holds both towers' hidden states; returned whole, each tower's
    residual width would count as a model output and lock. Its image-text logits
    contract the embeddings, so every width behind them stays prunable.
    A module-level function (not a lambda) so plans and pickles can refer to it.
    """
    for attr in ("logits", "logits_per_image", "last_hidden_state"):
        value = getattr(out, attr, None)
        if value is not None:
            return value
    return out


def is_hf_model(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    return config is not None and hasattr(config, "to_dict") and hasattr(config, "model_type")


def output_transform_for(model: nn.Module) -> Callable[[Any], Any] | None:
    """`model_output` for Hugging Face models; None (use the output as is) otherwise."""
    return model_output if is_hf_model(model) else None


def root_module_types_for(model: nn.Module) -> list[type]:
    """Default root types plus the HF Conv1D class if the model uses it (GPT-2)."""
    extra = [t for t in lazy_types() if any(isinstance(m, t) for m in model.modules())]
    return [*DEFAULT_ROOT_TYPES, *extra]


def pruner_kwargs(model: nn.Module) -> dict[str, Any]:
    """Keyword arguments for BasePruner that make a family prune with no hand-written code."""
    kwargs: dict[str, Any] = {"root_module_types": root_module_types_for(model)}
    transform = output_transform_for(model)
    if transform is not None:
        kwargs["output_transform"] = transform
    heads = detect_num_heads(model)
    if heads:
        kwargs["num_heads"] = heads
    return kwargs
