"""GUI: the architecture picker for weights-only files and the model-code dialog."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QDialogButtonBox

from app.dialogs.arch_picker import ArchPickerDialog
from app.dialogs.model_code import ModelCodeDialog
from engine.io.arch_match import ArchCandidate

pytestmark = pytest.mark.gui

CANDIDATES = [
    ArchCandidate("torchvision:resnet18", 122, 122, 122, 122),
    ArchCandidate("torchvision:resnet34", 68, 70, 122, 218),
]


def test_picker_preselects_the_best_and_follows_the_selection(qtbot):
    dialog = ArchPickerDialog(None, "/x/weights.pt", "holds only weights", CANDIDATES)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 2
    assert dialog.table.item(0, 1).text() == "100% (122)"
    assert dialog.table.item(0, 2).text() == "exact match"
    assert dialog.table.item(1, 2).text() == "2 differ only in shape"
    assert dialog.arch() == "torchvision:resnet18"
    dialog.table.selectRow(1)
    assert dialog.arch() == "torchvision:resnet34"
    dialog.edit.setText("timm:resnet18")
    assert dialog.arch() == "timm:resnet18"


def test_picker_without_candidates_needs_a_typed_spec(qtbot):
    dialog = ArchPickerDialog(None, "w.pt", "no match", [])
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.Ok)
    assert not ok.isEnabled() and dialog.empty.text()
    dialog.edit.setText("torchvision:vgg11")
    assert ok.isEnabled()


def test_model_code_dialog_accepts_only_a_py_file_or_folder(qtbot, tmp_path):
    dialog = ModelCodeDialog(None, str(tmp_path / "m.pt"), "mynets", "needs mynets")
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.edit.setText(str(tmp_path / "missing.py"))
    dialog.accept()
    assert dialog.isVisible() and dialog.error.text()
    code = tmp_path / "net.py"
    code.write_text("")
    dialog.edit.setText(str(code))
    with qtbot.waitSignal(dialog.accepted, timeout=5000):
        dialog.accept()
    assert dialog.path() == str(code)


def test_open_flow_asks_for_the_architecture_and_retries_with_it(qtbot, window, fake_loader):
    from app.engine_api import ArchRequired

    real = window.loader
    calls = []

    def loader(source, arch=None, **kw):
        calls.append(arch)
        if arch is None:
            raise ArchRequired(source, "w.pt holds only weights", CANDIDATES)
        return real(source, **kw)

    window.loader = loader
    with qtbot.waitSignal(window.loads.failed, timeout=10000):
        window.open_source("x/w.pt")
    picker = window.last_dialog
    assert isinstance(picker, ArchPickerDialog) and picker.isVisible()
    picker.table.selectRow(1)
    with qtbot.waitSignal(window.documentChanged, timeout=10000):
        picker.accept()
    assert calls == [None, "torchvision:resnet34"]


def test_open_flow_asks_for_model_code_after_trust_and_remembers_it(
    qtbot, window, fake_loader, tmp_path
):
    from app.engine_api import CodeRequired

    real = window.loader
    calls = []
    code = tmp_path / "nets.py"
    code.write_text("")

    def loader(source, code=None, **kw):
        calls.append((kw.get("trust"), code))
        if code is None:
            raise CodeRequired(source, "m.pt needs mynets", "mynets")
        return real(source, **kw)

    window.loader = loader
    model = str(tmp_path / "m.pt")
    with qtbot.waitSignal(window.loads.failed, timeout=10000):
        window.open_source(model, trust=True)
    asked = window.last_dialog
    assert (
        isinstance(asked, ModelCodeDialog)
        and "mynets" in asked.findChildren(type(asked.error))[0].text()
    )
    asked.edit.setText(str(code))
    with qtbot.waitSignal(window.documentChanged, timeout=10000):
        asked.accept()
    assert calls[-1] == (True, str(code))
    assert window.prefs.model_code(model) == str(code)
    with qtbot.waitSignal(window.documentChanged, timeout=10000):
        window.open_source(model, trust=True)  # remembered: not asked again
    assert calls[-1] == (True, str(code))
