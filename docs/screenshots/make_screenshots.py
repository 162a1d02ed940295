"""Drive the real GUI under Xvfb and take X screenshots of each stage of the workflow.

    Xvfb :99 -screen 0 1600x1000x24 &
    DISPLAY=:99 python docs/screenshots/make_screenshots.py

Needs ImageMagick's `import`. Writes settings/preview/result/pruned/export.png here.
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
from PySide6.QtCore import QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from app.runtime import guard_none_refcount  # noqa: E402

torch.set_num_threads(1)
OUT = os.path.dirname(os.path.abspath(__file__))
guard_none_refcount()  # before any Qt call (see app.runtime)
qapp = QApplication([sys.argv[0]])
ini = tempfile.mktemp(suffix=".ini")
win = MainWindow(QSettings(ini, QSettings.IniFormat), auto_open=False)
win.move(0, 0)
win.resize(1600, 1000)
win.show()
steps = []


def shot(name):
    QApplication.processEvents()
    subprocess.run(["import", "-window", "root", os.path.join(OUT, name)], check=True)
    print("shot", name, flush=True)


def step(ms):
    def deco(fn):
        steps.append((ms, fn))
        return fn

    return deco


@step(500)
def open_demo():
    win.open_demo()


@step(6000)
def settings():
    sp = win.settings_panel
    sp.criterion.setCurrentIndex(sp.criterion.findData("taylor"))
    node = win.document.node_by_name("branch_b.0")
    vid = win.view_id(node.id)
    win.view.center_on_node(vid, min_scale=1.0)
    win.on_node_clicked(vid)


@step(2500)
def s1():
    shot("settings.png")


@step(300)
def edits():
    win.pruning.set_group_ratio("branch_a.0", 0.25)
    win.groups_panel.select_groups([2, 3])
    win.make_scope_from_selection()
    win.groups_panel.ratioEdited.emit("block.conv1", 0.4)
    win.preview_dock.raise_()


@step(2500)
def s2():
    win.view.fit_to_view()


@step(1500)
def s2b():
    shot("preview.png")
    win.prune()


@step(5000)
def s3():
    d = win.result_dialog
    d.move(win.geometry().center() - d.rect().center())
    d.raise_()


@step(1500)
def s3b():
    shot("result.png")
    win.result_dialog.accept()


@step(3000)
def s4():
    win.view.fit_to_view()


@step(1500)
def s4b():
    shot("pruned.png")
    d = win.open_export_dialog()
    out = tempfile.mkdtemp()
    d.path.setText(os.path.join(out, "digits_pruned.onnx"))
    d.move(win.geometry().center() - d.rect().center())
    d.export_button.click()


@step(6000)
def s5():
    shot("export.png")
    qapp.quit()


t = 0
for ms, fn in steps:
    t += ms
    QTimer.singleShot(t, fn)
qapp.exec()
