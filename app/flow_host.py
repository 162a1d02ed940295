"""What a flow (open, prune, export, plan files) needs from the window, and nothing more.

Why: the flows used to reach into MainWindow attributes (its status label, its actions,
its private error box), so testing one needed the whole window. A FlowHost is the
workbench the flow changes, the widget its dialogs open over, a question box that a
test can answer, and the dialogs the user sees now (tests and the window read them).
Status lines go out on the workbench's `status` event, which the status bar shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import QMessageBox, QWidget

from app.workbench import Workbench

Ask = Callable[[str, str, Any, Any], Any]  # (title, text, buttons, default) -> button


def ask_modal(parent: QWidget | None) -> Ask:
    """The real question box over `parent`; tests replace host.ask with a fixed answer."""
    return lambda title, text, buttons, default: QMessageBox.question(
        parent, title, text, buttons, default
    )


@dataclass(eq=False)
class FlowHost:
    workbench: Workbench
    parent: QWidget | None = None  # dialogs open over it (None: top-level)
    ask: Ask | None = None  # None: a modal QMessageBox.question over `parent`
    last_dialog: QWidget | None = None  # the dialog or menu opened last
    result_dialog: QWidget | None = None  # the last PruneResultDialog
    export_dialog: QWidget | None = None  # the last ExportDialog
    recover_teacher: Any = None  # the unpruned Document "Recover accuracy" distils from

    def __post_init__(self) -> None:
        if self.ask is None:
            self.ask = ask_modal(self.parent)
        # a closed model must not stay alive through its dialogs
        self.workbench.events.document_changed.connect(self._forget_dialogs)

    @property
    def prefs(self) -> Any:
        return self.workbench.prefs

    def status(self, text: str) -> None:
        self.workbench.events.status.emit(text)

    def show(self, dialog: QWidget) -> QWidget:
        """Open a (non-modal) dialog and remember it as the one the user sees."""
        self.last_dialog = dialog
        dialog.open()
        return dialog

    def show_error(self, title: str, message: str, details: str = "") -> QMessageBox:
        """A one-line error with the traceback under "Show details"; says what stays open."""
        box = QMessageBox(QMessageBox.Critical, title, message, QMessageBox.Ok, self.parent)
        if details:
            box.setDetailedText(details)
        doc = self.workbench.document
        if doc is not None:
            box.setInformativeText(f"{doc.title} is still open.")
        self.show(box)
        return box

    def _forget_dialogs(self, _doc: Any) -> None:
        self.result_dialog = self.export_dialog = self.last_dialog = None


def on_host(name: str) -> property:
    """A window attribute that lives on its FlowHost (tests and dialogs use it on the window)."""
    return property(
        lambda w: getattr(w.host, name),
        lambda w, value: setattr(w.host, name, value),
        doc=f"FlowHost.{name}",
    )
