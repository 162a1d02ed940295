"""What the window does when a model did not load: ask for what was missing, or say why.

Why not in the MainWindow: each engine "…Required" error has its own follow-up (trust the
file, pick the architecture of bare weights, point at the model's code, give an input
shape) that re-opens the model with the answer; the window only lays out widgets.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMessageBox

from app import engine_api
from app.dialogs.arch_picker import ArchPickerDialog
from app.dialogs.input_shape import InputShapeDialog
from app.dialogs.model_code import ModelCodeDialog
from app.dialogs.trust import make_trust_dialog
from app.workers import JobFailure


def on_load_failed(w: Any, failure: JobFailure, source: str, spec: str | None, trust: bool) -> None:
    """Follow a failed load of `source` (opened at `spec`, `trust`) up in window `w`."""
    exc = failure.exception
    if isinstance(exc, engine_api.TrustRequired):
        w.status_label.setText("Waiting for your decision about running code from the file")
        box = make_trust_dialog(w, source, failure.message)
        w.last_dialog = box

        def decided(_result: int) -> None:
            if box.clickedButton() is box.button(QMessageBox.Yes):
                w.open_source(source, spec, trust=True, ask=False)
            else:
                w.status_label.setText("Not loaded: the file was not trusted")

        box.finished.connect(decided)
        box.open()
        return
    if isinstance(exc, engine_api.ArchRequired):  # weights only: which model are they?
        picker = ArchPickerDialog(w, source, failure.message, exc.candidates)
        w.last_dialog = picker
        picker.accepted.connect(
            lambda: w.open_source(source, spec, trust, ask=False, arch=picker.arch())
        )
        picker.rejected.connect(
            lambda: w.status_label.setText("Not loaded: no architecture")
        )
        picker.open()
        return
    if isinstance(exc, engine_api.CodeRequired):  # after trust: where is the model's code?
        asked = ModelCodeDialog(w, source, exc.module, failure.message)
        w.last_dialog = asked

        def code_chosen() -> None:
            w.prefs.set_model_code(source, asked.path())
            w.open_source(source, spec, trust, ask=False, code=asked.path())

        asked.accepted.connect(code_chosen)
        asked.rejected.connect(lambda: w.status_label.setText("Not loaded: no model code"))
        asked.open()
        return
    if isinstance(exc, engine_api.InputShapeRequired):
        w.status_label.setText("Waiting for an input shape (see the dialog)")
        dialog = InputShapeDialog(
            w, failure.message, exc.suggestion, engine_api.parse_input_spec
        )
        w.last_dialog = dialog

        def chosen() -> None:
            w.workbench.remember_input_spec(source, dialog.spec())
            w.open_source(source, dialog.spec(), trust, ask=False)

        dialog.accepted.connect(chosen)
        dialog.rejected.connect(lambda: w.status_label.setText("Not loaded: no input shape"))
        dialog.open()
        return
    name = engine_api.display_name(source)
    w.status_label.setText(f"Could not open {name}")
    w._show_error(f"Could not open {name}", failure.message, failure.details)
