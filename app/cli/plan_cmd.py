"""``arborist plan``: per-group ratios for a target, from a sensitivity scan.

``--scan scan.json`` reuses curves from ``arborist scan``; ``--data PATH`` scans first
(cached). The written plan is an ordinary PruningPlan: ``arborist prune --plan``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .errors import CliError
from .parser import add_model_arguments
from .progress import Progress
from .scan_cmd import add_scan_options, scan_from_args
from .session import open_model, trace

__all__ = ["add_arguments", "format_report", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--scan", metavar="SCAN", help="curves from `arborist scan -o` (else --data)")
    add_scan_options(p, required_data=False)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--keep-macs", type=float, metavar="F", help="keep at most F of the MACs")
    target.add_argument("--keep-params", type=float, metavar="F",
                        help="keep at most F of the parameters")
    target.add_argument("--latency-ms", type=float, metavar="T",
                        help="latency budget in ms on --device (measured lookup table)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "ort"),
                   help="device the latency is measured and predicted on (default cpu)")
    p.add_argument("--max-unit-ratio", type=float, default=0.6, metavar="R",
                   help="never plan more than R for one group (default 0.6: deeper one-shot "
                   "cuts rarely recover)")
    p.add_argument("--allow-drop-blocks", action="store_true",
                   help="also consider removing whole residual blocks (depth pruning), each "
                   "priced by the fidelity lost with it removed alone on --data")
    p.add_argument("--iterative", action="store_true",
                   help="split high ratios into several prune -> recover steps (iterative_steps)")
    p.add_argument("-o", "--output", metavar="PLAN", required=True, help="plan JSON to write")


def _target(args: argparse.Namespace) -> Any:
    from engine.plan.planner import Target

    if args.keep_macs is not None:
        return Target("macs", args.keep_macs)
    if args.keep_params is not None:
        return Target("params", args.keep_params)
    return Target("latency", args.latency_ms)


def run(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from engine.latency import (
        cached_table,
        check_device,
        plan_latency_budget,
        predict_plan,
        recalibrate,
        suggested_round_to,
    )
    from engine.plan import PruningPlan
    from engine.plan.planner import plan_for_target
    from engine.plan.scan import ScanPreviewer, ScanResult

    from .writers import check_writable

    target = _target(args)
    if args.scan is None and args.data is None:
        raise CliError("give the curves with --scan scan.json, or calibration data with --data")
    try:
        device = check_device(args.device)
    except ValueError as e:
        raise CliError(str(e)) from None
    check_writable(args.output, args.model, inputs=(args.scan,) if args.scan else (), flag="-o")
    scan = ScanResult.load(args.scan) if args.scan else None
    opened = open_model(args, progress)
    dg = trace(opened, progress)
    previewer = ScanPreviewer(opened.model, opened.example_inputs, dg)
    if scan is None:
        scan = scan_from_args(args, opened, dg, previewer, progress)
    base = PruningPlan.from_dict(scan.base_plan) if scan.base_plan else PruningPlan()
    base = base.replace(source=args.model, input_spec=opened.input_spec)
    base.validate(opened.model)
    costs = _block_costs(args, opened, progress) if args.allow_drop_blocks else None
    if abs(scan.macs_before - previewer.macs_before) > 0.5:
        raise CliError(f"the scan {args.scan} was made for another model or input shape "
                       f"({scan.macs_before:,} MACs, this one has {previewer.macs_before:,})")
    with progress.stage(f"latency table on {device} (measured once, then cached)"):
        table = cached_table(opened.model, opened.example_inputs, device=device,
                             input_spec=opened.input_spec)
    if target.kind == "latency":  # a cached table's scale is from another time: re-time now
        with progress.stage("timing the whole model now"):
            table = recalibrate(table, opened.model, opened.example_inputs)

    def latency(plan: Any) -> float:
        return predict_plan(table, previewer, plan)

    loop = None
    with progress.counter("planning") as callback:
        if target.kind == "latency":  # closed loop: plan, prune a copy, time it, re-aim
            loop = plan_latency_budget(scan, previewer, table, opened.model,
                                       opened.example_inputs, target.value, base=base,
                                       max_unit_ratio=args.max_unit_ratio,
                                       iterative=args.iterative, progress=callback,
                                       block_costs=costs)
            result = loop.result
        else:
            result = plan_for_target(scan, previewer, target, base=base, latency=latency,
                                     max_unit_ratio=args.max_unit_ratio,
                                     iterative=args.iterative, progress=callback,
                                     block_costs=costs)
    result.plan.save(args.output)
    report: dict[str, Any] = {
        "command": "plan",
        "source": args.model,
        "scan": args.scan,
        "scan_key": scan.key,
        "output": args.output,
        "target": {"kind": target.kind, "value": target.value},
        "device": device,
        "suggested_round_to": suggested_round_to(device),
        "plan": result.plan.to_dict(),
        **result.to_dict(),
    }
    report["latency_before_ms"] = table.full_model_ms
    if costs is not None:
        report["block_costs"] = {n: {"kl": c.kl, "agreement": c.agreement}
                                 for n, c in costs.items()}
    if loop is not None:
        report["latency_loop"] = loop.to_dict()
    return report


def _block_costs(args: argparse.Namespace, opened: Any, progress: Progress) -> dict[str, Any]:
    """Each removable block's fidelity cost (removed alone) on the scan's data."""
    from engine.depth import find_depth_groups
    from engine.plan.depth_cost import block_costs

    from .scan_cmd import DEFAULT_SAMPLES, calibration_loader

    if args.data is None:
        raise CliError("--allow-drop-blocks measures each block's cost on data: give --data")
    if not find_depth_groups(opened.model):
        return {}
    with progress.counter("measuring each block removed alone") as callback:
        return block_costs(opened.model, calibration_loader(args, opened),
                           max_samples=args.samples or DEFAULT_SAMPLES, progress=callback)


def format_report(report: dict[str, Any]) -> str:
    t = report["target"]
    goal = f"{t['value']:g} ms" if t["kind"] == "latency" else f"keep {t['value']:g} of {t['kind']}"
    pred = report["predicted"]
    lines = [
        f"{report['source']}: plan for {goal} written to {report['output']}",
        f"MACs    {report['macs_ratio']:.4f} of the original ({report['macs_after']:,})",
        f"params  {report['params_ratio']:.4f} of the original ({report['params_after']:,})",
        f"predicted agreement with the original {pred['agreement']:.3f}, KL {pred['kl']:.3f}"
        + (f", accuracy {pred['accuracy']:.3f}" if pred["accuracy"] is not None else ""),
    ]
    if report.get("predicted_latency_ms") is not None:
        lines.append(f"predicted latency {report['predicted_latency_ms']:.2f} ms on "
                     f"{report['device']} (unpruned {report['latency_before_ms']:.2f} ms)")
    if report.get("measured_latency_ms") is not None:
        lines.append(f"measured latency of the pruned copy {report['measured_latency_ms']:.2f} ms "
                     f"({len(report['latency_loop']['loop'])} plan -> measure rounds)")
    for name, ratio in report["plan"]["group_ratios"].items():
        lines.append(f"  {name:<40} {ratio:g}")
    for name in report["plan"].get("drop_blocks", []):
        lines.append(f"  {name:<40} removed (whole block)")
    lines.append(f"suggested round_to on {report['device']}: {report['suggested_round_to']}; "
                 f"prune -> recover steps for these ratios: {report['suggested_steps']}")
    return "\n".join(lines)
