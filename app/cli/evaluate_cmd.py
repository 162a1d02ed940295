"""``arborist evaluate MODEL --data PATH``: the model's metrics on the user's data.

Prints one JSON object (``--json``) whose metric keys are those of
`engine.evaluate.Metrics.as_dict()`: samples, skipped, accuracy and top5 (labels),
agreement and kl (``--reference``, classifiers), cosine and relative_error
(``--reference``, other outputs), perplexity (language models on text).
"""

from __future__ import annotations

import argparse
from typing import Any

from .data_args import add_data_arguments, check_data_flags, data_options, model_facts
from .errors import CliError, one_line
from .parser import add_model_arguments
from .progress import Progress
from .session import open_model

METRIC_LABELS = (
    ("accuracy", "accuracy", True),
    ("top5", "top-5 accuracy", True),
    ("agreement", "top-1 agreement with the reference", True),
    ("kl", "mean KL(reference || model)", False),
    ("cosine", "cosine similarity to the reference", False),
    ("relative_error", "relative error vs the reference", False),
    ("perplexity", "perplexity", False),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--reference", metavar="MODEL",
                   help="compare with this model (e.g. the original before pruning): top-1 "
                   "agreement and KL, or cosine and relative error; loaded like MODEL")
    add_data_arguments(p, required=True)


def run(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from engine.data import prepare_evaluation
    from engine.evaluate import evaluate

    check_data_flags(args)
    options = data_options(args)
    opened = open_model(args, progress)
    reference = None
    if args.reference:
        ref_args = argparse.Namespace(**{**vars(args), "model": args.reference})
        reference = open_model(ref_args, progress).model
    with progress.stage(f"opening {options.eval_data or options.data}"):
        run_data = prepare_evaluation(options, model_facts(opened))
    source = run_data.evaluation
    loader = run_data.evaluation_loader()
    with progress.counter("evaluating") as callback:
        try:
            metrics = evaluate(opened.model, loader, reference=reference, progress=callback)
        except ValueError as exc:
            if type(exc).__name__ == "DataError":
                raise
            raise CliError(f"cannot evaluate {args.model} on {source.path}: "
                           f"{one_line(str(exc), 200)}") from None
    return {
        "command": "evaluate",
        "source": args.model,
        "reference": args.reference,
        "data": source.path,
        "kind": source.kind,
        "classes": source.classes,
        "preprocessing": None if source.preprocessing is None else source.preprocessing.to_dict(),
        **metrics.as_dict(),
    }


def format_metrics(metrics: dict[str, Any], indent: str = "  ") -> list[str]:
    lines = []
    for key, label, percent in METRIC_LABELS:
        if metrics.get(key) is not None:
            value = metrics[key]
            lines.append(f"{indent}{label:<36} {value:.2%}" if percent else
                         f"{indent}{label:<36} {value:.4g}")
    return lines


def format_report(report: dict[str, Any]) -> str:
    head = (f"evaluated {report['source']} on {report['data']}: {report['samples']} samples"
            + (f", {report['skipped']} unreadable skipped" if report.get("skipped") else ""))
    lines = [head, *format_metrics(report)]
    pre = report.get("preprocessing")
    if pre:
        from engine.data import Preprocessing

        lines.append(f"  preprocessing: {Preprocessing.from_dict(pre).describe()}")
    if len(lines) == 1 + bool(pre):
        lines.append("  no metric applies: give labels (class folders or y) or --reference")
    return "\n".join(lines)
