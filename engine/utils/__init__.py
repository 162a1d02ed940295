"""Small engine helpers (no Qt): counting, printing, optimizers after pruning, timing."""

from engine.utils import benchmark, print_tool
from engine.utils.counting import count_ops_and_params
from engine.utils.optim import drop_stale_state, rebuild_optimizer
from engine.utils.tensors import count_params, flatten_as_list

__all__ = [
    "benchmark",
    "count_ops_and_params",
    "count_params",
    "drop_stale_state",
    "flatten_as_list",
    "print_tool",
    "rebuild_optimizer",
]
