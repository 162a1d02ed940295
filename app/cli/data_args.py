"""The data flags every command that reads user data shares, and their engine options.

``add_data_arguments(parser)`` adds them; ``data_options(args)`` turns them into the
engine's `DataOptions`, the same object the GUI's data panel fills.
"""

from __future__ import annotations

import argparse
from typing import Any

from .errors import CliError


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give N or H,W") from None
    if not 1 <= len(values) <= 2 or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give N or H,W (positive)")
    return values


def _floats(text: str) -> list[float]:
    if text.strip().lower() in ("none", "off"):
        return []
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated numbers") from None


def add_data_arguments(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    g = p.add_argument_group(
        "data",
        "your data: an image folder (class subfolders = labels, or flat), a tensor file "
        "(.pt/.npz/.npy with x and optionally y), a text corpus (.txt/.jsonl) or a saved "
        "Hugging Face dataset folder",
    )
    g.add_argument("--data", metavar="PATH", required=required,
                   help="data to evaluate on" if required else
                   "data to calibrate data-driven criteria on (and, without --eval-data, "
                   "a seeded 20%% evaluation split of it)")
    g.add_argument("--eval-data", metavar="PATH",
                   help="separate data to evaluate on (all of --data then calibrates)")
    g.add_argument("--samples", type=int, metavar="N",
                   help="use a seeded subset of N samples (of each set)")
    g.add_argument("--batch-size", type=int, default=32, metavar="B", help="default 32")
    g.add_argument("--workers", type=int, metavar="W",
                   help="DataLoader worker processes (default: some for images, 0 otherwise)")
    g.add_argument("--resize", type=_ints, metavar="N|H,W",
                   help="resize the shorter side to N, or exactly to H,W (default: the model's)")
    g.add_argument("--crop", type=_ints, metavar="N|H,W", help="centre crop (default: the model's)")
    g.add_argument("--mean", type=_floats, metavar="M,..",
                   help="per-channel mean after pixels/255 ('none': no normalisation)")
    g.add_argument("--std", type=_floats, metavar="S,..", help="per-channel std ('none')")
    g.add_argument("--grayscale", action=argparse.BooleanOptionalAction, default=None,
                   help="read images as 1-channel gray (--no-grayscale: RGB)")
    g.add_argument("--tokenizer", metavar="PATH",
                   help="tokenizer.json or HF tokenizer folder for text (default: the one "
                   "next to the model)")
    g.add_argument("--seq-len", type=int, metavar="T",
                   help="tokens per text sequence (default 128)")


def preprocessing_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The preprocessing fields the user set on the command line."""
    out: dict[str, Any] = {}
    for name in ("resize", "crop"):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value[0] if len(value) == 1 else tuple(value)
    for name in ("mean", "std"):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = tuple(value) if value else None
    if getattr(args, "grayscale", None) is not None:
        out["grayscale"] = bool(args.grayscale)
    return out


def data_options(args: argparse.Namespace) -> Any:
    """The engine's DataOptions from the flags (DataError for impossible values)."""
    from engine.data import DataOptions

    return DataOptions(
        data=getattr(args, "data", None),
        eval_data=getattr(args, "eval_data", None),
        samples=getattr(args, "samples", None),
        batch_size=getattr(args, "batch_size", 32),
        workers=getattr(args, "workers", None),
        preprocessing=preprocessing_overrides(args),
        tokenizer=getattr(args, "tokenizer", None),
        seq_len=getattr(args, "seq_len", None),
    )


def model_facts(opened: Any) -> Any:
    """What the opened model says about its inputs (for preprocessing and tokenizers)."""
    from engine.data import ModelFacts

    facts = ModelFacts.from_loaded(opened.loaded)
    facts.example_inputs = opened.example_inputs
    return facts


def check_data_flags(args: argparse.Namespace) -> None:
    """Flag combinations that make no sense, before any slow work."""
    if getattr(args, "workers", None) is not None and args.workers < 0:
        raise CliError(f"--workers {args.workers}: give 0 or more")
    if getattr(args, "seq_len", None) is not None and args.seq_len < 2:
        raise CliError(f"--seq-len {args.seq_len}: give at least 2 tokens")


def open_run_data(args: argparse.Namespace, opened: Any, progress: Any) -> Any:
    """The run's calibration/evaluation sets (engine.data.RunData), or None without data."""
    from engine.data import prepare_data

    check_data_flags(args)
    options = data_options(args)
    if not options.any:
        return None
    with progress.stage(f"opening {options.data or options.eval_data}"):
        return prepare_data(options, model_facts(opened))


def calibration_of(run_data: Any) -> Any:
    """A data calibration (engine.plan.calibration) over the calibration set, or None."""
    if run_data is None or run_data.calibration is None:
        return None
    from engine.plan.calibration import data_calibration

    return data_calibration(run_data.calibration_loader(), description=run_data.calibration.path)


def measure(model: Any, run_data: Any, progress: Any, reference: Any = None) -> Any:
    """Metrics.as_dict() of `model` on the evaluation set (None without one)."""
    if run_data is None or run_data.evaluation is None:
        return None
    from engine.evaluate import evaluate

    with progress.counter("evaluating") as callback:
        return evaluate(model, run_data.evaluation_loader(), reference=reference,
                        progress=callback).as_dict()
