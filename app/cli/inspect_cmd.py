"""``arborist inspect``: layers, coupled groups, locked layers, MACs and params as data."""

from __future__ import annotations

import argparse
from typing import Any

from .parser import add_inspect_arguments as add_arguments
from .progress import Progress
from .session import is_flat_pt2, open_model, trace

__all__ = ["add_arguments", "format_inspect", "format_report", "run", "run_inspect"]


def run_inspect(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Everything ``inspect`` reports, as a JSON-ready dict."""
    from engine.graph.summary import summarize
    from engine.utils import count_ops_and_params

    opened = open_model(args, progress)
    dg = trace(opened, progress)
    with progress.stage("counting MACs"):
        macs, params, layer_macs, _ = count_ops_and_params(
            opened.model, opened.example_inputs, layer_wise=True
        )
    summary = summarize(dg)
    macs_by_path = {name: layer_macs.get(m, 0) for name, m in opened.model.named_modules()}
    layers = [
        {
            "name": n.name,
            "type": n.kind,
            "in_channels": n.in_channels,
            "out_channels": n.out_channels,
            "params": n.params,
            "macs": int(macs_by_path.get(n.module_path, 0)),
        }
        for n in summary.nodes
        if n.is_layer
    ]
    groups = [
        {
            "id": g.id,
            "root": g.root,
            "channels": g.channels,
            "members": [
                {"layer": m.node, "handler": m.handler, "channels": m.channels} for m in g.members
            ],
        }
        for g in summary.groups
    ]
    locked = locked_layers(dg)
    return {
        "command": "inspect",
        "source": args.model,
        "description": opened.loaded.description,
        "input_spec": opened.input_spec,
        "macs": int(macs),
        "params": int(params),
        "layers": layers,
        "groups": groups,
        "locked_layers": locked,
        "output_layers": [x["name"] for x in locked if x["reason"] == "model output"],
        "lock_reasons": sorted(set(getattr(dg, "lock_reasons", []))),
        "hint": PT2_HINT if is_flat_pt2(opened.loaded) else "",
    }


PT2_HINT = " (a .pt2 program is a flat graph of ops without layers; inspect the original model)"


def locked_layers(dg: Any) -> list[dict[str, str]]:
    """Layers whose output channels the engine will never remove, and why.

    The model's output layer is among them because the graph is built with
    ``lock_outputs=True``: users need not ``--ignore`` their classifier.
    """
    from torch import nn

    found = []
    for node in dg.nodes:
        module = node.module
        if not isinstance(module, nn.Module) or not dg.get_out_channels(module):
            continue
        pruner = dg.get_pruner_of_module(module)
        try:
            group = dg.get_pruning_group(module, pruner.prune_out_channels, [0])
        except (ValueError, IndexError, AttributeError):
            continue  # no prunable out-channels in the traced graph
        if group.locked:
            reason = "model output" if _feeds_output(node) else "locked by the graph"
            found.append({"name": node.name, "reason": reason})
    return found


def _feeds_output(node: Any) -> bool:
    """True if a model output is reached from ``node`` without passing another layer."""
    from torch import nn

    seen, todo = set(), list(node.outputs)
    if not todo:
        return True
    while todo:
        nxt = todo.pop()
        if id(nxt) in seen:
            continue
        seen.add(id(nxt))
        if isinstance(nxt.module, nn.Module):
            continue
        if not nxt.outputs:
            return True
        todo.extend(nxt.outputs)
    return False


def format_inspect(report: dict[str, Any]) -> str:
    """Human-readable report for a terminal."""
    lines = [
        report["description"]
        if report["description"].startswith(report["source"])
        else f"{report['source']}: {report['description']}",
        f"inputs   {report['input_spec']}",
        f"MACs     {human(report['macs'])} ({report['macs']:,})",
        f"params   {human(report['params'])} ({report['params']:,})",
        "",
        f"{len(report['groups'])} prunable groups (coupled layers pruned together):",
    ]
    for g in report["groups"]:
        names = [m["layer"] for m in g["members"]]
        shown = ", ".join(dict.fromkeys(names))
        lines.append(f"  #{g['id']:<3} {g['root']:<32} {g['channels']:>6} ch  {_clip(shown)}")
    lines += ["", f"{len(report['layers'])} layers:"]
    lines.append(f"  {'name':<36} {'type':<18} {'in':>6} {'out':>6} {'params':>11} {'MACs':>9}")
    for layer in report["layers"]:
        lines.append(
            f"  {_clip(layer['name'], 36):<36} {layer['type'][:18]:<18} "
            f"{_dash(layer['in_channels']):>6} {_dash(layer['out_channels']):>6} "
            f"{layer['params']:>11,} {human(layer['macs']):>9}"
        )
    if not report["groups"]:
        lines += ["", "note: nothing here can be pruned" + report.get("hint", "")]
    if report["output_layers"]:
        lines += [
            "",
            f"output layer(s) kept intact by the engine: {', '.join(report['output_layers'])} "
            "(no need to --ignore them)",
        ]
    return "\n".join(lines)


def human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def _dash(v: Any) -> str:
    return "-" if v is None else str(v)


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


run = run_inspect
format_report = format_inspect
