"""Turning failures into the CLI's one-line messages and exit codes.

Users of a command line want one actionable sentence, not a traceback; the
engine's own errors are already written that way, so we mostly pass them on.
Anything unexpected still gets one line plus a hint that ``--debug`` shows more.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1  # bad input: model file, input shape, plan, output path, data
EXIT_USAGE = 2  # bad command-line syntax (argparse's convention)
EXIT_INTERNAL = 3  # a bug or an unforeseen failure; --debug prints the traceback


class CliError(Exception):
    """A user-facing failure whose message is shown as is."""


def _known_error_types() -> tuple[type[BaseException], ...]:
    """Engine error classes whose messages are meant for users (lazily: keeps startup fast)."""
    from engine.data import DataError
    from engine.io import ExportError, InputSpecError, ModelLoadError

    types: list[type[BaseException]] = [
        CliError, ModelLoadError, InputSpecError, ExportError, DataError
    ]
    try:
        from engine.plan import PlanError

        types.append(PlanError)
    except ImportError:
        pass
    return tuple(types)


def user_message(exc: BaseException) -> str | None:
    """The one-line message for a known, user-caused error; None for anything else.

    Besides the engine's own errors: MemoryError (an input too large for this machine) and
    OSError (full disk, read-only folder, name too long...), named by their path.
    """
    if isinstance(exc, MemoryError):
        return "not enough memory for this model or input; try a smaller --input-shape"
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else ""
        where = f"{str(where)[:120]}{'...' if len(str(where)) > 120 else ''}: " if where else ""
        return one_line(f"{where}{exc.strerror or exc}")
    if not isinstance(exc, _known_error_types()):
        return None
    problems = getattr(exc, "problems", None)  # PlanError lists every problem it found
    if problems:
        text = "; ".join(str(p) for p in problems)
    else:
        text = str(exc)
    return cli_wording(one_line(text))


def cli_wording(text: str) -> str:
    """Name the CLI flags where engine messages name keyword arguments."""
    return (
        text.replace("pass trust=True (--trust)", "pass --trust")
        .replace("pass arch= ", "pass --arch ")
        .replace("pass code= (--code PATH)", "pass --code PATH")
        .replace("pass arch=,", "pass --arch,")
        .replace("pass arch=", "pass --arch ")
    )


def one_line(text: str, limit: int = 400) -> str:
    """Collapse whitespace/newlines so the message is exactly one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def unexpected_message(exc: BaseException) -> str:
    first = one_line(str(exc), 200)
    what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return f"unexpected error: {what} (run again with --debug to see the traceback)"
