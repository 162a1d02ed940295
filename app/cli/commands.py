"""The table of ``arborist`` subcommands: adding one is one line here plus its module.

Each entry names a module of this package that defines ``add_arguments(parser)``,
``run(args, progress) -> dict`` (the JSON report) and ``format_report(report) -> str``
(the terminal text). This module imports nothing heavy: ``app.__main__`` reads it to
tell a subcommand from a model file before deciding between the CLI and the GUI.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Command:
    name: str
    module: str  # app.cli.<module>
    help: str
    description: str = ""

    def load(self) -> ModuleType:
        return importlib.import_module(f"app.cli.{self.module}")


COMMANDS: tuple[Command, ...] = (
    Command("inspect", "inspect_cmd", "show layers, coupled groups, MACs and parameters"),
    Command(
        "prune",
        "prune_cmd",
        "prune a model and write the result",
        "Prune MODEL and write it to OUT. Flags given explicitly override the fields of a "
        "--plan file; --ignore adds to the plan's ignored layers.",
    ),
    Command("evaluate", "evaluate_cmd", "measure a model on your data (accuracy, agreement, ...)"),
    Command("recover", "recover_cmd", "recover a pruned model's accuracy on your data",
            "Train PRUNED_FILE on --data (distilled from --teacher, the original model) and "
            "write it to OUT."),
    Command("scan", "scan_cmd", "measure how much each group can lose (sensitivity curves)"),
    Command("plan", "plan_cmd", "choose per-group ratios for a MACs, params or latency target"),
    Command("depth", "depth_cmd", "rank the removable residual blocks on your data (1 - cos)"),
)

COMMAND_NAMES: tuple[str, ...] = tuple(c.name for c in COMMANDS)


def command(name: str) -> Command:
    return next(c for c in COMMANDS if c.name == name)
