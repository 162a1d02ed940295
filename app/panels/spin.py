"""Spin boxes that refuse out-of-range input out loud instead of clamping it silently.

Why: Qt's spin boxes turn a typed 1.5 into the maximum 0.99 (and 0 into the minimum)
without a word, so the user believes a value was applied that was not. These keep the
typed text, mark it red, and say the allowed range in `problem` (and `rejected`).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox

_RED = "QAbstractSpinBox { color: #c62828; }"


class _Strict:
    rejected = Signal(str)

    def _range_text(self) -> str:
        return f"{self.minimum():g} to {self.maximum():g}"

    def _check(self, text: str, state):
        self.problem = ""
        try:
            value = self.valueFromText(text)
        except ValueError:
            return state
        body = text.replace(self.prefix(), "").replace(self.suffix(), "").strip()
        if body and body not in ("-", ".", "-.") and state != QValidator.Acceptable:
            try:
                typed = float(body.replace(",", "."))
            except ValueError:
                return state
            if not self.minimum() <= typed <= self.maximum():
                self.problem = f"{body} is outside {self._range_text()}; not applied"
                return QValidator.Intermediate
        del value
        return state

    def fixup(self, text: str) -> str:  # noqa: D401 - Qt API: called on Enter / focus out
        if self.problem:
            self.setStyleSheet(_RED)
            self.rejected.emit(self.problem)
            return text  # left as typed: nothing is applied
        return super().fixup(text)


class StrictDoubleSpinBox(_Strict, QDoubleSpinBox):
    rejected = Signal(str)  # noqa: N815 - "1.5 is outside 0 to 0.99; not applied"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.problem = ""
        self.valueChanged.connect(lambda _v: self.setStyleSheet(""))

    def validate(self, text: str, pos: int):
        state, text2, pos2 = super().validate(text, pos)
        return self._check(text, state), text2, pos2


class StrictSpinBox(_Strict, QSpinBox):
    rejected = Signal(str)  # noqa: N815

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.problem = ""
        self.valueChanged.connect(lambda _v: self.setStyleSheet(""))

    def validate(self, text: str, pos: int):
        state, text2, pos2 = super().validate(text, pos)
        return self._check(text, state), text2, pos2
