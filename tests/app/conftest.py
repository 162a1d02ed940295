"""Fixtures for GUI tests: offscreen Qt, a throwaway settings file, a fake engine loader."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from app.runtime import guard_none_refcount  # noqa: E402

guard_none_refcount()  # GUI tests make thousands of void Qt calls (see app.runtime)

from PySide6.QtCore import QSettings  # noqa: E402

from tests.app.helpers import TIMEOUT, FakeLoader, wait_preview  # noqa: E402


def discard_edits(*_args):
    from PySide6.QtWidgets import QMessageBox

    return QMessageBox.Discard


@pytest.fixture(autouse=True)
def gc_on_gui_thread(qapp):
    """Collect cyclic garbage only on the GUI thread, as the GUI's start does: a worker's
    collection destroyed a closed window's widgets off the GUI thread (one CI segfault).
    After each test the collector's check runs once, so tests that never spin the event
    loop leave no backlog."""
    from app import runtime

    runtime.collect_garbage_on_gui_thread()
    yield
    runtime.gui_collector_check()


@pytest.fixture
def settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "arborist.ini"), QSettings.IniFormat)


@pytest.fixture
def fake_loader() -> FakeLoader:
    return FakeLoader()


@pytest.fixture
def window(qtbot, settings, fake_loader):
    from app.main_window import MainWindow

    win = MainWindow(settings, auto_open=False, loader=fake_loader)
    win.ask = discard_edits  # a modal question would block the test run; tests that
    qtbot.addWidget(win)  # check the prompt set their own answer
    win.resize(1200, 800)
    win.show()
    yield win
    fake_loader.gate.set()
    win.loads.cancel(quiet=True)
    win.loads.wait(5000)
    win.layouts.wait(5000)


@pytest.fixture
def demo_window(qtbot, settings):
    import torch

    from app.main_window import MainWindow

    torch.set_num_threads(1)
    win = MainWindow(settings, auto_open=False)
    win.ask = discard_edits
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    with qtbot.waitSignal(win.documentChanged, timeout=TIMEOUT):
        win.open_demo()
    wait_preview(qtbot, win)
    yield win
    win.pruning.prunes.cancel(quiet=True)
    win.pruning.previews.cancel(quiet=True)
    win.pruning.prunes.wait(20_000)
    win.pruning.previews.wait(20_000)
    win.loads.wait(20_000)
