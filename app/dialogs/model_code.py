"""Where is the model's own code? Asked after the trust dialog when a pickled model's
classes cannot be imported (``torch.save(model)`` from a notebook or the user's project).

The answer (a .py file or a folder to import from) is remembered per model file, so
reopening it asks only for trust. Importing the code runs it, which the user has just
agreed to for this file.
"""

from __future__ import annotations

import os

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class ModelCodeDialog(QDialog):
    def __init__(
        self, parent: QWidget | None, source: str, module: str | None, message: str,
        current: str = "",
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.setWindowTitle("Model code")
        name = os.path.basename(source) or source
        what = (
            "a notebook or a script run directly (<code>__main__</code>)"
            if module == "__main__"
            else f"the Python module <code>{module}</code>"
            if module
            else "Python code Arborist cannot import"
        )
        intro = QLabel(
            f"<b>{name}</b> is a pickled model whose classes come from {what}. Choose the "
            "<b>.py file</b> that defines them, or the <b>folder</b> to import from.",
            self,
            wordWrap=True,
        )
        self.edit = QLineEdit(current, self)
        self.edit.setPlaceholderText("path to a .py file or a folder")
        file_button = QPushButton("File…", self)
        folder_button = QPushButton("Folder…", self)
        file_button.clicked.connect(self._choose_file)
        folder_button.clicked.connect(self._choose_folder)
        row = QHBoxLayout()
        row.addWidget(self.edit, 1)
        row.addWidget(file_button)
        row.addWidget(folder_button)
        self.error = QLabel("", self, wordWrap=True)
        self.error.setStyleSheet("color: #c62828")
        details = QLabel(message, self, wordWrap=True)
        details.setStyleSheet("color: gray")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(row)
        for w in (self.error, details, self.buttons):
            layout.addWidget(w)
        self._start = os.path.dirname(os.path.abspath(source)) if os.path.exists(source) else ""
        self.resize(560, self.sizeHint().height())

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model code", self._start, "Python (*.py)")
        if path:
            self.edit.setText(path)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder to import from", self._start)
        if path:
            self.edit.setText(path)

    def path(self) -> str:
        return self.edit.text().strip()

    def accept(self) -> None:
        path = self.path()
        if not (os.path.isdir(path) or (os.path.isfile(path) and path.endswith(".py"))):
            self.error.setText("Choose an existing .py file or folder.")
            return
        super().accept()
