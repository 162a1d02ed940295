"""The plan the user is editing and its undo history, owned by the workbench model.

Why here and not in the PruningController: the plan is document state that panels
show and edit; the controller only runs jobs (preview, solve, prune) on whatever plan
it is handed. Every edit is one undoable command on the PlanEditor's QUndoStack (the
only Qt piece: Ctrl+Z and the Edit menu's undo/redo actions bind to it); each change
calls the `on_change` callbacks with the new plan.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app import engine_api, plan_edits
from app.plan_editor import PlanEditor


class PlanModel:
    """The open document's PruningPlan, its undo stack and the named edits panels call."""

    def __init__(self) -> None:
        self.editor = PlanEditor()
        self.on_change: list[Callable[[Any], None]] = []
        self.editor.planChanged.connect(self._changed)

    @property
    def plan(self) -> Any:
        return self.editor.plan

    @property
    def stack(self) -> Any:
        return self.editor.stack

    def _changed(self, plan: Any) -> None:
        for cb in list(self.on_change):
            cb(plan)

    def reset(self, plan: Any) -> None:
        """A new document or version: this plan, and no undo history."""
        self.editor.reset(plan)

    # ------------------------------------------------------------------ edits (undoable)

    def edit(self, text: str, fn, *args, merge_key: str | None = None, **kwargs) -> bool:
        """Apply a plan_edits function as one undoable command; bad values raise ValueError."""
        return self.editor.edit(text, fn, *args, merge_key=merge_key or None, **kwargs)

    def replace(self, plan: Any, text: str) -> None:
        """Undoable wholesale replacement (a plan file, the sensitivity scan's ratios)."""
        self.editor.replace(plan, text)

    def set_options(self, text: str, changes: dict, merge_key: str = "") -> bool:
        return self.edit(text, plan_edits.set_options, merge_key=merge_key, **changes)

    def set_group_ratio(self, root: str, ratio: float | None) -> bool:
        scope = plan_edits.scope_of(self.plan, root)
        if scope is not None and ratio is not None:  # the row shows the scope's ratio
            return self.edit(
                f"Ratio {ratio:.2f} for scope {scope.name}",
                plan_edits.set_scope_ratio,
                scope.name,
                ratio,
            )
        what = f"{ratio:.2f}" if ratio is not None else "cleared"
        return self.edit(f"Group {root} ratio {what}", plan_edits.set_group_ratio, root, ratio)

    def set_groups_ratio(self, text: str, roots: list[str], ratio: float | None) -> bool:
        """One ratio for several groups (a module block) as one undoable edit."""

        def edit(plan: Any, roots: list[str], ratio: float | None) -> Any:
            for r in roots:
                plan = plan_edits.set_group_ratio(plan, r, ratio)
            return plan

        return self.edit(text, edit, roots, ratio)

    def clear_ratios(self, roots: list[str]) -> bool:
        def clear(plan, roots):
            for r in roots:
                plan = plan_edits.set_group_ratio(plan, r, None)
                plan = plan_edits.set_layer_ratio(plan, r, None)
            return plan

        return self.edit(f"Clear ratio of {len(roots)} group(s)", clear, roots)

    def set_layer_ratio(self, layer: str, ratio: float | None) -> bool:
        what = f"{ratio:.2f}" if ratio is not None else "cleared"
        return self.edit(f"Layer {layer} ratio {what}", plan_edits.set_layer_ratio, layer, ratio)

    def make_scope(self, layers: list[str], ratio: float | None = None) -> bool:
        """One shared ranking and ratio; starts at the first layer's current ratio."""
        if ratio is None:
            first = plan_edits.ratio_of(self.plan, layers[0]).ratio
            ratio = self.plan.pruning_ratio if first is None else first
        return self.edit(
            f"User scope of {len(layers)} layers", plan_edits.make_scope, layers, ratio
        )

    def leave_scopes(self, layers: list[str]) -> bool:
        return self.edit(
            f"Remove {len(layers)} layer(s) from scopes", plan_edits.leave_scopes, layers
        )

    def remove_scope(self, name: str) -> bool:
        return self.edit(f"Remove {name}", plan_edits.remove_scope, name)

    def set_ignored(self, layers: list[str], ignored: bool) -> bool:
        verb = "Ignore" if ignored else "Un-ignore"
        return self.edit(
            f"{verb} {', '.join(layers)[:60]}", plan_edits.set_ignored, layers, ignored
        )

    def set_block_dropped(self, block: str, dropped: bool) -> bool:
        if dropped == (block in self.plan.drop_blocks):
            return False
        verb = "Remove" if dropped else "Keep"
        return self.edit(f"{verb} block {block}", plan_edits.set_block_dropped, block, dropped)

    def apply_solved(self, solved_for: Any, ratio: float, text: str) -> bool:
        """The solver's ratio, unless the plan was edited (other than its ratio) meanwhile."""
        if solved_for != self.plan.replace(pruning_ratio=solved_for.pruning_ratio):
            return False
        return self.edit(text, plan_edits.set_options, pruning_ratio=round(float(ratio), 4))

    # ------------------------------------------------------------------ plan files

    def save(self, path: str) -> None:
        self.plan.save(path)

    def open(self, path: str, document: Any = None) -> list[str]:
        """Load a plan file as one undoable edit; returns the problems (nothing applied)."""
        try:
            plan = engine_api.load_plan(path)
        except engine_api.PlanFileError as exc:
            return list(exc.problems)
        return self.use(plan, document)

    def use(self, plan: Any, document: Any = None) -> list[str]:
        """Apply an already read plan as one undoable edit, unless it does not fit."""
        if document is not None:
            problems = engine_api.plan_problems(plan, document)
            if problems:
                return problems
        self.replace(plan, "Open plan")
        return []
