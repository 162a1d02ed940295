"""Every menu entry, shortcut and toolbar button in one table.

Why: the window used to build ~30 actions by hand in three places (actions, menus,
toolbar). Here each action is one row: its attribute name, text, shortcut(s), the
window method it calls, the menu it sits in and whether the toolbar shows it. The
window builds them with `build_actions` and stays a layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

Shortcut = str | QKeySequence.StandardKey


@dataclass(frozen=True)
class ActionSpec:
    name: str  # attribute on the window: act_<name>
    text: str
    slot: str  # window method (dotted for a child: "view.fit_to_view")
    shortcuts: tuple[Shortcut, ...] = ()
    tip: str = ""
    menu: str = ""  # "File", "Edit", "Prune", "View", "Help"; "" = not in a menu
    toolbar: bool = False
    needs_document: bool = False  # disabled until a model is open
    checkable: bool = False
    separator_before: bool = False


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "open",
        "&Open…",
        "open_file_dialog",
        (QKeySequence.Open,),
        "Open a model file",
        "File",
        toolbar=True,
    ),
    ActionSpec(
        "builtin",
        "Open &Built-in Model…",
        "open_builtin_dialog",
        ("Ctrl+B",),
        "Open a torchvision architecture",
        "File",
        toolbar=True,
    ),
    ActionSpec(
        "demo",
        "Open &Demo",
        "open_demo",
        ("Ctrl+D",),
        "Open the DigitsNet demo model",
        "File",
        toolbar=True,
    ),
    ActionSpec(
        "open_plan",
        "Open &Plan…",
        "plan_files.open_dialog",
        ("Ctrl+Shift+O",),
        "",
        "File",
        needs_document=True,
        separator_before=True,
    ),
    ActionSpec(
        "save_plan",
        "&Save Plan…",
        "plan_files.save_dialog",
        (QKeySequence.Save,),
        "",
        "File",
        needs_document=True,
    ),
    ActionSpec(
        "export",
        "&Export…",
        "open_export_dialog",
        ("Ctrl+E",),
        "Export a version of the model",
        "File",
        toolbar=True,
        needs_document=True,
    ),
    ActionSpec(
        "cancel",
        "&Cancel Running Job",
        "cancel_current",
        ("Esc",),
        "Stop loading, pruning or exporting",
        "File",
        separator_before=True,
    ),
    ActionSpec("quit", "&Quit", "close", (QKeySequence.Quit,), "", "File", separator_before=True),
    ActionSpec(
        "make_scope",
        "Make User &Scope of Selected Groups",
        "make_scope_from_selection",
        ("Ctrl+G",),
        "",
        "Edit",
        separator_before=True,
    ),
    ActionSpec(
        "prune",
        "&Prune",
        "prune",
        ("Ctrl+P",),
        "Prune a copy of the model with the current plan",
        "Prune",
        toolbar=True,
        needs_document=True,
    ),
    ActionSpec(
        "measure_blocks",
        "Measure &Block Importance",
        "depth.measure",
        (),
        "1 − cos of each removable residual block's input and output on the calibration data",
        "Prune",
        needs_document=True,
        separator_before=True,
    ),
    ActionSpec(
        "recover",
        "&Recover accuracy…",
        "open_recover_dialog",
        (),
        "Fine-tune / distil the kept pruned version on your data",
        "Prune",
        needs_document=True,
    ),
    ActionSpec(
        "fit", "&Fit to View", "view.fit_to_view", ("F", "Ctrl+0"), "", "View", toolbar=True
    ),
    ActionSpec(
        "zoom_out", "Zoom &Out", "zoom_out", (QKeySequence.ZoomOut,), "", "View", toolbar=True
    ),
    ActionSpec(
        "zoom_in", "Zoom &In", "zoom_in", (QKeySequence.ZoomIn, "Ctrl+="), "", "View", toolbar=True
    ),
    ActionSpec("zoom_100", "&Actual Size", "zoom_100", ("Ctrl+1",), "", "View"),
    ActionSpec(
        "find",
        "&Find Layer…",
        "focus_search",
        (QKeySequence.Find,),
        "",
        "View",
        separator_before=True,
    ),
    ActionSpec("clear", "Clear &Highlight", "clear_selection", (), "", "View"),
    ActionSpec(
        "collapse_all", "&Collapse Top-Level Modules", "collapse_all", ("Ctrl+Shift+C",), "", "View"
    ),
    ActionSpec("expand_all", "&Expand All", "expand_all", ("Ctrl+Shift+E",), "", "View"),
    ActionSpec("minimap", "&Minimap", "toggle_minimap", ("M",), "", "", checkable=True),
    ActionSpec("toggle_theme", "Toggle &Theme", "toggle_theme", ("Ctrl+T",), "", "", toolbar=True),
    ActionSpec("about", "&About Arborist", "about", (), "", "Help"),
    ActionSpec(
        "navigation", "&Navigation", "navigation_help", (QKeySequence.HelpContents,), "", "Help"
    ),
)

MENUS = ("File", "Edit", "Prune", "View", "Help")


def _resolve(owner: object, slot: str) -> Callable[..., object]:
    target = owner
    for part in slot.split("."):
        target = getattr(target, part)
    return target  # type: ignore[return-value]


def make_action(owner: QWidget, spec: ActionSpec) -> QAction:
    act = QAction(spec.text, owner)
    if spec.shortcuts:
        act.setShortcuts([QKeySequence(s) for s in spec.shortcuts])
    act.setStatusTip(spec.tip or spec.text.replace("…", "").replace("&", ""))
    act.setCheckable(spec.checkable)
    fn = _resolve(owner, spec.slot)
    act.triggered.connect(lambda _checked=False, fn=fn: fn())
    return act


def build_actions(owner: QWidget) -> dict[str, QAction]:
    """One QAction per row, set on the owner as act_<name>; returns them by name."""
    actions = {}
    for spec in ACTIONS:
        act = make_action(owner, spec)
        setattr(owner, f"act_{spec.name}", act)
        actions[spec.name] = act
    return actions


def specs_in(menu: str) -> list[ActionSpec]:
    return [s for s in ACTIONS if s.menu == menu]
