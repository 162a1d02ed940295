"""`evaluate(model, batches)`: one pass over real data, exact metrics, the model untouched.

What is measured follows from the outputs and the data (see `Metrics`):
- a classifier (logits N x C) with labels: top-1, and top-5 when C > 5;
- with a reference model: top-1 agreement and mean KL(reference || model) for
  classifiers, cosine similarity and relative error for any other output;
- token sequences without labels and logits N x T x V: next-token perplexity (and, with
  a reference, agreement/KL per predicted token).
The models run in eval mode under `torch.inference_mode()`; their training flags are
restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._pytree import tree_flatten

from ..data.batch import Batch, as_batch
from ..io import call_with
from .metrics import Metrics, Totals, finish

Progress = Callable[[int, int, str], None]


@contextlib.contextmanager
def eval_mode(*models: nn.Module | None) -> Iterator[None]:
    """Eval mode inside; every module's own training flag restored after."""
    flags = [(m, m.training) for model in models if model is not None for m in model.modules()]
    try:
        for model in models:
            if model is not None:
                model.eval()
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def device_of(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        if not tensor.is_meta:
            return tensor.device
    return torch.device("cpu")


def logits_of(output: Any) -> torch.Tensor | None:
    """The prediction tensor of a model output: a tensor, `.logits`, or a first tensor."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, Mapping) and isinstance(output.get("logits"), torch.Tensor):
        return output["logits"]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def float_leaves(output: Any) -> torch.Tensor:
    """All floating-point outputs of one sample batch, flattened per sample (N x D)."""
    leaves = [t for t in tree_flatten(output)[0]
              if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not leaves:
        raise ValueError("the model returned no floating-point tensor to compare")
    n = leaves[0].shape[0] if leaves[0].dim() else 1
    flat = [t.reshape(n, -1) if t.dim() and t.shape[0] == n else t.reshape(1, -1).expand(n, -1)
            for t in leaves]
    return torch.cat([t.to(torch.float64) for t in flat], dim=1)


def token_ids(inputs: Any) -> torch.Tensor | None:
    """The (N, T) integer token ids of a batch's inputs, if it is a token batch."""
    if isinstance(inputs, Mapping):
        ids = inputs.get("input_ids")
        if ids is None:
            ints = [v for v in inputs.values() if isinstance(v, torch.Tensor) and v.dim() == 2
                    and not v.is_floating_point()]
            ids = ints[0] if len(ints) == 1 else None
    else:
        ids = inputs
    if isinstance(ids, torch.Tensor) and ids.dim() == 2 and not ids.is_floating_point() and \
            ids.dtype != torch.bool:
        return ids
    return None


def evaluate(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    reference: nn.Module | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Metrics:
    """Metrics of `model` over `batches` (Batches, or (x, y) / x items of a DataLoader).

    `cancel()` is checked before each batch (raises engine.utils.progress.Cancelled, the same
    class as engine.plan.Cancelled); `progress(done, total, message)` after each (total is
    0 when the number of samples is unknown), its message "batch k/n" (n when the loader
    has a length).
    """
    totals = Totals()
    skipped = 0
    total = _total(batches)
    n_batches = _batch_total(batches)
    k = 0
    device = device_of(model)
    ref_device = device_of(reference) if reference is not None else device
    done = 0
    with eval_mode(model, reference), torch.inference_mode():
        for item in batches:
            if cancel is not None and cancel():
                from ..utils.progress import Cancelled

                raise Cancelled(f"evaluation cancelled after {done} samples")
            batch = as_batch(item)
            skipped += batch.skipped
            if len(batch) == 0:
                continue
            on_model = batch.to(device, non_blocking=True)
            output = call_with(model, on_model.inputs)
            ref_output = None
            if reference is not None:
                on_ref = on_model if ref_device == device else batch.to(ref_device)
                ref_output = call_with(reference, on_ref.inputs)
            _accumulate(totals, on_model, output, ref_output)
            done += len(batch)
            k += 1
            if progress is not None:
                of = f"/{max(n_batches, k)}" if n_batches else ""
                progress(done, max(total, done) if total else 0,
                         f"batch {k}{of} ({done} samples)")
    source = getattr(batches, "source", None)  # a BatchLoader knows skips after the last batch
    if source is not None and isinstance(getattr(source, "skipped", None), int):
        skipped = max(skipped, source.skipped)
    return finish(totals, skipped)


def _batch_total(batches: Any) -> int:
    """Batches in one pass (a DataLoader's or a list's length; 0 when unknown)."""
    try:
        return max(int(len(batches)), 0)
    except TypeError:
        return 0


def _total(batches: Any) -> int:
    dataset = getattr(batches, "dataset", None)
    try:
        return len(dataset) if dataset is not None else 0
    except TypeError:
        return 0


def _accumulate(totals: Totals, batch: Batch, output: Any, ref_output: Any) -> None:
    n = len(batch)
    totals.add("samples", n)
    logits = logits_of(output)
    ids = token_ids(batch.inputs)
    if (batch.labels is None and ids is not None and logits is not None and logits.dim() == 3
            and tuple(logits.shape[:2]) == tuple(ids.shape)):
        _language_model(totals, ids, logits, logits_of(ref_output) if ref_output is not None
                        else None)
        return
    if logits is not None and logits.dim() == 2 and logits.shape[1] > 1:
        _classifier(totals, batch.labels, logits,
                    logits_of(ref_output) if ref_output is not None else None)
        return
    if ref_output is not None:
        _fidelity(totals, output, ref_output)


def _classifier(totals: Totals, labels: torch.Tensor | None, logits: torch.Tensor,
                ref: torch.Tensor | None) -> None:
    top1 = logits.argmax(1)
    if labels is not None:
        labels = labels.to(logits.device).reshape(-1)
        check_labels(labels, logits.shape[1])
        totals.add("labeled", labels.numel())
        totals.add("correct", (top1 == labels).sum())
        if logits.shape[1] > 5:
            top5 = logits.topk(5, dim=1).indices
            totals.add("correct5", (top5 == labels[:, None]).any(1).sum())
            totals.add("top5_samples", labels.numel())
    if ref is not None:
        ref = ref.to(logits.device)
        totals.add("compared", logits.shape[0])
        totals.add("agree", (top1 == ref.argmax(1)).sum())
        totals.add("kl", _kl(ref, logits).sum())


def check_labels(labels: torch.Tensor, classes: int) -> None:
    """Labels must index the model's outputs (class folders sort into 0..C-1)."""
    top = int(labels.max()) if labels.numel() else 0
    if top >= classes or (labels.numel() and int(labels.min()) < 0):
        from ..data.errors import DataError

        raise DataError(f"the data has labels up to {top} but the model has {classes} outputs; "
                        "a labeled folder needs one subfolder per model class, named so that "
                        "their sorted order is the model's class order")


def _kl(ref_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Per-row KL(softmax(ref) || softmax(model)) in float64, summed over the last dim."""
    log_p = F.log_softmax(ref_logits.to(torch.float64), dim=-1)
    log_q = F.log_softmax(logits.to(torch.float64), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def _fidelity(totals: Totals, output: Any, ref_output: Any) -> None:
    out = float_leaves(output)
    ref = float_leaves(ref_output).to(out.device)
    if out.shape != ref.shape:
        raise ValueError(f"the model's outputs {tuple(out.shape)} and the reference's "
                         f"{tuple(ref.shape)} differ in shape: they cannot be compared")
    totals.add("cos", F.cosine_similarity(out, ref, dim=1, eps=1e-12).sum())
    totals.add("cos_samples", out.shape[0])
    totals.add("err_sq", (out - ref).pow(2).sum())
    totals.add("ref_sq", ref.pow(2).sum())


def _language_model(totals: Totals, ids: torch.Tensor, logits: torch.Tensor,
                    ref: torch.Tensor | None) -> None:
    """Next-token NLL: logits at t predict the token at t + 1."""
    pred = logits[:, :-1].to(torch.float64)
    target = ids[:, 1:].to(logits.device)
    nll = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), reduction="sum")
    totals.add("nll", nll)
    totals.add("tokens", target.numel())
    if ref is not None:
        ref = ref[:, :-1].to(logits.device)
        totals.add("compared", target.numel())
        totals.add("agree", (pred.argmax(-1) == ref.argmax(-1)).sum())
        totals.add("kl", _kl(ref, pred).sum())
