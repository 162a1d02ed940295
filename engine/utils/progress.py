"""The one progress/cancel contract of long engine work (workflow, pruning, export).

A progress callback takes (fraction in [0, 1], message); a cancel flag is polled
between units of work and a True answer raises `Cancelled`. Front ends adapt these
to their own widgets (Qt signals, tqdm bars); the engine never knows which.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


class Cancelled(Exception):
    """The user cancelled; not an error. Nothing the user opened was modified."""


def no_progress(fraction: float, message: str) -> None:
    """The default progress callback: report nothing."""


def never_cancel() -> bool:
    """The default cancel flag: never cancelled."""
    return False


def check_cancel(cancel: CancelFn) -> None:
    """Raise Cancelled when the flag is set (call between units of work)."""
    if cancel():
        raise Cancelled()


def sub_progress(progress: ProgressFn, start: float, end: float) -> ProgressFn:
    """A callback mapping a stage's own [0, 1] onto [start, end] of the whole job."""

    def report(fraction: float, message: str) -> None:
        progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)

    return report


StepFn = Callable[[int, int, str], None]  # (done, total, message): apply_plan's callbacks


def step_progress(progress: ProgressFn, start: float, end: float) -> StepFn:
    """A `(done, total, message)` callback (apply_plan's) onto [start, end] of the job."""
    scaled = sub_progress(progress, start, end)

    def report(done: int, total: int, message: str) -> None:
        scaled(done / max(total, 1), message or f"step {done}/{total}")

    return report
