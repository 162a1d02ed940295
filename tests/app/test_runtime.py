"""app.runtime: the None refcount guard is applied at GUI start only, and only where void
Qt calls really drain None's reference count."""

from __future__ import annotations

import gc
import inspect
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _fresh_python(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, env={"QT_QPA_PLATFORM": "offscreen",
                                                     "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_importing_app_and_the_cli_leaves_none_alone() -> None:
    code = ("import sys\nimport app, app.runtime, app.cli\n"
            "print(sys.getrefcount(None) < 1 << 40)\n")
    assert _fresh_python(code) == ["True"]


def test_guard_follows_the_measured_drain() -> None:
    """A void call that leaves None alone: no guard. The real Qt setter: guarded exactly
    when it drains (PySide6 6.12.0 on CPython 3.11 does), and then 20000 void calls live."""
    code = (
        "import sys\nfrom app.runtime import guard_none_refcount, none_refcount_drains\n"
        "print(guard_none_refcount(probe=lambda: None), sys.getrefcount(None) > 1 << 40)\n"
        "from PySide6.QtCore import QPointF\n"
        "p = QPointF()\n"
        "b = sys.getrefcount(None)\n"
        "for _ in range(64): p.setX(1.0)\n"
        "drains = sys.getrefcount(None) < b - 32 and sys.version_info < (3, 12)\n"
        "print(drains, guard_none_refcount(), sys.getrefcount(None) > 1 << 40)\n"
        "for _ in range(20000): p.setX(2.0)\n"
        "print(none_refcount_drains() == drains)\n"
    )
    first_applied, first_immortal, drains, applied, immortal, again = _fresh_python(code)
    assert (first_applied, first_immortal) == ("False", "False")
    assert applied == drains and immortal == drains and again == "True"


class _InACycle:
    """Refers to itself, so only the cyclic collector frees it; records where it dies."""

    def __init__(self, seen: list[int]) -> None:
        self.seen = seen
        self.me = self

    def __del__(self) -> None:
        self.seen.append(threading.get_ident())


def _drop_a_cycle_and_allocate(seen: list[int]) -> list[list]:
    _InACycle(seen)
    return [[] for _ in range(100_000)]  # kept alive: past generation 0's threshold


def test_by_default_a_cycle_dies_on_the_thread_that_allocates() -> None:
    """The hazard: without the GUI collector, CPython collects in the allocating thread."""
    code = (
        "import threading\n"
        f"{inspect.getsource(_InACycle)}\n"
        f"{inspect.getsource(_drop_a_cycle_and_allocate)}\n"
        "seen, kept = [], []\n"
        "t = threading.Thread(target=lambda: kept.append(_drop_a_cycle_and_allocate(seen)))\n"
        "t.start(); t.join()\n"
        "print(seen == [t.ident])\n"
    ).replace("list[list]", "list").replace("list[int]", "list")
    assert _fresh_python(code) == ["True"]


def test_a_cycle_dropped_by_a_worker_dies_on_the_gui_thread(qtbot) -> None:
    """With collection on the GUI thread (tests/app/conftest.py installs it, as the GUI's
    start does), a worker's garbage cycle is freed by the timer on the GUI thread."""
    from app.workers import JobRunner

    assert not gc.isenabled()
    seen: list[int] = []
    runner = JobRunner()
    with qtbot.waitSignal(runner.finished, timeout=10_000) as done:
        runner.submit(lambda progress, cancelled: _drop_a_cycle_and_allocate(seen))
    assert len(done.args[0]) == 100_000
    qtbot.waitUntil(lambda: bool(seen), timeout=5_000)
    assert seen == [threading.main_thread().ident]
