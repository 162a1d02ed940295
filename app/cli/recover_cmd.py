"""``arborist recover``: win back the accuracy of a model pruned earlier, then export it.

PRUNED_FILE is trained on ``--data`` (distilled from ``--teacher``, the original model,
plus labels when the data has them) and written to OUT. The pruned file is never
modified. The same recovery as ``arborist prune ... --recover-*``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .data_args import add_data_arguments, measure
from .errors import CliError
from .parser import OUTPUT_FORMATS_HELP, add_model_arguments
from .progress import Progress
from .recovery_args import (
    add_recovery_arguments,
    check_recovery_flags,
    format_recovery,
    is_main_rank,
    open_recovery_data,
    recovery_config,
    recovery_section,
    run_recovery,
)
from .session import open_model
from .writers import check_format_possible, check_writable, output_format, write_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--teacher", metavar="ORIGINAL", required=True,
                   help="the model before pruning (file or zoo spec): the distillation teacher")
    p.add_argument("--teacher-arch", metavar="SPEC",
                   help="architecture of a weights-only teacher file (like --arch)")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help=OUTPUT_FORMATS_HELP)
    add_data_arguments(p)
    add_recovery_arguments(p, required=True)


def run(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    check_recovery_flags(args)
    fmt = output_format(args.output)
    check_writable(args.output, args.model, inputs=(args.teacher,))
    opened = open_model(args, progress)
    check_format_possible(fmt, opened.loaded.arch)
    teacher_args = argparse.Namespace(**{**vars(args), "model": args.teacher,
                                         "arch": args.teacher_arch})
    teacher = open_model(teacher_args, progress).model
    model, inputs = opened.model, opened.example_inputs
    _check_same_outputs(opened, teacher)
    config = recovery_config(args)
    run_data = open_recovery_data(args, opened, progress)
    macs, params = opened.session.counts()
    report: dict[str, Any] = {
        "command": "recover",
        "source": args.model,
        "teacher": args.teacher,
        "input_spec": opened.input_spec,
        "model": {"macs": macs, "params": params},
        "data": run_data.describe(),
        "metrics": {"teacher": measure(teacher, run_data, progress),
                    "pruned": measure(model, run_data, progress, teacher)},
    }
    recovery = run_recovery(model, teacher, run_data, config, args, progress)
    report["recovery"] = recovery_section([recovery])
    report["metrics"]["recovered"] = measure(model, run_data, progress, teacher)
    report["output"], report["format"], report["validation"] = None, fmt, None
    if not is_main_rank():  # torchrun / accelerate launch: process 0 alone writes
        return report
    with progress.stage(f"writing {args.output}"):
        report["validation"] = write_model(fmt, model, inputs, args.output, source=args.model,
                                           arch=opened.session.arch,
                                           history=opened.session.pruning_history,
                                           input_spec=opened.input_spec)
    report["output"] = args.output
    problem = report["validation"].get("problem")
    if problem:
        report["error"] = problem
    return report


def _check_same_outputs(opened: Any, teacher: Any) -> None:
    """The teacher must answer the pruned model's inputs with outputs of the same shape."""
    import torch

    from engine.io import call_with
    from engine.recover import logits_of

    with torch.no_grad():
        try:
            theirs = logits_of(call_with(teacher, opened.example_inputs))
        except Exception as exc:  # noqa: BLE001 - any failure means the wrong teacher
            raise CliError(f"--teacher does not run on the pruned model's inputs "
                           f"{opened.input_spec}: {type(exc).__name__}") from None
    ours = logits_of(opened.reference_output)
    if tuple(theirs.shape) != tuple(ours.shape):
        raise CliError(f"--teacher outputs shape {tuple(theirs.shape)}, the pruned model "
                       f"{tuple(ours.shape)}: give the original the model was pruned from")


def format_report(report: dict[str, Any]) -> str:
    from .prune_cmd import format_metrics_change

    out = report.get("output") or "(not written)"
    lines = [f"recovered {report['source']} (teacher {report['teacher']}) -> {out}"]
    metrics = report.get("metrics") or {}
    lines.extend(format_metrics_change({"before": metrics.get("pruned"),
                                        "pruned": metrics.get("recovered")}))
    lines.extend(format_recovery(report.get("recovery")))
    v = report.get("validation") or {}
    if v.get("max_abs_diff") is not None:
        verdict = "ok" if v.get("outputs_match") else "MISMATCH"
        lines.append(f"  check: reloaded file vs PyTorch, max abs diff {v['max_abs_diff']:.3g} "
                     f"({verdict})")
    return "\n".join(lines)


def _carry_history(opened: Any) -> None:
    """A model reopened from a safe checkpoint keeps its earlier pruning steps on export."""
    from engine.pruner.serialization import HISTORY_ATTR

    earlier = list(opened.loaded.pruning_history or [])
    if earlier and not getattr(opened.model, HISTORY_ATTR, None):
        opened.model.__dict__[HISTORY_ATTR] = [(n, bool(o), list(i)) for n, o, i in earlier]


def _history(model: Any) -> list[Any]:
    from engine.pruner.serialization import HISTORY_ATTR

    return [[n, bool(o), list(i)] for n, o, i in getattr(model, HISTORY_ATTR, [])]
