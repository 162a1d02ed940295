"""``arborist scan``: each group pruned alone at a few ratios, fidelity measured on data.

The curves (JSON, ``-o scan.json``) feed ``arborist plan --scan``. Results are also
cached per model + data + criterion under ~/.cache/arborist/scans (``--no-cache``).
"""

from __future__ import annotations

import argparse
from typing import Any

from .errors import CliError
from .parser import IMPORTANCE_HELP, add_model_arguments
from .progress import Progress
from .session import open_model, trace

__all__ = ["add_arguments", "format_report", "run", "add_scan_options", "scan_from_args"]


DEFAULT_SAMPLES = 256


def add_scan_options(p: argparse.ArgumentParser, *, required_data: bool = True) -> None:
    """Flags shared by ``scan`` and ``plan --data`` (data flags: app/cli/data_args.py; the
    scan measures on a seeded subset of --samples, default 256)."""
    from .data_args import add_data_arguments

    add_data_arguments(p, required=required_data)
    p.add_argument("--ratios", metavar="R,R,...", default="0.1,0.3,0.5,0.7,0.9",
                   help="ratios each group is pruned at alone (default 0.1,0.3,0.5,0.7,0.9)")
    p.add_argument("--importance", metavar="NAME", default="magnitude", help=IMPORTANCE_HELP)
    p.add_argument("--round-to", type=int, metavar="N", help="keep channel counts multiples of N")
    p.add_argument("--max-ratio", type=float, metavar="R", default=1.0,
                   help="never remove more than R of any group")
    p.add_argument("--ignore", nargs="+", action="extend", default=None, metavar="LAYER",
                   help="module paths to leave unpruned")
    p.add_argument("--units", choices=("groups", "isomorphic"), default="groups",
                   help="scan each group alone (default) or each isomorphic class of groups "
                        "as one unit (far fewer points; members then share one ratio)")
    p.add_argument("--stop-at-chance", action="store_true",
                   help="skip a unit's higher ratios once its agreement is at ~chance")
    p.add_argument("--no-cache", action="store_true", help="scan again even if cached")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    add_scan_options(p)
    p.add_argument("-o", "--output", metavar="SCAN", help="write the curves as JSON (scan.json)")


def parse_ratios(text: str) -> tuple[float, ...]:
    try:
        ratios = tuple(sorted({float(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise CliError(f"--ratios {text!r}: give comma-separated numbers, e.g. 0.1,0.5,0.9")\
            from None
    if not ratios or not all(0.0 < r < 1.0 for r in ratios):
        raise CliError(f"--ratios {text!r}: each ratio must be in (0, 1)")
    return ratios


def base_plan(args: argparse.Namespace, input_spec: str | None = None) -> Any:
    from engine.plan import PruningPlan

    plan = PruningPlan(importance=args.importance, round_to=args.round_to,
                       max_pruning_ratio=args.max_ratio, ignored_layers=list(args.ignore or []),
                       source=args.model, input_spec=input_spec)
    plan.validate()
    return plan


def calibration_loader(args: argparse.Namespace, opened: Any) -> Any:
    """The scan's batches: engine.data on --data (preprocessing from the model and the
    flags), a seeded (stratified) subset of --samples, in a fixed order."""
    from engine.data import make_loader, open_data, subset

    from .data_args import check_data_flags, model_facts, preprocessing_overrides

    check_data_flags(args)
    source = open_data(args.data, overrides=preprocessing_overrides(args),
                       model_facts=model_facts(opened), tokenizer=args.tokenizer,
                       seq_len=args.seq_len)
    source = subset(source, args.samples or DEFAULT_SAMPLES)
    return make_loader(source, args.batch_size, num_workers=args.workers)


def scan_from_args(args: argparse.Namespace, opened: Any, dg: Any, previewer: Any,
                   progress: Progress) -> Any:
    """Run (or fetch from the cache) the scan the flags describe."""
    from engine.plan.scan import ScanSettings, sensitivity_scan

    samples = args.samples or DEFAULT_SAMPLES
    if samples < 1 or args.batch_size < 1:
        raise CliError("--samples and --batch-size must be at least 1")
    settings = ScanSettings(ratios=parse_ratios(args.ratios), max_samples=samples,
                            units=getattr(args, "units", "groups"),
                            stop_at_chance=getattr(args, "stop_at_chance", False))
    base = base_plan(args, opened.input_spec)
    base.validate(opened.model)
    data = calibration_loader(args, opened)
    with progress.counter("scanning") as callback:
        return sensitivity_scan(opened.model, opened.example_inputs, data, base,
                                settings=settings, dependency_graph=dg, previewer=previewer,
                                cache_dir="" if args.no_cache else None, progress=callback)


def run(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from engine.plan.scan import ScanPreviewer

    if args.output:
        from .writers import check_writable

        check_writable(args.output, args.model, flag="-o")
    parse_ratios(args.ratios)
    base_plan(args)
    opened = open_model(args, progress)
    dg = trace(opened, progress)
    previewer = ScanPreviewer(opened.model, opened.example_inputs, dg)
    scan = scan_from_args(args, opened, dg, previewer, progress)
    if args.output:
        scan.save(args.output)
    return report_of(args, scan)


def report_of(args: argparse.Namespace, scan: Any) -> dict[str, Any]:
    return {
        "command": "scan",
        "source": args.model,
        "data": args.data,
        "output": args.output,
        "key": scan.key,
        "samples": scan.samples,
        "seconds": scan.seconds,
        "points": scan.points_evaluated,
        "units": scan.units,
        "skipped_points": scan.skipped_points,
        "accuracy_before": scan.accuracy_before,
        "macs_before": scan.macs_before,
        "params_before": scan.params_before,
        "curves": [
            {"name": c.name, "kind": c.kind, "channels": c.channels, "layers": c.layers,
             "points": [{"ratio": p.ratio, "channels_after": p.channels_after,
                         "macs_ratio": p.macs / scan.macs_before, "kl": p.kl,
                         "agreement": p.agreement, "accuracy": p.accuracy}
                        for p in c.points]}
            for c in scan.curves
        ],
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{report['source']}: {len(report['curves'])} units scanned on "
             f"{report['samples']} samples ({report['points']} points, "
             f"{report['seconds']:.1f} s)"]
    if report["accuracy_before"] is not None:
        lines.append(f"accuracy before pruning: {report['accuracy_before']:.4f}")
    lines.append("agreement with the original when pruned alone at each ratio:")
    for c in report["curves"]:
        cells = "  ".join(f"{p['ratio']:g}:{p['agreement']:.3f}" for p in c["points"])
        lines.append(f"  {c['name'][:36]:<36} {c['channels']:>5} ch  {cells}")
    if report["output"]:
        lines.append(f"curves written to {report['output']}")
    return "\n".join(lines)
