"""The canvas context menu: expand / collapse, select the group, the layer's plan."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QApplication, QMenu

from app.canvas.hierarchy import containers

RATIO_PRESETS = (0.0, 0.25, 0.5, 0.75)


def node_menu(win: Any, view_id: int) -> QMenu | None:
    """The menu for a canvas node; `win` gives the workbench, canvas and panels."""
    wb = win.workbench
    item = win.scene.node_items.get(view_id)
    doc = wb.document
    if item is None or doc is None:
        return None
    menu = QMenu(win)
    node = item.node
    if node.is_block:
        menu.addAction(f"Expand {node.name} (one level)", lambda: win.expand_block(view_id))
    else:
        info = doc.node(view_id)
        for path in containers(info) if info else []:
            menu.addAction(f"Collapse {path}", lambda p=path: win.collapse_path(p))
        groups = doc.groups_of(node.name)
        if groups:
            menu.addSeparator()
            menu.addAction(
                f"Select group #{groups[0].id}", lambda: win.select_group(groups[0].id)
            )
        if node.is_layer:
            menu.addSeparator()
            add_plan_items(win, menu, view_id, node.name, groups)
    from app.depth_view import add_block_items

    add_block_items(wb, menu, node.name, getattr(getattr(win, "depth", None), "measure", None))
    menu.addSeparator()
    menu.addAction("Copy name", lambda: QApplication.clipboard().setText(node.name))
    return menu


def add_plan_items(win: Any, menu: QMenu, view_id: int, name: str, groups) -> None:
    """Ratio presets for the layer, ignore, scope with the selected groups."""
    wb = win.workbench
    plan = wb.plan
    current = plan.layer_ratios.get(name)
    ratio_menu = menu.addMenu("Pruning ratio of this layer")
    for r in RATIO_PRESETS:
        act = ratio_menu.addAction(f"{r:.2f}", lambda r=r: wb.set_layer_ratio(name, r))
        act.setCheckable(True)
        act.setChecked(current == r)
    ratio_menu.addSeparator()
    ratio_menu.addAction(
        "Other…", lambda: (win.on_node_clicked(view_id), win.properties.focus_ratio())
    )
    ratio_menu.addAction(
        "Use group/default ratio", lambda: wb.set_layer_ratio(name, None)
    ).setEnabled(current is not None)
    if groups:
        menu.addAction(
            f"Edit ratio of group #{groups[0].id}…",
            lambda: (win.select_group(groups[0].id), win.groups_panel.edit_ratio(groups[0].id)),
        )
    ignored = name in plan.ignored_layers
    menu.addAction(
        "Un-ignore layer" if ignored else "Ignore layer (never prune)",
        lambda: wb.set_ignored([name], not ignored),
    )
    roots = win.groups_panel.selected_roots()
    extra = [r for r in roots if r != name]
    if extra:
        menu.addAction(
            f"Make user scope with {len(extra)} selected group(s)",
            lambda: wb.try_edit(wb.plans.make_scope, [name, *extra]),
        )
