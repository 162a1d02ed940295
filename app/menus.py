"""The menu bar and the toolbar, built from the action table (app.actions), plus the few
actions a table row cannot describe: undo/redo (made by the undo stack, with toolbar
twins whose labels stay put), the theme choice and one Panels entry per dock.

Why not in the MainWindow: where each action sits is data (the table); this turns it
into widgets, so the window only calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QUndoStack
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QToolBar, QWidget

from app.actions import ACTIONS, MENUS, specs_in

TOOLBAR_GROUPS = (("open", "builtin", "demo"), ("prune", "export"), ("fit", "zoom_out", "zoom_in"))


def undo_actions(owner: QWidget, stack: QUndoStack) -> tuple[QAction, QAction, QAction, QAction]:
    """(menu undo, menu redo, toolbar undo, toolbar redo). The toolbar's have a fixed label:
    the menu's "Undo Group x ratio 0.50" text changed the button width on every edit and
    made the toolbar jump; the full text is their tooltip."""
    undo = stack.createUndoAction(owner, "&Undo")
    undo.setShortcuts([QKeySequence(QKeySequence.Undo)])
    redo = stack.createRedoAction(owner, "&Redo")
    redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    tb_undo = QAction("Undo", owner, enabled=False)
    tb_undo.triggered.connect(stack.undo)
    stack.canUndoChanged.connect(tb_undo.setEnabled)
    stack.undoTextChanged.connect(lambda t: tb_undo.setToolTip(f"Undo {t}".strip()))
    tb_redo = QAction("Redo", owner, enabled=False)
    tb_redo.triggered.connect(stack.redo)
    stack.canRedoChanged.connect(tb_redo.setEnabled)
    stack.redoTextChanged.connect(lambda t: tb_redo.setToolTip(f"Redo {t}".strip()))
    return undo, redo, tb_undo, tb_redo


def theme_actions(
    owner: QWidget, choose: Callable[[str], None]
) -> tuple[QActionGroup, QAction, QAction]:
    group = QActionGroup(owner)
    light = QAction("&Light", owner, checkable=True)
    light.triggered.connect(lambda: choose("light"))
    dark = QAction("&Dark", owner, checkable=True)
    dark.triggered.connect(lambda: choose("dark"))
    for act in (light, dark):
        group.addAction(act)
    return group, light, dark


def build_menu_bar(
    w: QMainWindow, docks: Iterable[QDockWidget], fill_recent: Callable[[QMenu], None]
) -> QMenu:
    """Every table row in its menu (the window's act_<name>); returns File › Open Recent."""
    menus = {name: w.menuBar().addMenu("&" + name) for name in MENUS}
    recent = QMenu("Open &Recent", menus["File"])
    for name, menu in menus.items():
        for spec in specs_in(name):
            if spec.separator_before:
                menu.addSeparator()
            menu.addAction(getattr(w, f"act_{spec.name}"))
    menus["File"].insertMenu(w.act_open_plan, recent)
    recent.aboutToShow.connect(lambda: fill_recent(recent))
    edit = menus["Edit"]
    edit.insertActions(edit.actions()[0] if edit.actions() else None, [w.act_undo, w.act_redo])
    view = menus["View"]
    view.addSeparator()
    theme = view.addMenu("T&heme")
    theme.addActions([w.act_light, w.act_dark])
    theme.addSeparator()
    theme.addAction(w.act_toggle_theme)
    panels = view.addMenu("&Panels")
    for dock in docks:
        panels.addAction(dock.toggleViewAction())
    panels.addAction(w.act_minimap)
    return recent


def build_toolbar(w: QMainWindow, search: QWidget) -> QToolBar:
    """Open/demo, undo/redo, prune/export, zoom, the layer search and the theme toggle."""
    tb = QToolBar("Main", w)
    tb.setObjectName("mainToolbar")
    tb.setMovable(False)
    shown = {s.name for s in ACTIONS if s.toolbar}
    for i, names in enumerate(TOOLBAR_GROUPS):
        if i == 1:
            tb.addActions([w.tb_undo, w.tb_redo])
        tb.addActions([getattr(w, f"act_{n}") for n in names if n in shown])
        tb.addSeparator()
    tb.addWidget(search)
    tb.addSeparator()
    tb.addAction(w.act_toggle_theme)
    w.addToolBar(tb)
    return tb
