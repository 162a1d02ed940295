"""``arborist inspect|prune``: the headless command line (never imports Qt).

Exit codes: 0 success, 1 bad input (model file, input shape, plan, output
path, full disk, not enough memory; one line on stderr), 2 bad command-line
syntax, 3 unexpected failure (one line; ``--debug`` prints the traceback and
whatever torch warned or logged meanwhile, which is otherwise kept quiet).
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from .commands import command
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
    from engine.io.noise import captured_noise

    noise = None
    try:
        with captured_noise() as noise:
            report, text = _dispatch(args, progress, freeze_gc)
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except Exception as exc:  # one line for users; the traceback only on request
        if args.debug:
            _print_debug(noise)
            traceback.print_exc(file=sys.stderr)
        message = user_message(exc)
        if message is not None:
            _fail(message)
            return EXIT_ERROR
        _fail(unexpected_message(exc))
        return EXIT_INTERNAL
    if args.debug:
        _print_debug(noise)
    from .recovery_args import is_main_rank

    if not is_main_rank():  # the other processes of a torchrun launch print nothing
        return EXIT_ERROR if report.get("error") else EXIT_OK
    if args.json:
        sys.stdout.write(json_text(report) + "\n")
    else:
        sys.stdout.write(text + "\n")
    sys.stdout.flush()
    if report.get("error"):  # e.g. an export that failed its validation: reported, not ok
        _fail(report["error"])
        return EXIT_ERROR
    return EXIT_OK


def _dispatch(args: Any, progress: Progress, freeze_gc: bool) -> tuple[dict[str, Any], str]:
    if freeze_gc:
        import engine  # noqa: F401  (torch and the engine: the bulk of what gets frozen)
        from app.runtime import freeze_long_lived_objects

        freeze_long_lived_objects()
    module = command(args.command).load()
    report = module.run(args, progress)
    return report, module.format_report(report)


def _print_debug(noise: Any) -> None:
    if noise is not None and noise.lines:
        sys.stderr.write("arborist: torch said meanwhile:\n" + noise.text() + "\n")


def json_text(report: Any) -> str:
    """Strict JSON (no bare NaN/Infinity: those become null)."""
    return json.dumps(_finite(report), default=_jsonable, allow_nan=False)


def _finite(obj: Any) -> Any:
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _fail(message: str) -> None:
    sys.stderr.write(f"arborist: error: {message}\n")
    sys.stderr.flush()


def _jsonable(obj: Any) -> Any:
    """Fallback for json.dumps: dataclasses and numbers from numpy/torch."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _finite(dataclasses.asdict(obj))
    if hasattr(obj, "item"):
        return _finite(obj.item())
    if hasattr(obj, "tolist"):
        return _finite(obj.tolist())
    return str(obj)
