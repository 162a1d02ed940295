"""Recovery: win back a pruned model's accuracy by distillation and fine-tuning.

    from engine.recover import Budget, RecoveryConfig, recover
    report = recover(pruned, loader, teacher=original, metric=accuracy_on_heldout,
                     config=RecoveryConfig(budget=Budget(epochs=3)))

Devices, mixed precision and data parallelism come from Hugging Face `accelerate`
(run under `torchrun` / `accelerate launch` for several processes).
"""

from .batchnorm import freeze_batchnorm, recalibrate_batchnorm
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import LOSS_KINDS, Budget, RecoveryConfig
from .iterative import IterativeResult, prune_and_recover
from .loop import RecoveryProgress, lr_factor, make_accelerator, recover
from .losses import distill_kl, logits_of, next_token_ce, recovery_loss
from .metric import WatchedMetric, watched_metric
from .report import BN_POINT, CurvePoint, RecoveryReport

__all__ = [
    "BN_POINT",
    "Budget",
    "CheckpointError",
    "CurvePoint",
    "IterativeResult",
    "LOSS_KINDS",
    "RecoveryConfig",
    "RecoveryProgress",
    "RecoveryReport",
    "distill_kl",
    "freeze_batchnorm",
    "load_checkpoint",
    "logits_of",
    "lr_factor",
    "make_accelerator",
    "next_token_ce",
    "prune_and_recover",
    "recalibrate_batchnorm",
    "recover",
    "recovery_loss",
    "save_checkpoint",
    "WatchedMetric",
    "watched_metric",
]
