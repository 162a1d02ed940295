"""The ``arborist inspect|prune|evaluate`` argument parser.

Plan-related flags default to None so the prune command can tell "given on the
command line" (overrides a ``--plan`` file) from "not given" (keep the plan's value).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from .data_args import add_data_arguments
from .errors import EXIT_USAGE

IMPORTANCE_HELP = (
    "magnitude (default), taylor, hessian, activation (these three read --data), fpgm, "
    "bn_scale, lamp, random"
)
OUTPUT_FORMATS_HELP = (
    "the suffix picks the format: .onnx (validated with ONNX Runtime), .pt2 (torch.export), "
    ".safe.pt (weights + pruning history, loads without --trust; zoo/--arch models only), "
    ".pt/.pth (whole pickled module; reopening it needs --trust)"
)


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as a single stderr line (scripts grep it; humans read it)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        metavar="MODEL",
        help="model file (.pt/.pth, .safetensors, .pt2, .onnx) or zoo spec (torchvision:resnet18, "
        "timm:NAME, arborist:demo)",
    )
    p.add_argument(
        "--input-shape",
        metavar="S",
        help="example input(s), e.g. 1,3,224,224 or 'ids=1,16:int64;mask=1,16:int64' "
        "(default: the model's own or a guess)",
    )
    p.add_argument(
        "--trust",
        action="store_true",
        help="allow loading pickled Python objects: this RUNS CODE stored in the file, "
        "use it only for files from a trusted source",
    )
    p.add_argument(
        "--arch",
        metavar="SPEC",
        help="architecture of a weights-only state dict (.pt, .safetensors), "
        "e.g. torchvision:resnet18",
    )
    p.add_argument(
        "--code",
        metavar="PATH",
        help="where the classes of a pickled model are defined: a .py file or a folder to "
        "import from (imported only with --trust: importing it RUNS it)",
    )
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")


def build_parser() -> argparse.ArgumentParser:
    """One subparser per entry of ``commands.COMMANDS``, each filled by its own module."""
    from .commands import COMMANDS

    parser = OneLineParser(
        prog="arborist",
        description="Structural pruning from the command line (run without a command for the GUI).",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description or cmd.help)
        cmd.load().add_arguments(p)
    return parser


def add_inspect_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)


def add_prune_arguments(prune: argparse.ArgumentParser) -> None:
    add_model_arguments(prune)
    prune.add_argument("-o", "--output", metavar="OUT", help=OUTPUT_FORMATS_HELP)
    prune.add_argument("--plan", metavar="P", help="pruning plan JSON (from --save-plan or GUI)")
    amount = prune.add_mutually_exclusive_group()
    amount.add_argument(
        "--ratio",
        type=float,
        metavar="R",
        help="fraction of each group's channels to remove (default 0.5)",
    )
    amount.add_argument(
        "--keep-macs",
        type=float,
        metavar="F",
        help="instead of --ratio: the ratio that keeps at most F of the MACs (exact search)",
    )
    amount.add_argument(
        "--keep-params",
        type=float,
        metavar="F",
        help="instead of --ratio: the ratio that keeps at most F of the parameters",
    )
    prune.add_argument(
        "--global",
        dest="global_pruning",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rank channels across all groups instead of per group",
    )
    prune.add_argument(
        "--isomorphic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --global, rank only among groups of the same structure",
    )
    prune.add_argument("--importance", metavar="NAME", help=IMPORTANCE_HELP)
    prune.add_argument(
        "--round-to", type=int, metavar="N", help="keep channel counts multiples of N"
    )
    prune.add_argument(
        "--max-ratio", type=float, metavar="R", help="never remove more than R of any group"
    )
    prune.add_argument(
        "--ignore",
        nargs="+",
        action="extend",
        default=None,
        metavar="LAYER",
        help="module paths to leave unpruned (the output layer is already kept)",
    )
    prune.add_argument("--steps", type=int, metavar="K", help="prune in K iterative steps")
    prune.add_argument(
        "--drop-blocks",
        type=lambda text: [n.strip() for n in text.split(",") if n.strip()],
        metavar="B,B",
        help="also remove these whole residual blocks (see `arborist depth`)",
    )
    prune.add_argument("--save-plan", metavar="P", help="also write the plan used as JSON")
    prune.add_argument(
        "--dry-run",
        action="store_true",
        help="write nothing; report the exactly predicted result",
    )
    prune.add_argument(
        "--latency",
        action="store_true",
        help="also time the original and the pruned model on the example input, "
        "interleaved (keeps a copy of the original; about 2 s more)",
    )
    add_data_arguments(prune)
    from .recovery_args import add_recovery_arguments

    add_recovery_arguments(prune)
