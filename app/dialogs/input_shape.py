"""Asks for an input shape when Arborist cannot infer one (or the guess failed)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)


class InputShapeDialog(QDialog):
    """`validate(text)` raises ValueError with a user-facing message for a bad spec."""

    def __init__(
        self,
        parent: QWidget | None,
        reason: str,
        suggestion: str,
        validate: Callable[[str], object],
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Input shape")
        self._validate = validate
        self.reason = QLabel(reason, self, wordWrap=True)
        help_ = QLabel(
            "Enter the shape of one example input, batch first, e.g. <code>1,3,224,224</code>. "
            "Several inputs: separate with <code>;</code>.",
            self,
            wordWrap=True,
        )
        self.edit = QLineEdit(suggestion or "1,3,224,224", self)
        self.error = QLabel("", self, wordWrap=True)
        self.error.setStyleSheet("color: #c62828")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for w in (self.reason, help_, self.edit, self.error, self.buttons):
            layout.addWidget(w)
        self.resize(460, self.sizeHint().height())

    def spec(self) -> str:
        return self.edit.text().strip()

    def accept(self) -> None:
        try:
            self._validate(self.spec())
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        super().accept()
