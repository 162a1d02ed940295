"""Test helpers for GUI tests: a scripted stand-in for the engine loader."""

from __future__ import annotations

import os
import threading

from app.canvas.synthetic import densenet_like, resnet_like
from app.document import Document
from app.engine_api import LoadCancelled, ModelLoadFailed, TrustRequired


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
        if "dense" in source:  # torchvision DenseNet's long names
            summary = densenet_like()
        return Document(
            source=source, title=os.path.basename(source), summary=summary, input_spec="1,3,224,224"
        )


TIMEOUT = 60_000  # ms; generous: the CI machine is shared


def wait_preview(qtbot, win):
    """Until the preview shown is the one for the current plan."""
    qtbot.waitUntil(
        lambda: (
            win.pruning.last_preview is not None
            and win.pruning.last_preview.plan == win.pruning.plan
            and win.preview_panel.preview is win.pruning.last_preview.preview
        ),
        timeout=TIMEOUT,
    )
    return win.pruning.last_preview.preview


def open_and_wait(qtbot, win, source: str) -> None:
    with qtbot.waitSignal(win.documentChanged, timeout=10000):
        win.open_source(source)
