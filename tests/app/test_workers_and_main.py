"""Background jobs (progress, failure, stale results) and the `python -m app` entry point."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys  # noqa: E402
import threading  # noqa: E402
import types  # noqa: E402

from app.workers import JobFailure, JobRunner  # noqa: E402


def test_job_reports_progress_and_result_on_gui_thread(qtbot) -> None:
    runner = JobRunner()
    seen: list[tuple[float, str]] = []
    threads: list[bool] = []
    runner.progress.connect(
        lambda f, m: (
            seen.append((f, m)),
            threads.append(threading.current_thread() is threading.main_thread()),
        )
    )

    def job(progress, cancelled):
        assert threading.current_thread() is not threading.main_thread()
        progress(0.5, "half")
        return {"answer": 42}

    with qtbot.waitSignal(runner.finished, timeout=5000) as blocker:
        runner.submit(job)
    assert blocker.args == [{"answer": 42}]
    assert seen == [(0.5, "half")] and all(threads)
    assert not runner.busy


def test_job_failure_carries_message_and_traceback(qtbot) -> None:
    runner = JobRunner()

    def job(progress, cancelled):
        raise ValueError("bad header")

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.submit(job)
    failure = blocker.args[0]
    assert isinstance(failure, JobFailure)
    assert failure.kind == "ValueError" and failure.message == "bad header"
    assert "raise ValueError" in failure.details


def test_newer_job_supersedes_older_one(qtbot) -> None:
    runner = JobRunner()
    gate = threading.Event()
    results: list[str] = []
    runner.finished.connect(results.append)

    def slow(progress, cancelled):
        gate.wait(5)
        return "old"

    runner.submit(slow)
    with qtbot.waitSignal(runner.finished, timeout=5000):
        runner.submit(lambda p, c: "new")
    gate.set()
    runner.wait(5000)
    qtbot.wait(50)
    assert results == ["new"]


def test_main_delegates_subcommands_to_cli(monkeypatch) -> None:
    from app import __main__ as entry

    calls: list[list[str]] = []
    fake = types.ModuleType("app.cli")
    fake.main = lambda argv, freeze_gc=False: calls.append((argv, freeze_gc)) or 3
    monkeypatch.setitem(sys.modules, "app.cli", fake)
    assert entry.main(["inspect", "model.pt"]) == 3
    assert calls == [(["inspect", "model.pt"], True)]  # the entry point owns the process


def test_main_without_cli_module_fails_cleanly(monkeypatch, capsys) -> None:
    from app import __main__ as entry

    monkeypatch.setitem(sys.modules, "app.cli", None)  # import of app.cli raises ImportError
    assert entry.main(["prune", "x.pt"]) == 2
    assert "not available" in capsys.readouterr().err


def test_gui_entry_freezes_long_lived_objects_once_the_window_exists(
    monkeypatch, qtbot, tmp_path
) -> None:
    """run_gui freezes the collector's view of Qt, torch and the window after building the
    window and before the event loop (a recorder stands in: freezing pytest is not wanted)."""
    from PySide6.QtWidgets import QApplication

    import app.main_window
    from app import __main__ as entry

    events: list[str] = []

    class FakeWindow:
        def __init__(self, settings, auto_open):
            events.append(f"window auto_open={auto_open}")

        def show(self):
            events.append("show")

    monkeypatch.setattr(app.main_window, "MainWindow", FakeWindow)
    monkeypatch.setattr(entry, "freeze_long_lived_objects", lambda: events.append("freeze"))
    monkeypatch.setattr(QApplication, "exec", lambda self: events.append("exec") or 0)
    assert entry.run_gui(["--settings", str(tmp_path / "s.ini")]) == 0
    assert events == ["window auto_open=True", "freeze", "show", "exec"]
