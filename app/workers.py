"""Background jobs with progress and cooperative cancel, on a QThreadPool.

A job is a plain function `fn(progress, cancelled) -> result`. The runner keeps
one current job: starting a new one or cancelling makes the old one stale, and a
stale job's late result is dropped, so the GUI never waits on a worker and
never shows an outdated model. Only plain Python data travels in the signals.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

JobFn = Callable[[Callable[[float, str], None], Callable[[], bool]], Any]


@dataclass(frozen=True)
class JobFailure:
    kind: str  # exception class name
    message: str
    details: str  # formatted traceback, for the "Show details" part of a dialog
    exception: BaseException  # kept so the GUI can react to TrustRequired etc.


def failure_of(exc: BaseException) -> JobFailure:
    """A JobFailure for ``exc`` that cannot itself fail: a broken ``__str__`` or ``__repr__``
    still gives a message (str, then repr, then the type name), and SystemExit /
    KeyboardInterrupt from a job are explained instead of ending the program."""
    kind = _type_name(exc)
    if isinstance(exc, SystemExit):
        code = _safe_text(exc.code)
        message = f"the job tried to exit the program (SystemExit {code}); it was stopped"
    elif isinstance(exc, KeyboardInterrupt):
        message = "the job was interrupted (KeyboardInterrupt)"
    else:
        message = _exception_text(exc) or kind
    try:
        details = traceback.format_exc()
    except BaseException:  # noqa: BLE001 - formatting must never lose the failure
        details = f"{kind}: {message}"
    return JobFailure(kind, message, details, exc)


def _type_name(exc: BaseException) -> str:
    try:
        return str(type(exc).__name__)
    except BaseException:  # noqa: BLE001
        return "Exception"


def _exception_text(exc: BaseException) -> str:
    for render in (str, repr):
        try:
            text = render(exc)
        except BaseException:  # noqa: BLE001 - a broken __str__/__repr__ in someone's class
            continue
        if isinstance(text, str) and text:
            return text
    return ""


def _safe_text(value: object) -> str:
    try:
        return str(value)
    except BaseException:  # noqa: BLE001
        return "?"


class _Signals(QObject):
    progress = Signal(int, float, str)
    finished = Signal(int, object)
    failed = Signal(int, object)
    cancelled = Signal(int)


class _Job(QRunnable):
    def __init__(self, job_id: int, fn: JobFn, signals: _Signals, cancel_types: tuple) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the runner owns the Python object until it reports
        self.job_id = job_id
        self.fn = fn
        self.signals = signals
        self.cancel_event = threading.Event()
        self.cancel_types = cancel_types

    def run(self) -> None:
        jid, sig = self.job_id, self.signals
        try:
            result = self.fn(lambda f, m: sig.progress.emit(jid, f, m), self.cancel_event.is_set)
        except self.cancel_types:
            sig.cancelled.emit(jid)
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the GUI
            sig.failed.emit(jid, failure_of(exc))
        else:
            if self.cancel_event.is_set():
                sig.cancelled.emit(jid)
            else:
                sig.finished.emit(jid, result)


class JobRunner(QObject):
    """Runs one current job at a time and forwards only that job's reports."""

    started = Signal(str)
    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(object)  # JobFailure
    cancelled = Signal()

    def __init__(self, parent: QObject | None = None, cancel_types: tuple = ()) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self._signals = _Signals(self)
        self._signals.progress.connect(self._on_progress)
        self._signals.finished.connect(self._on_finished)
        self._signals.failed.connect(self._on_failed)
        self._signals.cancelled.connect(self._on_cancelled)
        self._cancel_types = cancel_types
        self._jobs: dict[int, _Job] = {}
        self._next_id = 0
        self.current: int | None = None

    @property
    def busy(self) -> bool:
        return self.current is not None

    def submit(self, fn: JobFn, label: str = "") -> int:
        self.cancel(quiet=True)
        self._next_id += 1
        job = _Job(self._next_id, fn, self._signals, self._cancel_types)
        self._jobs[job.job_id] = job
        self.current = job.job_id
        self.started.emit(label)
        self.pool.start(job)
        return job.job_id

    def cancel(self, quiet: bool = False) -> None:
        """Ask the current job to stop and forget it at once; its result will be dropped."""
        if self.current is None:
            return
        job = self._jobs.get(self.current)
        if job is not None:
            job.cancel_event.set()
        self.current = None
        if not quiet:
            self.cancelled.emit()

    def wait(self, msecs: int = -1) -> bool:
        return self.pool.waitForDone(msecs)

    def _done(self, jid: int) -> bool:
        self._jobs.pop(jid, None)
        if jid != self.current:
            return False
        self.current = None
        return True

    def _on_progress(self, jid: int, fraction: float, message: str) -> None:
        if jid == self.current:
            self.progress.emit(fraction, message)

    def _on_finished(self, jid: int, result: object) -> None:
        if self._done(jid):
            self.finished.emit(result)

    def _on_failed(self, jid: int, failure: object) -> None:
        if self._done(jid):
            self.failed.emit(failure)

    def _on_cancelled(self, jid: int) -> None:
        if self._done(jid):
            self.cancelled.emit()
