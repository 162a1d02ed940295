"""The benchmark models, built the same way for both engines.

A workload is a model plus what a pruner needs to run it: example inputs, the layers a user
would ignore (final classifier / LM head) and an output transform. The Llama-shaped LM is
built from a config (random weights) so no download is needed; `device="meta"` builds it
with no weights in memory at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torchvision

# TinyLlama-1.1B's shape (22 layers, GQA 32/4 heads) and Llama-2-70B's (80 layers, GQA 64/8).
LLAMA_SHAPES: dict[str, dict[str, int]] = {
    "llama_1b": dict(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
    ),
    "llama_70b": dict(
        hidden_size=8192,
        intermediate_size=28672,
        num_hidden_layers=80,
        num_attention_heads=64,
        num_key_value_heads=8,
        vocab_size=32000,
    ),
}
SPEED_MODELS = (
    "resnet50",
    "densenet121",
    "densenet201",
    "convnext_tiny",
    "vit_b_16",
    "swin_t",
    "llama_1b",
)


@dataclass
class Workload:
    name: str
    model: nn.Module
    example_inputs: Any
    ignored_layers: list[nn.Module] = field(default_factory=list)
    output_transform: Callable[[Any], Any] | None = None
    dtype: torch.dtype = torch.float32
    expected_shape: tuple[int, ...] | None = None  # output shape before pruning

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def llama_config(shape: str) -> Any:
    from transformers import LlamaConfig

    if shape not in LLAMA_SHAPES:
        raise ValueError(f"unknown Llama shape {shape!r}; choose one of {sorted(LLAMA_SHAPES)}")
    # eager attention + an explicit attention mask: HF's SDPA mask path and its packed-sequence
    # check call .item(), which the meta device cannot answer (tracing would fall back to a
    # real forward, impossible for a 70 B model)
    return LlamaConfig(
        **LLAMA_SHAPES[shape],
        max_position_embeddings=2048,
        use_cache=False,
        attn_implementation="eager",
    )


def logits_of(out: Any) -> torch.Tensor:
    """HF models return a ModelOutput; the pruners only need the logits."""
    return out.logits if hasattr(out, "logits") else out[0]


def build_llama(
    shape: str, device: str = "cpu", dtype: torch.dtype = torch.bfloat16, seq_len: int = 16
) -> Workload:
    from transformers import LlamaForCausalLM

    config = llama_config(shape)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype).eval()
    ids = torch.randint(0, config.vocab_size, (1, seq_len), device=device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    return Workload(shape, model, inputs, [model.lm_head], logits_of, dtype)


def build_workload(name: str, device: str = "cpu") -> Workload:
    """A torchvision classifier (weights=None) or one of LLAMA_SHAPES."""
    if name in LLAMA_SHAPES:
        return build_llama(name, device)
    torch.manual_seed(0)
    with torch.device(device):
        model = torchvision.models.get_model(name, weights=None).eval()
    x = torch.randn(1, 3, 224, 224, device=device)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return Workload(name, model, x, linears[-1:])
