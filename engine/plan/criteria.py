"""Importance criteria by name, so a JSON plan can say "taylor" with {"p": 1}-style options."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .. import importance as imp

# Plan name -> engine class. Names are Torch-Pruning-like, lower case.
CRITERIA: dict[str, type] = {
    "magnitude": imp.MagnitudeImportance,
    "group_magnitude": imp.GroupMagnitudeImportance,
    "taylor": imp.TaylorImportance,
    "group_taylor": imp.GroupTaylorImportance,
    "hessian": imp.HessianImportance,
    "group_hessian": imp.GroupHessianImportance,
    "bn_scale": imp.BNScaleImportance,
    "lamp": imp.LAMPImportance,
    "fpgm": imp.FPGMImportance,
    "activation": imp.ActivationImportance,
    "random": imp.RandomImportance,
}

# Criteria that read `.grad` (filled by a calibration backward pass).
GRADIENT_CRITERIA = frozenset({"taylor", "group_taylor", "hessian", "group_hessian"})
# Criteria that read activation statistics (filled by calibration forwards).
ACTIVATION_CRITERIA = frozenset({"activation"})
# Criteria whose scores depend on data (the calibration batches).
DATA_CRITERIA = GRADIENT_CRITERIA | ACTIVATION_CRITERIA
# Options that only make sense from Python (not JSON-serializable).
_PYTHON_ONLY = frozenset({"target_types"})


def accepted_options(name: str) -> list[str]:
    """Keyword options the criterion's constructor takes (JSON-able ones only)."""
    sig = inspect.signature(CRITERIA[name].__init__)
    return [p for p in sig.parameters if p != "self" and p not in _PYTHON_ONLY]


def criterion_problems(name: Any, options: Any) -> list[str]:
    """Every problem with an importance name + options pair (empty list when fine)."""
    if not isinstance(name, str) or name not in CRITERIA:
        return [f"importance: unknown criterion {name!r} (choose one of "
                f"{', '.join(sorted(CRITERIA))})"]
    if not isinstance(options, dict):
        return ["importance_options: must be an object"]
    allowed = accepted_options(name)
    problems = [f"importance_options[{k!r}]: {name} does not accept this option (accepted: "
                f"{', '.join(allowed) or 'none'})" for k in options if k not in allowed]
    if problems:
        return problems
    try:
        make_criterion(name, options)
    except (TypeError, ValueError) as e:
        problems.append(f"importance_options: {e}")
    return problems


def make_criterion(name: str, options: dict[str, Any]) -> Callable:
    """Instantiate the engine criterion; raises ValueError/TypeError on bad options."""
    return CRITERIA[name](**options)
