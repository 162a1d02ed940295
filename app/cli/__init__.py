"""``arborist inspect|prune``: the headless command line (never imports Qt).

Exit codes: 0 success, 1 bad input (model file, input shape, plan, output
path; one line on stderr), 2 bad command-line syntax, 3 unexpected failure
(one line; ``--debug`` prints the traceback).
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from .errors import EXIT_ERROR, EXIT_INTERNAL, EXIT_OK, unexpected_message, user_message
from .parser import build_parser
from .progress import Progress

__all__ = ["main"]


def main(argv: list[str] | None = None, *, freeze_gc: bool = False) -> int:
    """Run one command; returns the process exit code (never raises for bad input).

    `freeze_gc` (the `arborist` entry point sets it; in-process callers should not): once
    torch and the engine are imported, freeze everything alive (app.runtime) so the
    collector's full passes skip them.
    """
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    progress = Progress.for_terminal(json_mode=args.json)
    try:
        report, text = _dispatch(args, progress, freeze_gc)
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except Exception as exc:  # one line for users; the traceback only on request
        message = user_message(exc)
        if message is not None:
            _fail(message)
            return EXIT_ERROR
        if args.debug:
            traceback.print_exc(file=sys.stderr)
        _fail(unexpected_message(exc))
        return EXIT_INTERNAL
    if args.json:
        sys.stdout.write(json.dumps(report, default=_jsonable) + "\n")
    else:
        sys.stdout.write(text + "\n")
    sys.stdout.flush()
    if report.get("error"):  # e.g. an export that failed its validation: reported, not ok
        _fail(report["error"])
        return EXIT_ERROR
    return EXIT_OK


def _dispatch(args: Any, progress: Progress, freeze_gc: bool) -> tuple[dict[str, Any], str]:
    _quiet_torch()
    if freeze_gc:
        import engine  # noqa: F401  (torch and the engine: the bulk of what gets frozen)
        from app.runtime import freeze_long_lived_objects

        freeze_long_lived_objects()
    if args.command == "inspect":
        from .inspect_cmd import format_inspect, run_inspect

        report = run_inspect(args, progress)
        return report, format_inspect(report)
    from .prune_cmd import format_prune, run_prune

    report = run_prune(args, progress)
    return report, format_prune(report)


def _quiet_torch() -> None:
    """Keep stderr to our own messages: library warnings are not actionable here."""
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _fail(message: str) -> None:
    sys.stderr.write(f"arborist: error: {message}\n")
    sys.stderr.flush()


def _jsonable(obj: Any) -> Any:
    """Fallback for json.dumps: dataclasses and numbers from numpy/torch."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
