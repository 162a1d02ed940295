"""The flows need a FlowHost (a Workbench, a parent widget, a question box), not the
MainWindow: each is driven here with a bare QWidget and the FakeLoader."""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget  # noqa: E402

from app.flow_host import FlowHost  # noqa: E402
from app.open_flow import OpenFlow  # noqa: E402
from app.plan_files import PlanFiles  # noqa: E402
from app.settings import Preferences  # noqa: E402
from app.workbench import Workbench  # noqa: E402


@pytest.fixture
def flows(qtbot, settings, fake_loader):
    parent = QWidget()
    qtbot.addWidget(parent)
    wb = Workbench(prefs=Preferences(settings))
    host = FlowHost(wb, parent)
    statuses: list[str] = []
    wb.events.status.connect(statuses.append)
    plan_files = PlanFiles(host)
    opening = OpenFlow(host, plan_files, fake_loader)
    yield host, plan_files, opening, statuses
    fake_loader.gate.set()
    opening.loads.cancel(quiet=True)
    opening.loads.wait(5000)


def open_model(qtbot, opening, source: str) -> None:
    opened: list = []
    opening.wb.events.document_changed.connect(opened.append)
    assert opening.open_source(source)
    qtbot.waitUntil(lambda: bool(opened), timeout=10_000)


def test_open_flow_loads_into_the_workbench_and_keeps_it_on_failure(qtbot, flows) -> None:
    host, _, opening, statuses = flows
    wb = host.workbench
    open_model(qtbot, opening, "/models/net.pt")
    doc = wb.document
    assert doc.title == "net.pt" and [v.name for v in wb.versions] == ["original"]
    assert wb.prefs.recent()[0] == "/models/net.pt"
    assert not wb.busy  # the load job ended on the workbench
    with qtbot.waitSignal(opening.loads.failed, timeout=10_000):
        opening.open_source("/models/corrupt.pt")
    assert wb.document is doc  # a failed load leaves the open model
    box = host.last_dialog
    assert isinstance(box, QMessageBox) and box.parent() is host.parent
    assert "invalid header" in box.text() and "net.pt is still open" in box.informativeText()
    assert statuses[-1] == "Could not open corrupt.pt"


def test_unsaved_edits_prompt_with_only_a_workbench(qtbot, flows, tmp_path, monkeypatch) -> None:
    host, plan_files, opening, statuses = flows
    wb = host.workbench
    open_model(qtbot, opening, "/models/net.pt")
    root = wb.document.summary.groups[1].root
    assert plan_files.confirm_discard("quitting")  # nothing edited: no question
    assert wb.plans.set_group_ratio(root, 0.4) and wb.unsaved_edits
    asked: list[str] = []
    host.ask = lambda title, text, *_: asked.append(text) or QMessageBox.Cancel
    assert not plan_files.confirm_discard("quitting")
    assert "net.pt has unsaved edits" in asked[0] and "before quitting" in asked[0]
    assert statuses[-1] == "Kept the open model and its plan edits"
    assert not opening.open_source("/models/other.pt")  # Cancel keeps the model open
    assert wb.document.title == "net.pt"
    target = tmp_path / "kept.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    host.ask = lambda *a: QMessageBox.Save
    assert plan_files.confirm_discard("quitting")
    assert json.loads(target.read_text())["group_ratios"] == {root: 0.4}
    assert not wb.unsaved_edits and statuses[-1] == f"Plan saved to {target}"
