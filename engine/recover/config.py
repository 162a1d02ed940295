"""What a recovery run is asked to do: its budget and its training recipe (plain data).

Both front ends fill these from flags or dialogs; the loop reads nothing else, so a
run is reproducible from its config, its seed and its data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

LossKind = Literal["auto", "distill", "labels", "both"]
LOSS_KINDS: tuple[str, ...] = ("auto", "distill", "labels", "both")
PRECISIONS: tuple[str, ...] = ("auto", "no", "bf16", "fp16")


@dataclass(frozen=True)
class Budget:
    """How long to train: exactly one of epochs, steps or minutes (wall clock)."""

    epochs: float | None = None
    steps: int | None = None
    minutes: float | None = None

    def __post_init__(self) -> None:
        given = [n for n in ("epochs", "steps", "minutes") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one budget: epochs, steps or minutes"
                             + (f" (got {', '.join(given)})" if given else ""))
        value = getattr(self, given[0])
        if not value > 0:
            raise ValueError(f"the recovery budget must be positive, got {given[0]}={value}")

    def total_steps(self, steps_per_epoch: int | None) -> int | None:
        """Optimizer steps the budget allows; None for a time budget or an unsized loader."""
        if self.steps is not None:
            return int(self.steps)
        if self.epochs is not None and steps_per_epoch:
            return max(1, round(self.epochs * steps_per_epoch))
        return None

    def describe(self) -> str:
        if self.steps is not None:
            return f"{self.steps} steps"
        if self.epochs is not None:
            return f"{self.epochs:g} epochs"
        return f"{self.minutes:g} minutes"


@dataclass(frozen=True)
class RecoveryConfig:
    """The recipe: distillation from the original model and/or labels, AdamW + cosine.

    loss: "auto" = distillation, plus cross-entropy when the batches carry labels;
    "distill" = KL to the teacher only; "labels" = cross-entropy only; "both" = the sum
    (labels required). Causal LMs (logits N x L x V) get next-token CE and per-token KL.
    `feature_layers` adds MSE between student and teacher outputs of those modules
    (their shapes must match: block outputs the plan did not narrow).
    `lora_rank` trains low-rank adapters (Hugging Face `peft`, every Linear but the head)
    instead of all weights, then merges them in: for LMs too big to fine-tune whole.
    `freeze_bn` keeps batch-norm statistics at their re-estimated values while training
    (affine weights still learn): data-parallel runs then match a single process exactly,
    since per-process batch statistics are what differs between them.
    """

    budget: Budget = field(default_factory=lambda: Budget(epochs=1))
    loss: LossKind = "auto"
    temperature: float = 4.0
    feature_layers: tuple[str, ...] = ()
    feature_weight: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    grad_clip: float | None = 1.0
    batch_size: int = 64
    eval_every: int | None = None  # optimizer steps; None = once per epoch (or 10 evals)
    patience: int | None = None  # evaluations without improvement before stopping
    seed: int = 0
    checkpoint: str | None = None
    checkpoint_every: int | None = None  # steps; None = at every evaluation
    mixed_precision: str = "auto"  # auto: bf16 on CUDA devices that support it, else none
    device: str = "auto"  # auto | cpu | cuda
    recalibrate_bn: bool = True
    bn_batches: int = 50
    freeze_bn: bool = False
    lora_rank: int | None = None  # causal LMs: train LoRA adapters (peft) on every Linear

    def __post_init__(self) -> None:
        if self.loss not in LOSS_KINDS:
            raise ValueError(f"unknown recovery loss {self.loss!r}; use one of "
                             + ", ".join(LOSS_KINDS))
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"unknown mixed precision {self.mixed_precision!r}; use one of "
                             + ", ".join(PRECISIONS))
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"unknown device {self.device!r}; use auto, cpu or cuda")
        for name in ("lr", "temperature", "batch_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError("eval_every must be at least 1 step")
        if self.patience is not None and self.patience < 1:
            raise ValueError("patience must be at least 1 evaluation")
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ValueError("lora_rank must be at least 1")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError("warmup_fraction must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["feature_layers"] = list(self.feature_layers)
        return data
