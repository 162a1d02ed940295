"""Workers report every failure readably; plan files are read off the GUI thread and a
hostile one ends in an error dialog, never in an exception out of a slot."""

from __future__ import annotations

import os
import time

import pytest

from app.workers import JobFailure, JobRunner
from tests.app.helpers import open_and_wait

pytestmark = pytest.mark.gui


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str is broken")


class BrokenStrAndRepr(BrokenStr):
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken too")


def _details(window) -> str:
    dialog = window.last_dialog
    return dialog.detailedText() if dialog is not None and hasattr(dialog, "detailedText") else ""


def _fail_with(qtbot, exc: BaseException) -> JobFailure:
    runner = JobRunner()

    def job(progress, cancelled):
        raise exc

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.submit(job)
    runner.wait(5000)
    return blocker.args[0]


def test_a_broken_str_falls_back_to_repr_then_to_the_type_name(qtbot):
    failure = _fail_with(qtbot, BrokenStr("x"))
    assert failure.kind == "BrokenStr" and failure.message == "BrokenStr('x')"
    failure = _fail_with(qtbot, BrokenStrAndRepr("x"))
    assert failure.message == "BrokenStrAndRepr"
    assert "BrokenStrAndRepr" in failure.details


@pytest.mark.parametrize(
    ("exc", "needle"),
    [(SystemExit(3), "tried to exit the program (SystemExit 3)"),
     (KeyboardInterrupt(), "interrupted (KeyboardInterrupt)")],
)  # fmt: skip
def test_system_exit_and_keyboard_interrupt_are_explained(qtbot, exc, needle):
    failure = _fail_with(qtbot, exc)
    assert needle in failure.message


def test_a_loader_with_a_broken_str_still_ends_the_opening_state(qtbot, window, fake_loader):
    def broken(*args, **kwargs):
        raise BrokenStr()

    window.loader = broken
    window.open_source("net.pt")
    qtbot.waitUntil(lambda: "Could not open" in window.status_label.text(), timeout=10000)
    assert "BrokenStr" in window.last_dialog.text()


@pytest.mark.parametrize(
    ("text", "needle"),
    [("[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
     ('{"round_to": ' + "9" * 5000 + "}", "5,000 digits")],
)  # fmt: skip
def test_hostile_plans_end_in_an_error_dialog(qtbot, window, tmp_path, text, needle):
    open_and_wait(qtbot, window, "net.pt")
    before = window.pruning.plan
    path = tmp_path / "plan.json"
    path.write_text(text)
    window.plan_files.read(str(path))
    qtbot.waitUntil(lambda: needle in _details(window), timeout=10000)
    assert window.pruning.plan == before
    assert not window.plan_files.open(str(path))  # the synchronous path says the same


def test_a_fifo_plan_never_blocks_the_window(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, "net.pt")
    fifo = tmp_path / "plan.json"
    os.mkfifo(fifo)
    start = time.monotonic()
    window.plan_files.read(str(fifo))
    assert time.monotonic() - start < 1.0  # returned at once: the worker reads
    qtbot.waitUntil(lambda: "named pipe" in _details(window), timeout=10000)


def test_a_good_plan_read_in_the_background_is_applied(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, "net.pt")
    g = window.document.summary.groups[0]
    window.workbench.plans.set_group_ratio(g.root, 0.25)
    path = tmp_path / "plan.json"
    window.plan_files.save(str(path))
    saved = window.pruning.plan
    window.act_undo.trigger()
    assert window.pruning.plan != saved
    window.plan_files.read(str(path))
    qtbot.waitUntil(lambda: window.pruning.plan == saved, timeout=10000)
    assert "Opened plan" in window.status_label.text()
