"""Recovery flags shared by ``arborist prune`` and ``arborist recover``, and the one run.

``add_recovery_arguments(parser)`` adds them; ``recovery_config(args)`` turns them into
the engine's `RecoveryConfig` (None when no budget flag asks for recovery);
``run_recovery`` trains the pruned model on ``--data`` and returns the JSON section.
Under ``torchrun`` / ``accelerate launch`` every process trains its shard; only the
main process (RANK 0) writes files and prints (``is_main_rank``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from .errors import CliError

LOSS_HELP = ("distill: KL to the original model (works without labels); labels: "
             "cross-entropy; both: the sum (default: distill, plus labels when the data has them)")


def add_recovery_arguments(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    g = p.add_argument_group(
        "recovery", "win back accuracy after pruning by training on --data (distillation from "
        "the original model, plus labels when the data has them)")
    budget = g.add_mutually_exclusive_group(required=required)
    budget.add_argument("--recover-epochs", type=float, metavar="E",
                        help="recover for E passes over --data")
    budget.add_argument("--recover-steps", type=int, metavar="S",
                        help="recover for S optimizer steps")
    budget.add_argument("--recover-minutes", type=float, metavar="M",
                        help="recover for M minutes of wall-clock time")
    g.add_argument("--recover-loss", choices=("distill", "labels", "both"), help=LOSS_HELP)
    g.add_argument("--lr", type=float, default=1e-3, metavar="LR",
                   help="peak learning rate of AdamW (cosine schedule, 5%% warm-up; default 1e-3)")
    g.add_argument("--weight-decay", type=float, default=1e-4, metavar="WD", help="default 1e-4")
    g.add_argument("--temperature", type=float, default=4.0, metavar="T",
                   help="distillation temperature (default 4)")
    g.add_argument("--eval-every", type=int, metavar="N",
                   help="evaluate every N steps (default: 10 times per run)")
    g.add_argument("--patience", type=int, metavar="K",
                   help="stop after K evaluations without improvement, keeping the best weights")
    g.add_argument("--seed", type=int, default=0, metavar="S", help="shuffling and init seed")
    g.add_argument("--checkpoint", metavar="P",
                   help="write a resumable checkpoint here at every evaluation (atomic)")
    g.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint if it exists (same model, plan and data)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="default: CUDA when present (via accelerate), else the CPU")
    g.add_argument("--mixed-precision", choices=("auto", "no", "bf16", "fp16"), default="auto",
                   help="default: bf16 on GPUs that support it, none on the CPU")
    g.add_argument("--lora-rank", type=int, metavar="R",
                   help="Hugging Face LMs: train rank-R LoRA adapters (peft) instead of all "
                   "weights, merged into the model at the end")
    g.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for training (default: torch's choice; 1 is fastest for "
                   "tiny models on a busy machine)")


def wants_recovery(args: argparse.Namespace) -> bool:
    return any(getattr(args, n, None) is not None
               for n in ("recover_epochs", "recover_steps", "recover_minutes"))


def check_recovery_flags(args: argparse.Namespace) -> None:
    """Impossible combinations, before any slow work."""
    if not wants_recovery(args):
        for flag, given in (("--resume", args.resume), ("--checkpoint", args.checkpoint),
                            ("--recover-loss", args.recover_loss), ("--patience", args.patience)):
            if given:
                raise CliError(f"{flag} applies to recovery: also give --recover-epochs E, "
                               "--recover-steps S or --recover-minutes M")
        return
    if not getattr(args, "data", None):
        raise CliError("recovery trains on your data: give --data PATH (an image folder, "
                       "tensor file or text corpus)")
    if args.resume and not args.checkpoint:
        raise CliError("--resume continues from a checkpoint: give it with --checkpoint P")
    if args.threads is not None and args.threads < 1:
        raise CliError(f"--threads {args.threads}: give 1 or more")
    try:
        recovery_config(args)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def recovery_config(args: argparse.Namespace) -> Any:
    """The engine's RecoveryConfig from the flags, or None without a budget flag."""
    if not wants_recovery(args):
        return None
    from engine.recover import Budget, RecoveryConfig

    budget = Budget(epochs=args.recover_epochs, steps=args.recover_steps,
                    minutes=args.recover_minutes)
    return RecoveryConfig(
        budget=budget, loss=args.recover_loss or "auto", temperature=args.temperature,
        lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
        eval_every=args.eval_every, patience=args.patience, seed=args.seed,
        checkpoint=args.checkpoint, device=args.device, mixed_precision=args.mixed_precision,
        lora_rank=args.lora_rank)


def is_main_rank() -> bool:
    """False in the other processes of a torchrun / accelerate launch (they stay quiet)."""
    return os.environ.get("RANK", "0") == "0"


def open_recovery_data(args: argparse.Namespace, opened: Any, progress: Any) -> Any:
    """RunData whose calibration set is ALL of --data (recovery trains on every sample)."""
    from engine.data import prepare_data

    from .data_args import check_data_flags, data_options, model_facts

    check_data_flags(args)
    options = dataclasses.replace(data_options(args), calibration_samples=None, seed=args.seed)
    with progress.stage(f"opening {options.data}"):
        return prepare_data(options, model_facts(opened))


def capped_for_calibration(run_data: Any) -> Any:
    """The same RunData with the calibration set capped as engine.data does by default."""
    from engine.data import subset
    from engine.data.selection import DEFAULT_CALIBRATION_SAMPLES

    if run_data is None or run_data.calibration is None:
        return run_data
    capped = subset(run_data.calibration, DEFAULT_CALIBRATION_SAMPLES, run_data.options.seed)
    return dataclasses.replace(run_data, calibration=capped)


def run_recovery(model: Any, teacher: Any, run_data: Any, config: Any, args: argparse.Namespace,
                 progress: Any, *, label: str = "recovering") -> Any:
    """Recover `model` in place on the run's calibration set; returns the RecoveryReport."""
    import torch

    from engine.data import make_loader
    from engine.recover import recover, watched_metric

    loader = make_loader(run_data.calibration, config.batch_size, shuffle=True, seed=config.seed,
                         num_workers=args.workers)
    metric = None
    if run_data.evaluation is not None:
        eval_loader = make_loader(run_data.evaluation, config.batch_size,
                                  num_workers=args.workers)
        metric = watched_metric(eval_loader, teacher)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        with progress.counter(label) as callback:
            def tell(event: Any) -> None:
                if event.point is not None:
                    return
                eta = "" if event.eta_s is None else f", ETA {event.eta_s:.0f} s"
                loss = "" if event.loss is None else f"loss {event.loss:.4g}"
                callback(event.step, event.total or 0, f"{loss}{eta}")

            report = recover(model, loader, teacher=teacher,
                             metric=None if metric is None else metric.measure,
                             metric_name="none" if metric is None else metric.name,
                             greater_is_better=True if metric is None else metric.greater_is_better,
                             config=config, progress=tell, resume=args.resume)
    except ValueError as exc:  # a recipe this data cannot follow (labels loss, no labels)
        raise CliError(str(exc)) from None
    finally:
        torch.set_num_threads(threads)
    return report


def recovery_section(reports: list[Any]) -> dict[str, Any]:
    """The JSON `recovery` object; iterative runs add one entry per step under `steps_runs`."""
    last = reports[-1].to_dict()
    section = {key: last[key] for key in ("steps", "epochs", "seconds", "samples_per_s", "curve",
                                          "resumed_from")}
    section.update({key: last[key] for key in ("curve_labels", "best_metric", "best_step",
                                               "stopped", "metric_name", "loss_kind",
                                               "processes", "device", "mixed_precision")})
    if len(reports) > 1:
        section["per_step"] = [r.to_dict() for r in reports]
        section["steps"] = sum(r.steps for r in reports)
        section["seconds"] = round(sum(r.seconds for r in reports), 3)
    return section


def format_recovery(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    metric = section.get("metric_name") or "metric"
    rows = [r for r in section["curve"] if r[2] is not None]
    lines = [f"  recovery: {section['steps']} steps ({section['epochs']:g} epochs) in "
             f"{section['seconds']:.1f} s, {section['samples_per_s']:.0f} samples/s, "
             f"on {section['processes']} process(es), {section['device']}"]
    if rows:
        labels = section.get("curve_labels") or []
        pruned = next((r[2] for r, lab in zip(section["curve"], labels, strict=False)
                       if lab == "pruned"), None)
        bn = next((r[2] for r, lab in zip(section["curve"], labels, strict=False)
                   if lab == "bn-recalibrated"), None)
        parts = [f"pruned {pruned:.4g}"] if pruned is not None else []
        if bn is not None:
            parts.append(f"after BN re-estimation {bn:.4g}")
        parts.append(f"final {rows[-1][2]:.4g}")
        lines.append(f"  {metric}: " + " -> ".join(parts))
    if section.get("resumed_from") is not None:
        lines.append(f"  resumed from step {section['resumed_from']}")
    return lines
