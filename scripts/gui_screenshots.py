"""Drive the real window under Xvfb and grab the screen with ImageMagick's `import`.

Run: Xvfb :92 -screen 0 1600x1000x24 &  DISPLAY=:92 python scripts/gui_screenshots.py OUTDIR [STEPS]
(STEPS: a comma list of demo, densenet, effnet, swin, versions; all by default). Qt must run
on xcb (a real X window), not offscreen, so that `import` sees it. The one screenshot driver
(docs/screenshots/make_screenshots.py, which called APIs the window no longer has, is gone;
its demo workflow is the "demo" step).
Each step waits for the GUI to finish the work it started, then shoots the whole screen.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.runtime import guard_none_refcount  # noqa: E402

guard_none_refcount()

from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
ONLY = set(sys.argv[2].split(",")) if len(sys.argv) > 2 else None


def wait(app, done, timeout=900.0, settle=0.6) -> None:
    start = time.perf_counter()
    while not done():
        app.processEvents()
        time.sleep(0.01)
        if time.perf_counter() - start > timeout:
            raise TimeoutError
    end = time.perf_counter() + settle
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def shoot(app, name: str) -> None:
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    OUT.mkdir(parents=True, exist_ok=True)
    display = os.environ.get("DISPLAY", ":0")
    cmd = ["import", "-display", display, "-window", "root", str(OUT / f"{name}.png")]
    subprocess.run(cmd, check=True)
    print("wrote", OUT / f"{name}.png", flush=True)


def window(app):
    from app.main_window import MainWindow

    settings = QSettings(os.path.join(tempfile.mkdtemp(), "s.ini"), QSettings.IniFormat)
    win = MainWindow(settings, auto_open=False)
    win.ask = lambda *a: QMessageBox.Discard
    win.setGeometry(0, 0, 1600, 1000)
    win.show()
    return win


def open_model(app, win, source: str) -> None:
    opened = []
    win.documentChanged.connect(lambda: opened.append(1))
    win.open_source(source)
    wait(app, lambda: bool(opened))
    pv = win.pruning
    wait(app, lambda: pv.last_preview is not None and pv.last_preview.plan == pv.plan)


def relayout(app, win, fn) -> None:
    done = []
    win.viewChanged.connect(lambda: done.append(1))
    fn()
    wait(app, lambda: bool(done))


def preview_ready(app, win) -> None:
    pv = win.pruning
    wait(app, lambda: pv.last_preview is not None and pv.last_preview.plan == pv.plan)


def want(name: str) -> bool:
    return ONLY is None or name in ONLY


def demo_workflow(app, win) -> None:
    """The demo end to end: settings, plan edits with the preview, the prune result, the
    kept pruned model, an ONNX export (settings/preview/result/pruned/export.png)."""
    opened = []
    win.documentChanged.connect(lambda: opened.append(1))
    win.open_demo()
    wait(app, lambda: bool(opened))
    preview_ready(app, win)
    sp = win.settings_panel
    sp.criterion.setCurrentIndex(sp.criterion.findData("taylor"))
    preview_ready(app, win)
    vid = win.canvas.view_id_of_name("branch_b.0")
    win.view.center_on_node(vid, min_scale=1.0)
    win.on_node_clicked(vid)
    shoot(app, "settings")
    plans = win.workbench.plans
    plans.set_group_ratio("branch_a.0", 0.25)
    win.groups_panel.select_groups([2, 3])
    win.groups_panel.make_scope_from_selection()
    plans.set_group_ratio("block.conv1", 0.4)
    win.preview_dock.raise_()
    preview_ready(app, win)
    win.view.fit_to_view()
    shoot(app, "preview")
    finished = []
    win.pruning.pruneFinished.connect(lambda p: finished.append(p))
    win.prune()
    wait(app, lambda: bool(finished))
    d = win.result_dialog
    d.move(win.geometry().center() - d.rect().center())
    d.raise_()
    shoot(app, "result")
    result, view = finished[0]
    d.close()
    win.accept_pruned(result, view)
    preview_ready(app, win)
    win.view.fit_to_view()
    shoot(app, "pruned")
    dialog = win.open_export_dialog()
    dialog.path.setText(os.path.join(tempfile.mkdtemp(), "digits_pruned.onnx"))
    dialog.move(win.geometry().center() - dialog.rect().center())
    exported = []
    dialog.exported.connect(lambda r: exported.append(r))
    dialog.export_button.click()
    wait(app, lambda: bool(exported), timeout=300)
    shoot(app, "export")
    dialog.close()


def main() -> None:
    app = QApplication.instance() or QApplication([])
    win = window(app)
    if want("demo"):
        demo_workflow(app, win)
    if want("densenet"):
        open_model(app, win, "torchvision:densenet201")
        shoot(app, "densenet201_open")
        win.workbench.plans.set_options("Ratio 0.30", {"pruning_ratio": 0.3})
        preview_ready(app, win)
        blocks = {i.node.name: i for i in win.scene.node_items.values() if i.node.is_block}
        target = next(n for n in ("features.denseblock2", *blocks) if n in blocks)
        win.on_node_clicked(blocks[target].node.id)
        win.view.center_on_node(blocks[target].node.id, min_scale=0.9)
        shoot(app, "block_collapsed_overlay")
        relayout(app, win, lambda: win.expand_block(blocks[target].node.id))
        shoot(app, "block_expanded_overlay")
        win.tree_dock.raise_()
        win.module_tree.items[target].setExpanded(True)
        shoot(app, "module_tree")
        win.settings_dock.raise_()
    if want("effnet"):
        open_model(app, win, "torchvision:efficientnet_v2_l")
        shoot(app, "efficientnet_v2_l_open")
    if want("swin"):
        open_model(app, win, "torchvision:swin_t")
        from app.panels.layer_info import lock_reason

        doc = win.document
        roots = {g.root for g in doc.summary.groups}
        out_pruned = {m.node for g in doc.summary.groups for m in g.members if "out" in m.handler}
        locked = [
            n
            for n in doc.summary.nodes
            if n.is_layer and n.name not in roots and n.name not in out_pruned
        ]
        print("locked swin layers:", [(n.name, lock_reason(doc, n.name)) for n in locked][:8])
        pick = next((n for n in locked if "attn" in n.name), locked[0] if locked else None)
        if pick is not None:
            win.tree_dock.raise_()
            win.module_tree._clicked(
                win.module_tree.items.get(pick.name)
                or win.module_tree.items[next(iter(win.module_tree.items))],
                0,
            )
            wait(app, lambda: win.workbench.selection.node == pick.name, timeout=300)
            win.props_dock.raise_()
            # wide enough that the lock reason is not elided (its tooltip has it in full)
            win.resizeDocks([win.props_dock], [760], Qt.Horizontal)
            shoot(app, "swin_locked_properties")
            win.resizeDocks([win.props_dock], [460], Qt.Horizontal)
    if want("versions"):
        open_model(app, win, "torchvision:resnet18")
        win.workbench.plans.set_options("Ratio 0.40", {"pruning_ratio": 0.4})
        preview_ready(app, win)
        finished = []
        win.pruning.pruneFinished.connect(lambda p: finished.append(p))
        win.prune()
        wait(app, lambda: bool(finished))
        shoot(app, "resnet18_prune_result")
        result, view = finished[0]
        win.result_dialog.close()
        win.accept_pruned(result, view)
        preview_ready(app, win)
        win.versions_dock.raise_()
        win.versions_panel.compare()
        shoot(app, "version_history")
        dialog = win.open_export_dialog()
        shoot(app, "resnet18_export_names_version")
        dialog.close()
    win.workbench.close_document()


if __name__ == "__main__":
    main()
