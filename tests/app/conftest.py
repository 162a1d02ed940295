"""Fixtures for GUI tests: offscreen Qt, a throwaway settings file, a fake engine loader."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from app.canvas.synthetic import resnet_like  # noqa: E402
from app.document import Document  # noqa: E402
from app.engine_api import LoadCancelled, ModelLoadFailed, TrustRequired  # noqa: E402


class FakeLoader:
    """Stands in for engine_api.load_and_trace: synthetic summaries, scripted failures."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.gate = threading.Event()  # cleared: loads of "slow:*" block until set
        self.gate.set()
        self.started = threading.Event()

    def __call__(
        self, source, input_spec=None, trust=False, progress=lambda f, m: None, cancel=lambda: False
    ) -> Document:
        self.calls.append({"source": source, "input_spec": input_spec, "trust": trust})
        progress(0.1, "fake loading")
        self.started.set()
        if source.startswith("slow:"):
            while not self.gate.wait(0.01):
                if cancel():
                    raise LoadCancelled()
        if source.endswith("corrupt.pt"):
            raise ModelLoadFailed("not a PyTorch file or corrupt: corrupt.pt (invalid header)")
        if source.endswith("pickled.pt") and not trust:
            raise TrustRequired(source, "pickled.pt stores pickled Python objects")
        stages = 3 if "big" in source else 2
        summary = resnet_like(stages=stages, blocks_per_stage=2)
        return Document(
            source=source, title=os.path.basename(source), summary=summary, input_spec="1,3,224,224"
        )


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
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    yield win
    fake_loader.gate.set()
    win.loads.cancel(quiet=True)
    win.loads.wait(5000)
    win.layouts.wait(5000)


def open_and_wait(qtbot, win, source: str) -> None:
    with qtbot.waitSignal(win.documentChanged, timeout=10000):
        win.open_source(source)
