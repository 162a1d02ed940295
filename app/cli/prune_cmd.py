"""``arborist prune``: flags/plan file -> PruningPlan -> exact preview or real prune + export.

Flags given explicitly override the corresponding fields of a ``--plan`` file
(``--ratio`` -> pruning_ratio, ``--global/--no-global``, ``--isomorphic``,
``--importance`` (which also drops the old criterion's options), ``--round-to``,
``--max-ratio``, ``--steps`` -> iterative_steps); ``--ignore`` adds layers to the
plan's ignored_layers. A plan's ``input_spec`` is used unless ``--input-shape`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path
from typing import Any

from .data_args import calibration_of, measure, open_run_data
from .errors import CliError, one_line
from .parser import add_prune_arguments as add_arguments
from .progress import Progress
from .recovery_args import (
    capped_for_calibration,
    check_recovery_flags,
    format_recovery,
    is_main_rank,
    open_recovery_data,
    recovery_config,
    recovery_section,
    run_recovery,
    wants_recovery,
)
from .session import is_flat_pt2, open_model, trace
from .writers import check_format_possible, check_writable, output_format, write_model

MAX_LISTED = 12  # changed layers shown in the terminal summary

# CLI attribute -> PruningPlan field
FLAG_FIELDS: dict[str, str] = {
    "ratio": "pruning_ratio",
    "global_pruning": "global_pruning",
    "isomorphic": "isomorphic",
    "importance": "importance",
    "round_to": "round_to",
    "max_ratio": "max_pruning_ratio",
    "steps": "iterative_steps",
}


def plan_from_args(args: argparse.Namespace) -> Any:
    """The plan to run: ``--plan`` file (or defaults) with explicit flags applied on top."""
    from engine.plan import PruningPlan

    plan = PruningPlan.load(args.plan) if args.plan else PruningPlan()
    changes: dict[str, Any] = {}
    for attr, name in FLAG_FIELDS.items():
        value = getattr(args, attr)
        if value is not None:
            changes[name] = value
    if args.importance is not None and args.importance != plan.importance:
        changes["importance_options"] = {}  # options belonged to the plan's other criterion
    if args.ignore:
        changes["ignored_layers"] = list(dict.fromkeys([*plan.ignored_layers, *args.ignore]))
    if getattr(args, "drop_blocks", None):
        changes["drop_blocks"] = list(dict.fromkeys([*plan.drop_blocks, *args.drop_blocks]))
    if args.input_shape is None and plan.input_spec:
        args.input_shape = plan.input_spec
    if plan.source and plan.source != args.model:
        note = f"the plan was made for {plan.source}; applying it to {args.model}"
        warnings.warn(note, stacklevel=2)
    changes["source"] = args.model
    return plan.replace(**changes)


def run_prune(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Prune (or with --dry-run only predict) and return the JSON-ready report."""
    from engine.plan import Previewer, preview_plan, solve_ratio
    from engine.plan.criteria import DATA_CRITERIA

    fmt = _check_output(args)
    with warnings.catch_warnings(record=True) as early:
        warnings.simplefilter("always")
        plan = plan_from_args(args)
    _validate(plan)  # structural problems before the (slow) load
    with warnings.catch_warnings(record=True) as loading:
        warnings.simplefilter("always")
        opened = open_model(args, progress)
    early.extend(w for w in loading if type(w.message).__name__ == "Pt2ReadWarning")
    plan = plan.replace(input_spec=opened.input_spec)
    _validate(plan, opened.model)
    if fmt is not None:
        check_format_possible(fmt, opened.loaded.arch)
    model, inputs = opened.model, opened.example_inputs
    dg = trace(opened, progress)
    recovery = recovery_config(args)  # None unless a --recover-* budget is given
    if recovery is not None:  # recovery trains on all of --data; criteria read a capped subset
        run_data = open_recovery_data(args, opened, progress)
        calibration = calibration_of(capped_for_calibration(run_data))
    else:
        run_data = open_run_data(args, opened, progress)  # --data / --eval-data, else None
        calibration = calibration_of(run_data)
    macs0, params0 = opened.session.counts()
    from .inspect_cmd import locked_layers

    outputs = [x["name"] for x in locked_layers(dg) if x["reason"] == "model output"]
    report: dict[str, Any] = {
        "command": "prune",
        "source": args.model,
        "dry_run": bool(args.dry_run),
        "input_spec": opened.input_spec,
        "plan": plan.to_dict(),
        "before": {"macs": macs0, "params": params0},
        "output_layers": outputs,  # locked by the engine (lock_outputs=True): never pruned
    }
    if run_data is not None:
        report["data"] = run_data.describe()
        report["metrics"] = {"before": None, "pruned": None}
        if args.dry_run:  # a real run measures both models inside Session.prune
            report["metrics"]["before"] = measure(model, run_data, progress)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        previewer = None
        target = _solve_target(args)
        if target is not None:
            with progress.stage(f"searching the ratio that keeps {target[1]:g} of the {target[0]}"):
                previewer = Previewer(model, inputs, dependency_graph=dg,
                                      calibration=calibration)
                solved = solve_ratio(previewer, plan, target=target[0], keep=target[1])
            plan = plan.replace(pruning_ratio=solved.ratio)
            report["plan"] = plan.to_dict()
            report["solved"] = {
                "target": target[0],
                "keep": target[1],
                "ratio": solved.ratio,
                "achieved": solved.achieved,
            }
        if args.dry_run:
            with progress.stage("previewing (exact, nothing is written)"):
                if previewer is not None:
                    preview = previewer.preview(plan)
                else:
                    preview = preview_plan(model, inputs, plan, dependency_graph=dg,
                                           calibration=calibration)
            report["after"] = {"macs": int(preview.macs_after), "params": int(preview.params_after)}
            report["layers"] = _preview_changes(preview)
            attention = _predicted_attention(model, preview, dg)
            if attention is not None:
                report["attention"] = attention
            report["groups_pruned"] = sum(1 for g in preview.groups if g.n_removed)
        else:
            teacher = opened.model  # the Session prunes a copy: the opened model stays original
            reports: list[Any] = []
            iterative = recovery is not None and plan.iterative_steps > 1
            after_step = None
            if iterative:
                after_step = _recover_between_steps(teacher, run_data, recovery, args, progress,
                                                    plan.iterative_steps, report, reports)
                report["metrics"]["before"] = measure(teacher, run_data, progress)
            eval_data = None
            if run_data is not None and not iterative:
                eval_data = run_data.evaluation_loader()
            with progress.fraction("pruning") as callback:
                result = opened.session.prune(
                    plan, calibration=calibration, eval_data=eval_data,
                    latency=bool(args.latency), progress=callback, after_step=after_step,
                )
            pruned, done = result.session, result.report
            report["after"] = {"macs": done.macs_after, "params": done.params_after}
            report["layers"] = [c.widths_dict() for c in done.changed_layers]
            report["steps_done"] = done.steps_done
            if done.attention is not None:  # did q/k/v shrink, and why not where they did not
                report["attention"] = done.attention.to_dict()
            if done.metrics_after is not None:
                report["metrics"]["before"] = done.metrics_before.as_dict()
                report["metrics"]["pruned"] = done.metrics_after.as_dict()
            if done.latency is not None:
                report["latency"] = done.latency.to_dict()
            if recovery is not None:
                if not reports:
                    reports.append(run_recovery(pruned.model, teacher, run_data, recovery, args,
                                                progress))
                report["recovery"] = recovery_section(reports)
                if run_data.evaluation is not None:
                    report["metrics"]["recovered"] = measure(pruned.model, run_data, progress,
                                                             teacher)
    report["warnings"] = sorted(
        {_cli_note(one_line(str(w.message), 300)) for w in [*early, *caught]}
    )
    if calibration is not None and plan.importance not in DATA_CRITERIA:
        report["warnings"].append(
            f"importance {plan.importance!r} does not read data: --data only evaluates; "
            "choose taylor, hessian or activation for scores from your data")
    if not report["layers"]:
        report["warnings"].append(nothing_pruned_hint(is_flat_pt2(opened.loaded)))
    report["output"] = None if args.dry_run else args.output
    report["format"] = fmt
    report["validation"] = None
    report["saved_plan"] = None
    if args.dry_run:
        return report
    if not is_main_rank():  # torchrun / accelerate launch: process 0 alone writes
        report["output"] = None
        return report
    if args.save_plan:  # first: a plan that cannot be written must not cost the model
        _save_plan(plan, args.save_plan)
        report["saved_plan"] = args.save_plan
    with progress.stage(f"writing {args.output}"):
        report["validation"] = write_model(
            fmt,
            pruned.model,
            inputs,
            args.output,
            source=args.model,
            arch=pruned.arch,
            history=pruned.pruning_history,
            input_spec=opened.input_spec,
        )
    problem = report["validation"].get("problem")
    if problem:  # the report is still printed; main() exits non-zero with this line
        report["error"] = problem
    return report


# PruningPlan field -> the flag that sets it, to name both in error messages
FIELD_FLAGS: dict[str, str] = {
    "pruning_ratio": "--ratio",
    "global_pruning": "--global",
    "isomorphic": "--isomorphic",
    "importance": "--importance",
    "round_to": "--round-to",
    "max_pruning_ratio": "--max-ratio",
    "iterative_steps": "--steps",
    "ignored_layers": "--ignore",
    "input_spec": "--input-shape",
}


def _validate(plan: Any, model: Any = None) -> None:
    """plan.validate, with each problem also naming the CLI flag of its field."""
    from engine.plan import PlanError

    try:
        plan.validate(model)
    except PlanError as exc:
        raise PlanError([_with_flag(p) for p in exc.problems]) from None


def _with_flag(problem: str) -> str:
    for field, flag in FIELD_FLAGS.items():
        if problem.startswith((f"{field}:", f"{field}[")):
            head, sep, rest = problem.partition(":")
            return f"{head} ({flag}){sep}{rest}"
    return problem


def _cli_note(text: str) -> str:
    """Engine warnings suggest Python arguments; say what applies on the command line."""
    return text.replace(
        "pass calibration=(model) -> loss",
        "pass --data PATH (images, tensors or text) for scores from your data",
    )


def _solve_target(args: argparse.Namespace) -> tuple[str, float] | None:
    """("macs"|"params", fraction to keep) from --keep-macs/--keep-params, else None."""
    for target, value in (("macs", args.keep_macs), ("params", args.keep_params)):
        if value is not None:
            if not 0.0 < value <= 1.0:
                flag = f"--keep-{target}"
                raise CliError(f"{flag} {value:g}: give the fraction to keep, in (0, 1]")
            return target, value
    return None


def nothing_pruned_hint(flat_pt2: bool) -> str:
    hint = "nothing is pruned: no group of this model can lose channels with these settings"
    if flat_pt2:  # a program engine.io.pt2_lift could not turn back into layers
        hint += " (a .pt2 program is a flat graph of ops without layers; prune the original model)"
    return hint


def _recover_between_steps(teacher: Any, run_data: Any, config: Any,
                           args: argparse.Namespace, progress: Progress, steps: int,
                           report: dict[str, Any], reports: list[Any]) -> Any:
    """Session.prune's after_step: recover the copy after each of the plan's iterative steps."""

    def after_step(step: int, model: Any) -> None:
        cfg = config
        if config.checkpoint:
            cfg = dataclasses.replace(config, checkpoint=f"{config.checkpoint}.step{step}")
        if step == steps and run_data.evaluation is not None:
            report["metrics"]["pruned"] = measure(model, run_data, progress, teacher)
        reports.append(run_recovery(model, teacher, run_data, cfg, args, progress,
                                    label=f"recovering after step {step}/{steps}"))

    return after_step


def _check_output(args: argparse.Namespace) -> str | None:
    """Validate -o / --save-plan up front, so a typo never costs a full prune."""
    check_recovery_flags(args)
    if args.dry_run and wants_recovery(args):
        raise CliError("--dry-run only predicts the pruned model; recovery needs a real prune "
                       "(drop --dry-run)")
    if args.dry_run and args.latency:
        raise CliError("--latency times the pruned model, which --dry-run never builds")
    if args.dry_run:
        return output_format(args.output) if args.output else None
    if not args.output:
        raise CliError("give the output file with -o OUT (or use --dry-run to only preview)")
    fmt = output_format(args.output)
    inputs = (args.plan,) if args.plan else ()
    check_writable(args.output, args.model, inputs=inputs)
    if args.save_plan:
        check_writable(args.save_plan, args.model, inputs=inputs, flag="--save-plan")
        if Path(args.save_plan).absolute() == Path(args.output).absolute():
            raise CliError("--save-plan and -o name the same file; choose two paths")
    return fmt


def _save_plan(plan: Any, path: str) -> None:
    try:
        plan.save(path)
    except OSError as exc:
        shown = path if len(path) <= 120 else path[:117] + "..."
        reason = exc.strerror or exc
        raise CliError(f"cannot write the plan to {shown} (--save-plan): {reason}") from None


def _predicted_attention(model: Any, preview: Any, dg: Any) -> dict[str, Any] | None:
    """The real run's `attention` object, from the preview's widths and the graph's locks
    (the head planner's own refusals are only known once the prune runs)."""
    from engine.families.report import attention_widths, compare_attention

    before = attention_widths(model)
    if not before:
        return None
    planned = {lp.name: lp.out_after for lp in preview.layers}
    after = attention_widths(model, planned)
    return compare_attention(before, after, getattr(dg, "lock_reasons", ())).to_dict()


def _preview_changes(preview: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": lp.name,
            "in_before": lp.in_before,
            "in_after": lp.in_after,
            "out_before": lp.out_before,
            "out_after": lp.out_after,
        }
        for lp in preview.layers
        if (lp.in_before, lp.out_before) != (lp.in_after, lp.out_after)
    ]


def format_metrics_change(metrics: dict[str, Any] | None) -> list[str]:
    """'accuracy 99.44% -> 97.50%' lines on the evaluation data (before -> pruned)."""
    from .evaluate_cmd import METRIC_LABELS

    if not metrics or not metrics.get("before"):
        return []
    before, after = metrics["before"], metrics.get("pruned") or {}
    skipped = f", {before['skipped']} unreadable skipped" if before.get("skipped") else ""
    lines = [f"  on {before['samples']} evaluation samples{skipped}:"]
    def show(value: Any, percent: bool) -> str:
        if value is None:
            return "-"
        return f"{value:.2%}" if percent else f"{value:.4g}"

    for key, label, percent in METRIC_LABELS:
        if key not in before and key not in after:
            continue
        arrow = f" -> {show(after.get(key), percent)}" if after else ""
        lines.append(f"    {label:<36} {show(before.get(key), percent)}{arrow}")
    if len(lines) == 1:
        lines.append("    no metric applies: the data has no labels (agreement and KL with the "
                     "original are measured after pruning)")
    return lines


def format_attention(attention: dict[str, Any] | None) -> list[str]:
    """The attention summary line, and every lock reason the summary had no room for."""
    if not attention:
        return []
    from engine.families.report import SUMMARY_REASONS

    lines = [f"  {attention['summary']}"]
    if attention["pruned"] < attention["total"]:
        for reason in attention["reasons"][SUMMARY_REASONS:]:
            lines.append(f"    also locked: {reason}")
    return lines


def format_prune(report: dict[str, Any]) -> str:
    """Human-readable summary for a terminal."""
    from .inspect_cmd import human

    b, a = report["before"], report["after"]
    head = (
        f"dry run: {report['source']} would be pruned (nothing written)"
        if report["dry_run"]
        else f"pruned {report['source']} -> {report['output']} ({report['format']})"
    )
    lines = [head]
    for key, label in (("macs", "MACs"), ("params", "params")):
        kept = a[key] / b[key] if b[key] else 1.0
        lines.append(f"  {label:<7} {human(b[key]):>9} -> {human(a[key]):>9}  ({kept:.1%} kept)")
    n = len(report["layers"])
    lines.append(f"  {n} layers changed width" + (":" if n else ""))
    for layer in report["layers"][:MAX_LISTED]:
        lines.append(
            f"    {layer['name']:<36} in {layer['in_before']} -> {layer['in_after']}, "
            f"out {layer['out_before']} -> {layer['out_after']}"
        )
    if len(report["layers"]) > MAX_LISTED:
        lines.append(f"    ... and {len(report['layers']) - MAX_LISTED} more (--json lists all)")
    lines.extend(format_attention(report.get("attention")))
    lat = report.get("latency")
    if lat:
        lines.append(
            f"  latency ({lat['device']}) {lat['before_ms']:.3g} ms -> {lat['after_ms']:.3g} ms "
            f"({lat['before_ms'] / lat['after_ms']:.2f}x faster), median of {lat['rounds']} "
            "interleaved runs on the example input"
            if lat["after_ms"]
            else f"  latency not measured: {lat['error']}"
        )
    lines.extend(format_metrics_change(report.get("metrics")))
    lines.extend(format_recovery(report.get("recovery")))
    v = report.get("validation")
    if v:
        diff = v.get("max_abs_diff")
        verdict = "ok" if v.get("outputs_match") else "MISMATCH"
        how = "ONNX Runtime" if v.get("format") == "onnx" else "reloaded file"
        lines.append(
            f"  check: {how} vs PyTorch, max abs diff {diff:.3g} ({verdict})"
            if diff is not None
            else f"  check failed: {'; '.join(v.get('errors', []))}"
        )
    if report.get("output_layers"):
        names = ", ".join(report["output_layers"])
        lines.append(f"  output layer(s) {names}: kept by the engine (model output)")
    if report.get("saved_plan"):
        lines.append(f"  plan saved to {report['saved_plan']}")
    for w in report.get("warnings", []):
        lines.append(f"  note: {w}")
    return "\n".join(lines)


run = run_prune
format_report = format_prune
__all__ = ["add_arguments", "format_prune", "format_report", "plan_from_args", "run", "run_prune"]
