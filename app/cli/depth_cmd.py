"""``arborist depth MODEL --data PATH``: which whole residual blocks could go.

Lists each removable block (engine.depth.find_depth_groups) with its importance,
1 - cos(input, output) of its hidden states averaged over the data: low means the block
barely changes the residual stream, the first candidate for ``prune --drop-blocks``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .data_args import add_data_arguments, check_data_flags, data_options, model_facts
from .errors import CliError, one_line
from .parser import add_model_arguments
from .progress import Progress
from .session import open_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    add_data_arguments(p, required=True)


def run(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from engine.data import prepare_evaluation
    from engine.depth import block_importance, find_depth_groups

    check_data_flags(args)
    options = data_options(args)
    opened = open_model(args, progress)
    groups = find_depth_groups(opened.model)
    report: dict[str, Any] = {"command": "depth", "source": args.model, "data": None,
                              "blocks": []}
    if not groups:
        return report
    with progress.stage(f"opening {options.eval_data or options.data}"):
        run_data = prepare_evaluation(options, model_facts(opened))
    report["data"] = run_data.evaluation.path
    with progress.stage(f"measuring {len(groups)} blocks"):
        try:
            scores = block_importance(opened.model, groups, run_data.evaluation_loader())
        except (RuntimeError, ValueError, TypeError) as exc:
            if type(exc).__name__ == "DataError":
                raise
            raise CliError(f"cannot run {args.model} on {run_data.evaluation.path}: "
                           f"{one_line(str(exc), 200)}") from None
    ranked = sorted(scores, key=scores.get)
    report["blocks"] = [
        {"name": g.name, "importance": scores.get(g.name),
         "rank": ranked.index(g.name) + 1 if g.name in scores else None}
        for g in groups
    ]
    return report


def format_report(report: dict[str, Any]) -> str:
    if not report["blocks"]:
        return f"{report['source']}: no removable residual blocks found"
    lines = [f"removable blocks of {report['source']} on {report['data']} "
             "(importance = 1 - cos(input, output); lowest first to drop):"]
    for b in sorted(report["blocks"], key=lambda b: (b["rank"] is None, b["rank"] or 0)):
        value = "not reached" if b["importance"] is None else f"{b['importance']:.4f}"
        lines.append(f"  {b['rank'] or '-':>3}  {b['name']:<40} {value}")
    lines.append("drop some with: arborist prune MODEL --drop-blocks NAME,NAME")
    return "\n".join(lines)
