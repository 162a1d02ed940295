"""The document's PruningPlan behind a QUndoStack: every edit is one undoable command.

A command stores the plan before and after (plans are small, plain data), so undo
and redo restore exactly what was there; spin-box drags on the same setting
merge into one command so Ctrl+Z undoes the whole drag, not each tick.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from engine.plan import PruningPlan

MERGE_ID = 4711  # any constant: commands with the same id and merge key combine


class PlanCommand(QUndoCommand):
    """Swap the editor's plan from `before` to `after`."""

    def __init__(
        self,
        editor: PlanEditor,
        before: PruningPlan,
        after: PruningPlan,
        text: str,
        merge_key: str | None = None,
    ) -> None:
        super().__init__(text)
        self.editor = editor
        self.before = before
        self.after = after
        self.merge_key = merge_key

    def id(self) -> int:
        return MERGE_ID if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 (Qt API)
        if not isinstance(other, PlanCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        self.setText(other.text())
        return True

    def redo(self) -> None:
        self.editor._set(self.after)

    def undo(self) -> None:
        self.editor._set(self.before)


class PlanEditor(QObject):
    """Holds the current plan; emits planChanged(plan) after every edit, undo or redo."""

    planChanged = Signal(object)  # noqa: N815 (Qt naming)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.stack = QUndoStack(self)
        self.plan = PruningPlan()

    def reset(self, plan: PruningPlan) -> None:
        """A new document (or an opened plan file): forget the undo history."""
        self.stack.clear()
        self._set(plan)

    def edit(
        self,
        text: str,
        fn: Callable[..., PruningPlan],
        *args: object,
        merge_key: str | None = None,
        **kwargs: object,
    ) -> bool:
        """Push `fn(plan, *args, **kwargs)` as an undoable command; False when nothing changed."""
        after = fn(self.plan, *args, **kwargs)
        if after == self.plan:
            return False
        self.stack.push(PlanCommand(self, self.plan, after, text, merge_key))
        return True

    def replace(self, plan: PruningPlan, text: str) -> None:
        """Undoable wholesale replacement (opening a plan file, the ratio solver)."""
        if plan != self.plan:
            self.stack.push(PlanCommand(self, self.plan, plan, text))

    def _set(self, plan: PruningPlan) -> None:
        self.plan = plan
        self.planChanged.emit(plan)
