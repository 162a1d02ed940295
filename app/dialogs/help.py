"""Help › About and Help › Navigation: two fixed texts over the window."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

NAVIGATION_HELP = (
    "Wheel or pinch: zoom around the cursor\nDrag (left or middle button): pan\n"
    "F / Ctrl+0: fit graph\nClick a layer: properties and its group\n"
    "Double-click a block: expand it one level; right-click a layer: collapse its module\n"
    "Ctrl+F: find a layer; Enter again: next match\nEsc: cancel the running job"
)


def show_about(parent: QWidget) -> None:
    QMessageBox.about(
        parent,
        "About Arborist",
        "<b>Arborist</b><br>A workbench for structural pruning of PyTorch models.",
    )


def show_navigation(parent: QWidget) -> None:
    QMessageBox.information(parent, "Navigation", NAVIGATION_HELP)
