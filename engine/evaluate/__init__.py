"""Evaluation on real data: accuracy, fidelity to the original model, perplexity."""

from .loop import eval_mode, evaluate, logits_of
from .metrics import Metrics

__all__ = ["Metrics", "evaluate", "eval_mode", "logits_of"]
