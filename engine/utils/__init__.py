"""Small engine helpers (no Qt): counting now; printing and other tools join later."""

from engine.utils import print_tool
from engine.utils.counting import count_ops_and_params

__all__ = ["count_ops_and_params", "print_tool"]
