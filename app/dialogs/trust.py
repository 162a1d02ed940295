"""The trust gate: asked before a file is unpickled with code execution. Defaults to No."""

from __future__ import annotations

import os

from PySide6.QtWidgets import QMessageBox, QWidget

TRUST_TEXT = (
    "<b>Loading “{name}” would run Python code stored inside the file.</b><br><br>"
    "This file holds pickled Python objects or program code, not plain weights and graphs. "
    "Loading it can execute any code: "
    "it could read or delete your files, install malware or send data over the network. "
    "Arborist cannot check what the code does.<br><br>"
    "Only choose <b>Yes</b> if you created this file or fully trust where it came from."
)


def make_trust_dialog(parent: QWidget | None, source: str, reason: str = "") -> QMessageBox:
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Warning)
    box.setWindowTitle("Run code from this file?")
    box.setText(TRUST_TEXT.format(name=os.path.basename(source) or source))
    if reason:
        box.setDetailedText(reason)
    box.setStandardButtons(QMessageBox.Yes | QMessageBox.No)
    no = box.button(QMessageBox.No)
    no.setText("No, don't load")
    box.button(QMessageBox.Yes).setText("Yes, run its code")
    box.setDefaultButton(no)
    box.setEscapeButton(no)
    return box
