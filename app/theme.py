"""Light and dark application palettes (Fusion style) matching the canvas themes."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


def apply_theme(app: QApplication, name: str) -> None:
    app.setStyle("Fusion")
    if name != "dark":
        app.setPalette(app.style().standardPalette())
        return
    p = QPalette()
    colors = {
        QPalette.Window: "#25282e",
        QPalette.WindowText: "#e6e9ee",
        QPalette.Base: "#1e2126",
        QPalette.AlternateBase: "#272b31",
        QPalette.ToolTipBase: "#2f343c",
        QPalette.ToolTipText: "#e6e9ee",
        QPalette.Text: "#e6e9ee",
        QPalette.Button: "#2d3138",
        QPalette.ButtonText: "#e6e9ee",
        QPalette.BrightText: "#ff6b6b",
        QPalette.Link: "#5b9bff",
        QPalette.Highlight: "#3d6fb8",
        QPalette.HighlightedText: "#ffffff",
        QPalette.PlaceholderText: "#8891a0",
        QPalette.Mid: "#3a3f47",
    }
    for role, c in colors.items():
        p.setColor(role, QColor(c))
    for role in (QPalette.Text, QPalette.ButtonText, QPalette.WindowText):
        p.setColor(QPalette.Disabled, role, QColor("#6c7480"))
    app.setPalette(p)
