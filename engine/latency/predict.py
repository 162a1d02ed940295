"""Predicted latency of a pruned model or of a plan, from a measured LatencyTable.

A plan is predicted without pruning anything real: the previewer's weightless meta
copy is pruned as the plan says, run once with hooks for every leaf's input shape,
and restored; the table turns the shapes into milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..graph.probe import meta_copy
from .table import TABLE_VERSION, LatencyTable, leaf_shapes, measure_table


def predict_model(table: LatencyTable, model: nn.Module, inputs: Any) -> float:
    """Predicted ms of `model` (e.g. a pruned copy) on the table's device."""
    from torch.utils._pytree import tree_map

    meta = meta_copy(model)
    meta_inputs = tree_map(lambda x: x.to("meta") if isinstance(x, torch.Tensor) else x, inputs)
    return table.predict_shapes(leaf_shapes(meta, meta_inputs))


def predict_plan(table: LatencyTable, previewer: Any, plan: Any) -> float:
    """Predicted ms of `plan` applied to the previewer's model (one-shot, exact widths)."""
    shadow = previewer._shadow
    if shadow is None:  # no meta forward: prune a real copy
        import copy

        from ..plan.apply import run_plan

        clone = copy.deepcopy(previewer.model)
        run_plan(clone, previewer.example_inputs, plan)
        return predict_model(table, clone, previewer.example_inputs)
    groups = previewer.planned_groups(plan)
    shapes = shadow.measure_pruned(groups, lambda m: leaf_shapes(m, shadow.inputs))
    return table.predict_shapes(shapes)


def recalibrate(table: LatencyTable, model: nn.Module, inputs: Any, *,
                rounds: int = 10) -> LatencyTable:
    """The table with the whole model re-timed now (best-of `rounds`): on a machine whose
    load drifts, the per-layer shape of the table holds while its absolute scale does not,
    so re-timing the original before planning keeps ms budgets honest (seconds, not a
    full re-measurement). The calibration fit's shape is kept; its level follows."""
    import dataclasses

    from .runners import runner_for

    runner = runner_for(table.device)
    best = runner.time_call(runner.prepare(model, inputs), min_reps=rounds, max_reps=rounds)
    return dataclasses.replace(table, full_model_ms=best.best)


def table_key(model: nn.Module, inputs: Any, device: str) -> str:
    """The cache file's name: model, input shapes and what the device's runner depends on
    (torch threads and version; ONNX Runtime's version; the GPU's name and capability)."""
    from torch.utils._pytree import tree_flatten

    from ..plan.scan import model_digest
    from .runners import runner_for

    shapes = [tuple(t.shape) for t in tree_flatten(inputs)[0] if isinstance(t, torch.Tensor)]
    parts = [model_digest(model), str(shapes), device, *runner_for(device).key_parts(),
             f"table v{TABLE_VERSION}"]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def cached_table(model: nn.Module, inputs: Any, *, device: str = "cpu", input_spec: str = "",
                 cache_dir: str | os.PathLike[str] | None = None, refresh: bool = False,
                 progress: Any = None) -> LatencyTable:
    """The model's table on `device`, measured once and kept on disk (atomic write)."""
    from ..plan.scan import default_cache_dir

    root = Path(cache_dir) if cache_dir else default_cache_dir().parent / "latency"
    path = root / f"{table_key(model, inputs, device)}.json"
    if path.is_file() and not refresh:
        try:
            cached = LatencyTable.load(path)
            if cached.version == TABLE_VERSION:  # an older table lacks the calibration
                return cached
        except (OSError, ValueError, KeyError, TypeError):
            pass
    table = measure_table(model, inputs, device=device, input_spec=input_spec,
                          progress=progress)
    try:
        root.mkdir(parents=True, exist_ok=True)
        table.save(path)
    except OSError:
        pass
    return table
