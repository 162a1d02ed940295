"""Tensors of an ATen call, found without the generic pytree machinery."""

from __future__ import annotations

from typing import Any

import torch


def dispatch_tensors(obj: Any) -> list[torch.Tensor]:
    """The tensors in an ATen op's arguments or outputs, in pytree order.

    At the dispatch level these are only tensors inside tuples, lists and dicts
    (return structs are tuples), so this replaces `tree_flatten`, whose generic
    node handling was ~15% of a ResNet-50 trace.
    """
    found: list[torch.Tensor] = []

    def walk(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            found.append(x)
        elif isinstance(x, (tuple, list)):
            for y in x:
                walk(y)
        elif isinstance(x, dict):
            for y in x.values():
                walk(y)

    walk(obj)
    return found
