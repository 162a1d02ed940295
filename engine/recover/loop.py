"""The recovery loop: fine-tune / distil a pruned model on the user's data.

One loop for every device and launcher: Hugging Face `accelerate` supplies the device
(CUDA when present, else the CPU), mixed precision and, under `torchrun` or
`accelerate launch`, data parallelism (DDP; each process reads its shard of every
global batch). Nothing here picks a device by hand.

The model is trained IN PLACE (callers pass a copy if they need the pruned one), the
optimizer is built here, after pruning (see engine.utils.optim for why), and the best
weights by the evaluation metric are restored at the end.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.batch import Batch, as_batch
from ..io import call_with
from .batchnorm import freeze_batchnorm, recalibrate_batchnorm
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state, shapes_of
from .config import RecoveryConfig
from .losses import recovery_loss
from .report import BN_POINT, CurvePoint, RecoveryReport

Metric = Callable[[nn.Module], float]


@dataclass(frozen=True)
class RecoveryProgress:
    """Sent after every optimizer step (and at each evaluation, with `point`)."""

    step: int
    total: int | None
    elapsed_s: float
    eta_s: float | None
    loss: float | None
    point: CurvePoint | None = None


def make_accelerator(config: RecoveryConfig) -> Any:
    """The Accelerator for this run: device, precision and processes from the launcher."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DataLoaderConfiguration

    cpu = config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available())
    precision = config.mixed_precision
    if precision == "auto":
        precision = "bf16" if not cpu and torch.cuda.is_bf16_supported() else "no"
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but no CUDA device is available here")
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", precision) != precision:
        # a second run in this process with another precision (tests, the GUI)
        AcceleratorState._reset_state(reset_partial_state=False)
    loader_config = DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed)
    return Accelerator(cpu=cpu, mixed_precision=precision, dataloader_config=loader_config)


def _plain_backward_ok(acc: Any) -> bool:
    """True when accelerate's backward / clipping would add nothing but overhead.

    That is: no fp16 loss scaler, no gradient accumulation, and a plain or DDP launch
    (DDP reduces gradients inside `loss.backward()` itself). FSDP, DeepSpeed and the
    rest keep accelerate's own calls. On a tiny model the two per-step checks it makes
    (package probes, DTensor-aware clipping) cost ~7% of a step.
    """
    from accelerate.utils import DistributedType

    plain = {DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU}
    return (getattr(acc, "scaler", None) is None and acc.gradient_accumulation_steps == 1
            and acc.distributed_type in plain)


def lr_factor(fraction: float, warmup: float) -> float:
    """Linear warm-up over the first `warmup` of the run, then cosine decay to zero."""
    if warmup > 0 and fraction < warmup:
        return max(fraction / warmup, 1e-3)
    span = max(1.0 - warmup, 1e-9)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (fraction - warmup) / span)))


def with_lora(model: nn.Module, rank: int) -> nn.Module:
    """`model` (a Hugging Face model) wrapped by peft with LoRA adapters of `rank`."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ValueError("LoRA recovery needs the peft package (pip install peft)") from None
    if not hasattr(model, "config"):
        raise ValueError("LoRA recovery applies to Hugging Face models (they carry a config)")
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", lora_dropout=0.0)
    return get_peft_model(model, lora)


class _FeatureTaps:
    """Forward hooks collecting outputs of the named layers of student and teacher."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, names: Iterable[str]):
        self.pairs: dict[str, list[torch.Tensor | None]] = {}
        self.handles = []
        names = list(names)
        if names and teacher is None:
            raise ValueError("feature distillation needs the original model as teacher")
        s_mods = dict(student.named_modules())
        t_mods = dict(teacher.named_modules()) if names and teacher is not None else {}
        for name in names:
            if name not in s_mods or name not in t_mods:
                raise ValueError(f"feature layer {name!r} is not a module of both models")
            self.pairs[name] = [None, None]
            for k, mod in ((0, s_mods[name]), (1, t_mods[name])):
                self.handles.append(mod.register_forward_hook(self._hook(name, k)))

    def _hook(self, name: str, k: int) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            self.pairs[name][k] = output if isinstance(output, torch.Tensor) else output[0]
        return hook

    def collect(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for name, (s, t) in self.pairs.items():
            if s is None or t is None:
                continue
            if s.shape != t.shape:
                raise ValueError(f"feature layer {name!r} has shape {tuple(s.shape)} in the "
                                 f"pruned model and {tuple(t.shape)} in the original: pick "
                                 "layers whose outputs pruning left unchanged")
            out.append((s, t))
        for pair in self.pairs.values():
            pair[0] = pair[1] = None
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def recover(
    model: nn.Module,
    train_data: Iterable[Any],
    *,
    teacher: nn.Module | None = None,
    metric: Metric | None = None,
    config: RecoveryConfig | None = None,
    progress: Callable[[RecoveryProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    resume: bool = False,
    accelerator: Any = None,
    metric_name: str = "accuracy",
    greater_is_better: bool = True,
) -> RecoveryReport:
    """Train `model` in place on `train_data` as `config` says; returns what it did.

    `train_data` yields `engine.data.Batch` or plain `(x, y)` / `x` items; a DataLoader
    is sharded across processes and reshuffled per epoch with the run's seed, which is
    what lets a checkpoint resume mid-epoch exactly. `metric(model) -> float` (higher
    is better) evaluates the model on held-out data; it runs on the main process only
    and its value is shared, so every process stops at the same step. `teacher` is the
    model before pruning (for distillation); it is put in eval mode and never updated.
    `cancel()` is checked after every step; a cancelled run saves its checkpoint and
    returns. With `resume`, training continues from `config.checkpoint` if it exists.
    The best weights (by the metric) are restored at the end only when early stopping
    (`config.patience`) is on; otherwise the run ends with its last weights, so that a
    metric on held-out data never selects the model it then reports on.
    """
    config = config or RecoveryConfig()
    run = _Run(model, train_data, teacher, metric, config, progress, cancel,
               accelerator or make_accelerator(config))
    run.report.metric_name, run.greater = metric_name, greater_is_better
    return run.run(resume)


class _Run:
    """One recovery run's state; `run` is the loop, the helpers its stages."""

    def __init__(self, model: nn.Module, data: Iterable[Any], teacher: nn.Module | None,
                 metric: Metric | None, config: RecoveryConfig,
                 progress: Callable[[RecoveryProgress], None] | None,
                 cancel: Callable[[], bool] | None, acc: Any) -> None:
        from accelerate.utils import set_seed

        self.config, self.acc, self.metric = config, acc, metric
        self.progress, self.cancel = progress, cancel
        set_seed(config.seed)
        self.raw_model = model
        self.lora = config.lora_rank is not None
        self.grad_flags = {n: p.requires_grad for n, p in model.named_parameters()}
        if self.lora:
            model = with_lora(model, config.lora_rank)
        self.teacher = teacher.eval().requires_grad_(False).to(acc.device) if teacher else None
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters to recover")
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        if isinstance(data, DataLoader):
            self.model, self.optimizer, self.data = acc.prepare(model, optimizer, data)
            self.prepared = True
        else:
            self.model, self.optimizer = acc.prepare(model, optimizer)
            self.data, self.prepared = data, False
        self.params = params
        self.plain_backward = _plain_backward_ok(acc)
        try:
            self.steps_per_epoch: int | None = len(self.data)  # type: ignore[arg-type]
        except TypeError:
            self.steps_per_epoch = None
        self.total = config.budget.total_steps(self.steps_per_epoch)
        if config.budget.epochs is not None and self.total is None:
            raise ValueError("an epoch budget needs data of known length; give steps or minutes")
        self.eval_every = config.eval_every or self._default_eval_every()
        self.report = RecoveryReport(processes=acc.num_processes, device=str(acc.device),
                                     mixed_precision=str(acc.mixed_precision),
                                     loss_kind=config.loss)
        self.step = self.epoch = self.batch_in_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.since_best = 0
        self.train_seconds = 0.0
        self.samples = 0
        self.loss_sum = torch.zeros((), device=acc.device)
        self.loss_count = 0
        self.last_loss: float | None = None
        self.greater = True

    def _default_eval_every(self) -> int:
        if self.total is not None:
            return max(1, self.total // 10)
        return self.steps_per_epoch or 50

    # -- stages ---------------------------------------------------------------------
    def run(self, resume: bool) -> RecoveryReport:
        start = time.perf_counter()
        was_training = self.raw_model.training
        path = self.config.checkpoint
        if resume and path and os.path.exists(path):
            self._restore(load_checkpoint(path, self.acc.unwrap_model(self.model)))
        else:
            self._first_points()
            self._set_lr(0)
        taps = _FeatureTaps(self.acc.unwrap_model(self.model), self.teacher,
                            self.config.feature_layers)
        try:
            self._train(taps, start)
        finally:
            taps.close()
        if self.config.patience and self.best_state is not None and \
                self.report.best_step != self.step:
            self.acc.unwrap_model(self.model).load_state_dict(self.best_state)
        if self.lora:  # adapters merged into the Linear layers; the model is plain again
            self.acc.unwrap_model(self.model).merge_and_unload()
            for name, p in self.raw_model.named_parameters():  # peft froze the base weights
                p.requires_grad_(self.grad_flags.get(name, True))
        self.report.steps = self.step
        self.report.epochs = (round(self.step / self.steps_per_epoch, 4)
                              if self.steps_per_epoch else 0.0)
        self.report.seconds = round(self.report.seconds + time.perf_counter() - start, 3)
        self.report.samples_per_s = round(self.samples / self.train_seconds, 1) \
            if self.train_seconds else 0.0
        self.raw_model.train(was_training)  # as it came (eval, for a model about to export)
        self.acc.wait_for_everyone()
        return self.report

    def _first_points(self) -> None:
        """Step 0: the pruned model, then (if it has BN layers) after re-estimating BN."""
        self._point(0, None, "pruned")
        if self.config.recalibrate_bn:
            average = (lambda t: self.acc.reduce(t, "mean")) if self.acc.num_processes > 1 \
                else None
            used = recalibrate_batchnorm(self.acc.unwrap_model(self.model), self.data,
                                         max_batches=self.config.bn_batches,
                                         to_device=self._to_device, average=average)
            if used:
                self._point(0, None, BN_POINT)

    def _train(self, taps: _FeatureTaps, start: float) -> None:
        cfg = self.config
        if self.total is not None and self.step >= self.total:
            return  # resumed from the checkpoint of a finished run
        limit_s = cfg.budget.minutes * 60 if cfg.budget.minutes is not None else None
        elapsed0 = self.report.seconds  # time spent before a resume
        while True:
            self.model.train()
            if cfg.freeze_bn:
                freeze_batchnorm(self.model)
            batches = self._epoch_batches()
            tick = time.perf_counter()
            for item in batches:
                batch = as_batch(item)
                if len(batch) == 0:  # every sample unreadable (engine.data counts them)
                    continue
                if not self.prepared:
                    batch = self._to_device(batch)
                self._optimizer_step(batch, taps)
                self.samples += len(batch) * self.acc.num_processes
                self.step += 1
                self.batch_in_epoch += 1
                now = time.perf_counter()
                self.train_seconds += now - tick
                elapsed = elapsed0 + now - start
                stop = self._stop_reason(elapsed, limit_s)
                if stop == "cancelled":  # no evaluation: the resumed run continues exactly
                    self._save(elapsed0 + time.perf_counter() - start)
                    self.report.stopped = stop
                    self._tell(elapsed, limit_s)
                    return
                if self.step % self.eval_every == 0 or stop:
                    self.model.eval()
                    improved = self._point(self.step, self._interval_loss(), "")
                    self.model.train()
                    if cfg.freeze_bn:
                        freeze_batchnorm(self.model)
                    if not improved and cfg.patience and self.since_best >= cfg.patience:
                        stop = stop or "early-stopping"
                    if stop or cfg.checkpoint_every is None:
                        self._save(elapsed0 + time.perf_counter() - start)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self._save(elapsed0 + time.perf_counter() - start)
                self._tell(elapsed, limit_s)
                if stop:
                    self.report.stopped = stop
                    return
                tick = time.perf_counter()
            self.epoch += 1
            self.batch_in_epoch = 0
            if self.steps_per_epoch == 0 or (self.steps_per_epoch is None and self.step == 0):
                raise ValueError("the training data yielded no batches")

    def _epoch_batches(self) -> Iterable[Any]:
        if self.prepared:
            self.data.set_epoch(self.epoch)
            if self.batch_in_epoch:
                skipped = self.acc.skip_first_batches(self.data, self.batch_in_epoch)
                return skipped
        return self.data

    def _optimizer_step(self, batch: Batch, taps: _FeatureTaps) -> None:
        cfg = self.config
        teacher_out = None
        if self.teacher is not None and (cfg.loss != "labels" or cfg.feature_layers):
            with torch.no_grad(), self.acc.autocast():
                teacher_out = call_with(self.teacher, batch.inputs)
        with self.acc.autocast():
            out = call_with(self.model, batch.inputs)
            parts = recovery_loss(cfg.loss, out, teacher_out, batch.labels, batch.inputs,
                                  temperature=cfg.temperature, features=taps.collect(),
                                  feature_weight=cfg.feature_weight)
        if self.plain_backward:
            parts.total.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        else:
            self.acc.backward(parts.total)
            if cfg.grad_clip:
                self.acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._set_lr(self.step + 1)
        self.loss_sum += parts.total.detach().float()
        self.loss_count += 1

    def _set_lr(self, step: int, elapsed: float | None = None, limit_s: float | None = None):
        if self.total:
            fraction = step / self.total
        elif limit_s and elapsed is not None:
            fraction = elapsed / limit_s
        else:
            fraction = 0.0
        factor = lr_factor(fraction, self.config.warmup_fraction)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * factor

    def _stop_reason(self, elapsed: float, limit_s: float | None) -> str:
        reason = ""
        if self.total is not None and self.step >= self.total:
            reason = "budget"
        elif limit_s is not None and elapsed >= limit_s:
            reason = "time"
        if self.cancel is not None and self.cancel():
            reason = reason or "cancelled"
        if self.acc.num_processes > 1 and (limit_s is not None or self.cancel is not None):
            codes = {"": 0, "budget": 1, "time": 2, "cancelled": 3}
            flag = torch.tensor([codes[reason]], device=self.acc.device)
            flag = int(self.acc.reduce(flag, "max").item())  # every process stops together
            reason = next(k for k, v in codes.items() if v == flag)
        if limit_s is not None and not self.total:
            self._set_lr(self.step, elapsed, limit_s)
        return reason

    def _interval_loss(self) -> float | None:
        if not self.loss_count:
            return self.last_loss
        mean = self.loss_sum / self.loss_count
        if self.acc.num_processes > 1:
            mean = self.acc.reduce(mean, "mean")
        self.last_loss = float(mean)
        self.loss_sum.zero_()
        self.loss_count = 0
        return self.last_loss

    def _point(self, step: int, loss: float | None, label: str) -> bool:
        """Evaluate (main process, shared), record the point; True if a new best."""
        value = self._evaluate()
        point = CurvePoint(step, None if loss is None else round(loss, 6),
                           None if value is None else round(value, 6), label)
        self.report.curve.append(point)
        if self.progress is not None and self.acc.is_main_process:
            self.progress(RecoveryProgress(step, self.total, self.train_seconds, None,
                                           point.loss, point))
        if value is None:
            return False
        best = self.report.best_metric
        if best is None or (value > best if self.greater else value < best):
            self.report.best_metric, self.report.best_step = value, step
            self.best_state = copy.deepcopy(self.acc.unwrap_model(self.model).state_dict())
            self.since_best = 0
            return True
        self.since_best += 1
        return False

    def _evaluate(self) -> float | None:
        if self.metric is None:
            return None
        value = torch.zeros(1, dtype=torch.float64, device=self.acc.device)
        if self.acc.is_main_process:
            module = self.acc.unwrap_model(self.model)
            was = module.training
            module.eval()
            with torch.no_grad():
                value[0] = float(self.metric(module))
            module.train(was)
        if self.acc.num_processes > 1:
            from accelerate.utils import broadcast

            value = broadcast(value, from_process=0)
        return float(value[0])

    def _tell(self, elapsed: float, limit_s: float | None) -> None:
        if self.progress is None or not self.acc.is_main_process:
            return
        eta = None
        if self.total:
            per_step = self.train_seconds / max(self.step - (self.report.resumed_from or 0), 1)
            eta = per_step * (self.total - self.step)
        elif limit_s is not None:
            eta = max(limit_s - elapsed, 0.0)
        self.progress(RecoveryProgress(self.step, self.total, elapsed, eta, self.last_loss))

    def _to_device(self, batch: Any) -> Batch:
        return as_batch(batch).to(self.acc.device)

    # -- checkpoints ----------------------------------------------------------------
    def _save(self, elapsed: float) -> None:
        path = self.config.checkpoint
        if not path:
            return
        if self.acc.is_main_process:
            module = self.acc.unwrap_model(self.model)
            save_checkpoint(path, {
                "shapes": shapes_of(module),
                "model": module.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "best_state": self.best_state,
                "best_metric": self.report.best_metric,
                "best_step": self.report.best_step,
                "since_best": self.since_best,
                "curve": [[p.step, p.loss, p.metric, p.label] for p in self.report.curve],
                "seconds": elapsed,
                "train_seconds": self.train_seconds,
                "samples": self.samples,
                "last_loss": self.last_loss,
                "loss_sum": self.loss_sum.detach().cpu(),
                "loss_count": self.loss_count,
                "rng": rng_state(),
                "config": {k: v for k, v in self.config.to_dict().items()
                           if isinstance(v, (int, float, str, bool, type(None)))},
            })
        self.acc.wait_for_everyone()

    def _restore(self, state: dict[str, Any]) -> None:
        self.acc.unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        if self.steps_per_epoch and self.batch_in_epoch >= self.steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self.best_state = state["best_state"]
        self.report.best_metric, self.report.best_step = state["best_metric"], state["best_step"]
        self.since_best = int(state["since_best"])
        self.report.curve = [CurvePoint(*row) for row in state["curve"]]
        self.report.seconds = float(state["seconds"])
        self.train_seconds = float(state["train_seconds"])
        self.samples = int(state["samples"])
        self.last_loss = state["last_loss"]
        self.loss_sum = state["loss_sum"].to(self.acc.device)
        self.loss_count = int(state["loss_count"])
        self.report.resumed_from = self.step
        set_rng_state(state["rng"])
        self._set_lr(self.step)
