"""The data panel on real data: sklearn's digits written as PNG class folders."""

from __future__ import annotations

import shutil

import pytest

from app import engine_api
from app.panels.data import DEMO_DATA, NO_DATA, DataPanel
from tests.app.helpers import TIMEOUT


@pytest.fixture(scope="module")
def demo_doc():
    return engine_api.load_and_trace("arborist:demo")


@pytest.fixture
def panel(qtbot, demo_doc) -> DataPanel:
    p = DataPanel()
    qtbot.addWidget(p)
    p.set_document(demo_doc)
    return p


def _open(qtbot, panel: DataPanel, path):
    with qtbot.waitSignal(panel.dataChanged, timeout=TIMEOUT) as got:
        panel.open_path(str(path))
    return got.args[0]


def test_without_data_the_random_input_warning_is_shown(panel) -> None:
    assert panel.status.text() == DEMO_DATA  # the demo brings its own digits
    panel.set_document(None)
    assert panel.status.text() == NO_DATA and "random" in NO_DATA
    assert panel.choice is None and not panel.apply_split.isEnabled()


def test_held_out_digits_show_count_classes_thumbnails_preprocessing_and_split(
    qtbot, panel, digit_folders
) -> None:
    choice = _open(qtbot, panel, digit_folders.heldout)
    info = panel.info
    assert choice.data == str(digit_folders.heldout) and choice.eval_data is None
    assert info.samples == 360 and info.skipped == 0
    assert info.classes == [str(d) for d in range(10)]
    assert "360 samples" in panel.summary.text()
    assert "Classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in panel.summary.text()
    captions = [box.property("caption") for box in panel.thumb_labels]
    assert len(captions) >= 10 and set(captions) <= {str(d) for d in range(10)}
    # the demo's own preprocessing: 8x8 grayscale, pixels / 255, no normalisation
    assert panel.resize_edit.text() == "8,8" and panel.grayscale.isChecked()
    assert panel.mean_edit.text() == "" and "demo metadata" in panel.pre_source.text()
    # a stratified evaluation split: round(fraction x class size) of every class
    per_class = [len(list((digit_folders.heldout / str(d)).iterdir())) for d in range(10)]
    held = sum(round(n * 0.2) for n in per_class)
    cap = 256  # engine.data caps calibration sets (DEFAULT_CALIBRATION_SAMPLES)
    assert (info.calibration_samples, info.evaluation_samples) == (min(cap, 360 - held), held)
    panel.eval_percent.setValue(50.0)
    with qtbot.waitSignal(panel.dataChanged, timeout=TIMEOUT) as got:
        panel.apply_split.click()
    assert got.args[0].eval_fraction == 0.5
    held = sum(round(n * 0.5) for n in per_class)
    assert (panel.info.calibration_samples, panel.info.evaluation_samples) == (360 - held, held)


def test_a_corrupt_png_is_skipped_and_counted(qtbot, panel, digit_folders, tmp_path) -> None:
    folder = tmp_path / "digits"
    shutil.copytree(digit_folders.heldout, folder)
    (folder / "3" / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    _open(qtbot, panel, folder)
    assert panel.info.skipped == 1
    assert "Unreadable files skipped: 1" in panel.summary.text()


def test_edited_preprocessing_is_used_and_bad_text_is_explained(
    qtbot, panel, digit_folders
) -> None:
    _open(qtbot, panel, digit_folders.heldout)
    panel.mean_edit.setText("0.5")
    panel.std_edit.setText("0.25")
    with qtbot.waitSignal(panel.dataChanged, timeout=TIMEOUT) as got:
        panel.apply_pre.click()
    overrides = got.args[0].preprocessing
    assert overrides["mean"] == (0.5,) and overrides["std"] == (0.25,)
    pre = panel.info.preprocessing
    assert (pre.mean, pre.std) == ((0.5,), (0.25,)) and "user overrides" in pre.source
    panel.mean_edit.setText("half")
    panel.apply_pre.click()
    assert "not a list of numbers" in panel.status.text()


def test_an_empty_folder_is_a_clear_message_and_the_panel_lives(qtbot, panel, tmp_path) -> None:
    with qtbot.waitSignal(panel.runner.failed, timeout=TIMEOUT):
        panel.open_path(str(tmp_path))
    assert panel.status.text().startswith("Cannot use this data: ")
    assert panel.choice is None


def test_the_window_warns_about_random_inputs_until_data_is_chosen(
    qtbot, demo_window, digit_folders
) -> None:
    win = demo_window
    sp = win.settings_panel
    sp.criterion.setCurrentIndex(sp.criterion.findData("taylor"))
    sp.calibration.setCurrentIndex(sp.calibration.findData("random"))
    sp._calibration_activated()  # as a user's pick does  # noqa: SLF001
    assert sp.data_warning.isVisible() and "random inputs" in sp.data_warning.text()
    assert win.data_panel.status.text() == DEMO_DATA
    assert win.pruning.calibration == ("random", "")
    with qtbot.waitSignal(win.data_panel.dataChanged, timeout=TIMEOUT):
        win.data_panel.open_path(str(digit_folders.heldout))
    assert win.pruning.calibration == ("data", str(digit_folders.heldout))
    assert win.pruning.data.data == str(digit_folders.heldout)
    assert "calibration split" in sp.data_warning.text()
    with qtbot.waitSignal(win.data_panel.dataChanged, timeout=TIMEOUT):
        win.data_panel.clear()
    assert win.pruning.data is None and win.pruning.calibration == ("demo", "")
    assert win.data_panel.status.text() == DEMO_DATA
