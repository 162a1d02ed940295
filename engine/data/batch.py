"""The one shape of data every stage consumes: inputs for the model, labels if known.

Loaders (image folders, tensor files, text) yield `Batch`; evaluation, calibration,
scans and recovery read it. `as_batch` also accepts the `(x, y)` / `x` items of a plain
PyTorch DataLoader, so code written against a hand-made loader works unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

Inputs = torch.Tensor | dict[str, torch.Tensor]


@dataclass
class Batch:
    """`inputs` go to the model (a tensor, or keyword tensors for HF models); `labels` may be None.

    `skipped` counts the samples of this batch that could not be read (a corrupt image):
    loaders drop them and say so here, so evaluation can report them.
    """

    inputs: Inputs
    labels: torch.Tensor | None = None
    skipped: int = 0

    def __len__(self) -> int:
        return batch_size(self.inputs)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        labels = None if self.labels is None else self.labels.to(device, non_blocking=non_blocking)
        return Batch(move(self.inputs, device, non_blocking), labels, self.skipped)

    def pin_memory(self) -> Batch:
        """Called by DataLoader(pin_memory=True) so host-to-GPU copies can overlap."""
        inputs = ({k: v.pin_memory() for k, v in self.inputs.items()}
                  if isinstance(self.inputs, Mapping) else self.inputs.pin_memory())
        labels = None if self.labels is None else self.labels.pin_memory()
        return Batch(inputs, labels, self.skipped)


def batch_size(inputs: Inputs) -> int:
    if isinstance(inputs, Mapping):
        first = next(iter(inputs.values()))
        return int(first.shape[0])
    return int(inputs.shape[0])


def move(inputs: Inputs, device: torch.device | str, non_blocking: bool = False) -> Inputs:
    if isinstance(inputs, Mapping):
        return {k: v.to(device, non_blocking=non_blocking) for k, v in inputs.items()}
    return inputs.to(device, non_blocking=non_blocking)


def as_batch(item: Any) -> Batch:
    """A `Batch` from a Batch, an `(x, y)` pair, a 1-tuple, a dict of tensors or a tensor."""
    if isinstance(item, Batch):
        return item
    if isinstance(item, (tuple, list)):
        if len(item) == 2:
            return Batch(item[0], item[1])
        if len(item) == 1:
            return Batch(item[0])
        raise ValueError(f"a batch must be (inputs, labels) or (inputs,), got {len(item)} items")
    if isinstance(item, (torch.Tensor, Mapping)):
        return Batch(dict(item) if isinstance(item, Mapping) else item)
    raise TypeError(f"cannot use a {type(item).__name__} as a batch")
