"""Gradients for gradient-based criteria (taylor, hessian) and forwards for activation ones.

A plan is data, so the loss that fills `.grad` must come from the caller
(`calibration(model) -> loss`). `DataCalibration` builds it from real batches
(`engine.data`): cross-entropy with labels, next-token cross-entropy for token
sequences, and without labels the divergence from the original model's predictions.
Without any calibration we fall back to a fixed-seed random batch shaped like the
example inputs (with a warning): the preview and the real run then see identical
gradients, so the preview still equals the result.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from ..data.batch import as_batch

Calibration = Callable[[nn.Module], torch.Tensor]
BatchDone = Callable[[int, int], None]  # (batches done, batches in the pass; 0 = unknown)

_SEED = 0


def _random_like(x: Any, gen: torch.Generator) -> Any:
    if not isinstance(x, torch.Tensor):
        return x
    if x.is_floating_point():
        return torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    if x.dtype == torch.bool:
        return x.clone()
    high = int(x.max()) + 1 if x.numel() else 1  # stay inside an embedding's vocabulary
    return torch.randint(0, max(high, 1), x.shape, generator=gen, dtype=x.dtype).to(x.device)


def random_calibration(example_inputs: Any) -> Calibration:
    """Loss = mean square of the outputs on a fixed-seed random batch like example_inputs."""

    def loss(model: nn.Module) -> torch.Tensor:
        gen = torch.Generator().manual_seed(_SEED)
        inputs = tree_map(lambda x: _random_like(x, gen), example_inputs)
        if isinstance(inputs, dict):
            out = model(**inputs)
        elif isinstance(inputs, (tuple, list)):
            out = model(*inputs)
        else:
            out = model(inputs)
        leaves = [o for o in tree_flatten(out)[0]
                  if isinstance(o, torch.Tensor) and o.is_floating_point()]
        if not leaves:
            raise ValueError("the model returned no floating-point tensor to build a "
                             "calibration loss from; pass calibration=(model) -> loss")
        return sum(o.float().pow(2).mean() for o in leaves)

    return loss


def resolve(calibration: Calibration | None, example_inputs: Any, criterion: str) -> Calibration:
    if calibration is not None:
        return calibration
    needs = "activations" if criterion == "activation" else "gradients"
    warnings.warn(f"importance {criterion!r} needs {needs} and no calibration was given: "
                  "using a fixed-seed random batch shaped like the example inputs (scores will "
                  "not reflect real data; pass calibration=(model) -> loss)", stacklevel=3)
    return random_calibration(example_inputs)


def batch_count(calibration: Any) -> int:
    """Batches one pass of a DataCalibration reads (0: unknown, or not batch-wise), so a
    progress bar can budget them before the pass starts."""
    if not isinstance(calibration, DataCalibration):
        return 0
    try:
        return max(int(len(calibration.batches)), 0)  # type: ignore[arg-type]
    except TypeError:
        return 0


def compute_grads(model: nn.Module, calibration: Calibration,
                  on_batch: BatchDone | None = None) -> None:
    """Fill `.grad` of every parameter from the calibration loss (eval mode: no BN stat
    updates). A calibration with a `backward(model)` method (DataCalibration) runs its
    batches one backward at a time, so memory stays that of one batch; `on_batch` then
    hears of each finished batch (it observes only: the gradients are the same)."""
    training = {m: m.training for m in model.modules()}
    try:
        model.eval()
        for p in model.parameters():
            p.grad = None
        with torch.enable_grad():
            backward = getattr(calibration, "backward", None)
            if callable(backward):
                if on_batch is not None and isinstance(calibration, DataCalibration):
                    calibration.backward(model, on_batch=on_batch)
                else:
                    backward(model)
                return
            loss = calibration(model)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError("calibration must return a scalar loss tensor")
            loss.backward()
    finally:
        for m, flag in training.items():
            m.training = flag


def collect_activations(model: nn.Module, importance: Any, calibration: Calibration,
                        on_batch: BatchDone | None = None) -> None:
    """Run the calibration forwards inside `importance.compute_importance(model)` (activation
    statistics), in eval mode without gradients; training flags restored. `on_batch` hears
    of each finished batch of a DataCalibration."""
    training = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with importance.compute_importance(model), torch.no_grad():
            forward = getattr(calibration, "forward", None)
            if callable(forward):
                if on_batch is not None and isinstance(calibration, DataCalibration):
                    calibration.forward(model, on_batch=on_batch)
                else:
                    forward(model)
            else:
                calibration(model)
    finally:
        for m, flag in training.items():
            m.training = flag


# ------------------------------------------------------------------ real data


def _logits(output: Any) -> torch.Tensor | None:
    from ..evaluate.loop import logits_of

    return logits_of(output)


class DataCalibration:
    """The calibration loss on real batches (`engine.data.Batch` or DataLoader items).

    Per batch, by what the data and the outputs are:
    - labels and logits N x C: cross-entropy to the labels;
    - token ids without labels and logits N x T x V: next-token cross-entropy;
    - no labels, logits N x C: KL divergence from the ORIGINAL model's one-hot prediction
      (= cross-entropy to its top-1). The soft KL to the original's own softmax would be at
      its minimum, with zero gradient, on the unpruned model, so every Taylor/Hessian score
      would be 0; the one-hot target keeps the scores informative. The original's
      predictions are taken on the first pass and reused in later iterative steps;
    - anything else: mean square of the outputs (as the random fallback, on real inputs).
    The loss is the mean over all samples; `backward` accumulates it batch by batch.
    Batches must come in the same order on every pass (make_loader without shuffle).
    """

    def __init__(self, batches: Iterable[Any], *, description: str = "real data") -> None:
        self.batches = batches
        self.description = description
        self._reference: list[torch.Tensor | None] | None = None

    def _losses(self, model: nn.Module) -> Iterator[tuple[torch.Tensor, int]]:
        """(summed loss of one batch, its sample count), over every non-empty batch."""
        from ..io import call_with

        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        first_pass = self._reference is None
        references: list[torch.Tensor | None] = [] if first_pass else self._reference
        index = 0
        for item in self.batches:
            batch = as_batch(item)
            if len(batch) == 0:
                continue
            if not first_pass and index >= len(references):
                raise ValueError("the calibration batches changed between passes; use a "
                                 "loader without shuffling")
            batch = batch.to(device)
            output = call_with(model, batch.inputs)
            loss, ref = self._batch_loss(batch, output,
                                         None if first_pass else references[index])
            if first_pass:
                references.append(ref)
            index += 1
            yield loss, len(batch)
        if first_pass:
            self._reference = references
        elif index != len(references):
            raise ValueError("the calibration batches changed between passes; use a loader "
                             "without shuffling")

    def _batch_loss(self, batch: Any, output: Any,
                    reference: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        import torch.nn.functional as F

        from ..evaluate.loop import token_ids

        logits = _logits(output)
        if batch.labels is not None and logits is not None and logits.dim() == 2:
            from ..evaluate.loop import check_labels

            check_labels(batch.labels, logits.shape[1])
            return F.cross_entropy(logits.float(), batch.labels.long(), reduction="sum"), None
        ids = token_ids(batch.inputs)
        if (batch.labels is None and ids is not None and logits is not None and logits.dim() == 3
                and tuple(logits.shape[:2]) == tuple(ids.shape)):
            pred = logits[:, :-1].float()
            loss = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), ids[:, 1:].reshape(-1),
                                   reduction="sum") / max(ids.shape[1] - 1, 1)
            return loss, None
        if logits is not None and logits.dim() == 2 and logits.shape[1] > 1:
            target = logits.detach().argmax(1) if reference is None else reference
            return F.cross_entropy(logits.float(), target, reduction="sum"), target
        leaves = [o for o in tree_flatten(output)[0]
                  if isinstance(o, torch.Tensor) and o.is_floating_point()]
        if not leaves:
            raise ValueError("the model returned no floating-point tensor to build a "
                             "calibration loss from")
        n = len(batch)
        return sum(o.float().pow(2).mean() for o in leaves) * n, None

    def backward(self, model: nn.Module, on_batch: BatchDone | None = None) -> None:
        """Gradients of the mean loss over all samples, one batch in memory at a time: the
        summed losses are backpropagated and the gradients divided by the number of
        samples actually read (unreadable images are not counted). `on_batch(done, of)`
        after each batch's backward (of = batch_count(self), 0 when unknown)."""
        total = 0
        of = batch_count(self) if on_batch is not None else 0
        for done, (loss, n) in enumerate(self._losses(model), 1):
            loss.backward()
            total += n
            if on_batch is not None:
                on_batch(done, of)
        if total == 0:
            raise ValueError(f"no calibration samples in {self.description}")
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.div_(total)

    def forward(self, model: nn.Module, on_batch: BatchDone | None = None) -> None:
        """Run every batch once (activation statistics are recorded by hooks);
        `on_batch(done, of)` after each non-empty batch."""
        from ..io import call_with

        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        of = batch_count(self) if on_batch is not None else 0
        done = 0
        for item in self.batches:
            batch = as_batch(item)
            if len(batch):
                call_with(model, batch.to(device).inputs)
                done += 1
                if on_batch is not None:
                    on_batch(done, of)

    def __call__(self, model: nn.Module) -> torch.Tensor:
        """The mean loss as one tensor (holds every batch's graph: small data only)."""
        parts = list(self._losses(model))
        total = sum(n for _, n in parts)
        if total == 0:
            raise ValueError(f"no calibration samples in {self.description}")
        return sum(loss for loss, _ in parts) / total


def data_calibration(batches: Iterable[Any], description: str = "real data") -> DataCalibration:
    """A calibration (model -> loss) from real batches; see DataCalibration."""
    return DataCalibration(batches, description=description)


def clear_grads(model: nn.Module) -> None:
    for p in model.parameters():
        p.grad = None
