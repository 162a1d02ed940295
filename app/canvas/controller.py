"""The canvas as a view of the workbench: shows the current version's graph, the plan's
overlay, the selection; collapses and expands modules one level at a time.

Why a class of its own: the window only places the canvas. This object subscribes to
the workbench events (`_on_<name>_change`) and keeps the invariants the user sees: the
preview overlay is re-applied after every relayout, and the block the user expanded or
collapsed stays in view.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QRectF, Signal

from app.canvas.hierarchy import block_paths, paths_at_depth
from app.canvas.prepare import PreparedView, prepare_view
from app.canvas.scene import GraphScene
from app.canvas.view import GraphView
from app.workbench import Selection, Workbench
from app.workers import JobRunner


def child_blocks(all_blocks: dict[str, int], path: str) -> set[str]:
    """Module paths one level below `path` that hold two or more nodes."""
    prefix = path + "."
    depth = path.count(".") + 1
    return {p for p in all_blocks if p.startswith(prefix) and p.count(".") == depth}


class CanvasController(QObject):
    relaidOut = Signal()  # noqa: N815 - a (re)layout is on screen with its overlay

    def __init__(
        self,
        workbench: Workbench,
        scene: GraphScene,
        view: GraphView,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.wb = workbench
        self.scene = scene
        self.view = view
        self.widths: dict[str, tuple[int | None, int | None]] = {}
        self.layers: dict[str, Any] = {}  # LayerPreview by name, for block totals
        self._focus: tuple[str, set[int]] | None = None  # what to keep in view after relayout
        self._blocks: dict[str, int] = {}
        self.layouts = JobRunner(self)
        self.layouts.finished.connect(self._on_relayout)
        ev = workbench.events
        ev.document_changed.connect(self._on_document_change)
        ev.preview_changed.connect(self._on_preview_change)
        ev.selection_changed.connect(self._on_selection_change)
        ev.reveal_requested.connect(self._on_reveal_requested)
        ev.depth_changed.connect(lambda _state: self.show_depth())
        ev.plan_changed.connect(lambda _plan: self.show_depth())
        view.nodeClicked.connect(self.click)
        view.nodeDoubleClicked.connect(self.expand_block)
        view.backgroundClicked.connect(lambda: None)
        self._select_after: str | None = None
        self._refit = False
        self._said: str | None = None  # the status line once the relayout is shown

    # ------------------------------------------------------------------ events

    def _on_document_change(self, doc: Any) -> None:
        self.widths, self.layers, self._focus = {}, {}, None
        if doc is None:
            self.scene.clear()
            self.scene.node_items, self.scene.edge_items, self.scene.graph = {}, [], None
            return
        self._blocks = block_paths(doc.summary.nodes)
        version = self.wb.version
        view = version.view if version is not None else None
        if view is None:
            from app.canvas.prepare import initial_collapse

            view = prepare_view(doc.summary, initial_collapse(doc.summary.nodes))
            if version is not None:
                version.view = view
        self._show(view)
        self.view.show_start()

    def _on_preview_change(self, done: Any) -> None:
        self.widths, self.layers = {}, {}
        if done is not None:
            for lp in done.preview.layers:
                self.widths[lp.name] = (lp.in_after, lp.out_after)
                self.layers[lp.name] = lp
        self.apply_overlay()

    def _on_selection_change(self, sel: Selection) -> None:
        doc = self.wb.document
        if doc is None:
            return
        current = self.view_id_of_name(sel.node) if sel.node else None
        self.scene.set_current(current)
        group = doc.group(sel.group) if sel.group is not None else None
        if group is None:
            self.scene.highlight(())
        else:
            ids = {self.view_id(i) for i in doc.group_node_ids(group)}
            self.scene.highlight(i for i in ids if i is not None)
        self.view.minimap.invalidate()

    def click(self, view_id: int) -> None:
        """A node clicked: select it and the group it roots (or belongs to)."""
        doc = self.wb.document
        item = self.scene.node_items.get(view_id)
        if doc is None or item is None:
            return
        node = item.node
        groups = [] if node.is_block else doc.groups_of(node.name)
        self.wb.select(node.name, groups[0].id if groups else None, node)

    def _on_reveal_requested(self, name: str) -> None:
        """Bring a layer or module into view, expanding only the blocks on its path."""
        doc = self.wb.document
        if doc is None:
            return
        vid = self.view_id_of_name(name)
        item = self.scene.node_items.get(vid) if vid is not None else None
        if item is not None and item.node.name == name:
            self.view.center_on_node(vid)
            self.click(vid)
            return
        info = doc.node_by_name(name)
        path_to = (
            containers_of(info)
            if info is not None
            else [p for p in _prefixes(name) if p in self._blocks][:-1]
        )
        opened = {p for p in self.wb.collapsed if p in path_to}
        keep = set(self.wb.collapsed) - opened
        for p in opened:
            keep |= {c for c in child_blocks(self._blocks, p) if c not in path_to and c != name}
        if info is None and name in self._blocks:
            keep.add(name)
        members = (
            {info.id} if info is not None else {n.id for n in doc.summary.nodes if _inside(n, name)}
        )
        self._select_after = name
        self.set_collapsed(keep, focus=(name, members))

    # ------------------------------------------------------------------ overlay

    def apply_overlay(self) -> None:
        """The plan's widths on layers and before → after MACs/params on blocks; called after
        every preview and every relayout (new items start blank)."""
        self.scene.show_planned(self.widths)
        for item in self.scene.node_items.values():
            if item.node.is_block:
                item.set_block_totals(self.block_totals(item.node.member_ids))
        self.show_depth()

    def show_depth(self) -> None:
        """Removable blocks (workbench.depth) and the plan's removed ones on the canvas."""
        plan = self.wb.plan
        self.scene.show_depth(self.wb.depth, list(plan.drop_blocks) if plan is not None else [])

    def block_totals(self, member_ids: tuple[int, ...]) -> tuple[int, int, int, int] | None:
        """(MACs before, after, params before, after) of a block's layers in the preview."""
        doc = self.wb.document
        if doc is None or not self.layers:
            return None
        totals = [0, 0, 0, 0]
        for sid in member_ids:
            info = doc.node(sid)
            lp = self.layers.get(info.name) if info is not None else None
            if lp is not None:
                totals[0] += lp.macs_before
                totals[1] += lp.macs_after
                totals[2] += lp.params_before
                totals[3] += lp.params_after
        return tuple(totals) if totals[0] or totals[2] else None  # type: ignore[return-value]

    # ------------------------------------------------------------------ ids

    def view_id(self, summary_id: int) -> int | None:
        graph = self.scene.graph
        return graph.owner.get(summary_id) if graph else None

    def view_id_of_name(self, name: str) -> int | None:
        doc = self.wb.document
        if doc is None:
            return None
        info = doc.node_by_name(name)
        if info is not None:
            return self.view_id(info.id)
        graph = self.scene.graph
        return next((n.id for n in graph.nodes if n.name == name), None) if graph else None

    # ------------------------------------------------------------------ collapse / expand

    def set_collapsed(
        self,
        paths: frozenset[str] | set[str],
        focus: tuple[str, set[int]] | None = None,
        refit: bool = False,
    ) -> None:
        doc = self.wb.document
        if doc is None:
            return
        summary, paths = doc.summary, frozenset(paths)
        self.wb.collapsed = paths
        self._focus = focus
        self._refit = refit
        self._said = None
        self.layouts.submit(lambda progress, cancelled: prepare_view(summary, paths), "Layout")

    def expand_block(self, view_id: int) -> None:
        """Open one level: the block's direct sub-modules stay collapsed."""
        item = self.scene.node_items.get(view_id)
        if item is None or not item.node.is_block:
            return
        path = item.node.name
        inner = child_blocks(self._blocks, path)
        folded = f"; {len(inner)} inner blocks still folded" if inner else ""
        self.set_collapsed(
            (self.wb.collapsed - {path}) | inner, focus=(path, set(item.node.member_ids))
        )
        self._said = f"Expanded {path} ({len(item.node.member_ids)} nodes{folded})"

    def collapse_path(self, path: str) -> None:
        doc = self.wb.document
        if doc is None:
            return
        inside = {p for p in self.wb.collapsed if p.startswith(path + ".")}
        members = {n.id for n in doc.summary.nodes if _inside(n, path)}
        self.set_collapsed((self.wb.collapsed - inside) | {path}, focus=(path, members))
        self._said = f"Collapsed {path} ({len(members)} nodes, double-click to expand)"

    def collapse_all(self) -> None:
        doc = self.wb.document
        if doc is not None:
            self.set_collapsed(paths_at_depth(doc.summary.nodes, 1), refit=True)

    def expand_all(self) -> None:
        self.set_collapsed(frozenset(), refit=True)

    def _on_relayout(self, view: PreparedView) -> None:
        center = self.view.visible_scene_rect().center()
        version = self.wb.version
        if version is not None:
            version.view = view
        self._show(view)
        if self._focus is not None:
            self.keep_in_view(self._focus[1])
            self._focus = None
        elif self._refit:
            self.view.show_start()
        else:
            self.view.centerOn(center)
        self.wb.events.view_changed.emit(self.wb.collapsed)
        if self._said is not None:  # after the selection moved: the block's name is gone
            self.wb.events.status.emit(self._said)
            self._said = None
        if self._select_after is not None:
            vid = self.view_id_of_name(self._select_after)
            self._select_after = None
            if vid is not None:
                self.click(vid)

    def keep_in_view(self, summary_ids: set[int]) -> None:
        """Fit the nodes that came from (or went into) a block, or show its top readably."""
        rect = QRectF()
        for sid in summary_ids:
            vid = self.view_id(sid)
            item = self.scene.node_items.get(vid) if vid is not None else None
            if item is not None:
                rect = rect.united(item.rect.translated(item.pos()))
        if rect.isEmpty():
            return
        rect = rect.adjusted(-60, -60, 60, 60)
        vp = self.view.viewport().rect()
        scale = min(vp.width() / rect.width(), vp.height() / rect.height())
        if scale >= 0.38:  # fits legibly: show all of it
            self.view.set_scale(min(1.0, 0.95 * scale))
            self.view.centerOn(rect.center())
        else:  # too tall: readable zoom at its top
            self.view.set_scale(0.6)
            top = rect.top() + vp.height() / 2 / 0.6
            self.view.centerOn(rect.center().x(), top)
        self.view.minimap.invalidate()

    def _show(self, view: PreparedView) -> None:
        self.wb.collapsed = view.graph.collapsed
        self.scene.show_graph(view.graph, view.layout)
        self.apply_overlay()
        sel = self.wb.selection
        shown = sel.view_node is None or any(
            n.id == sel.view_node.id and n.name == sel.view_node.name for n in view.graph.nodes)
        if shown:
            self._on_selection_change(sel)
        else:  # the selected block was expanded (or the layer folded): no stale Properties
            vid = self.view_id_of_name(sel.node) if sel.node else None
            item = self.scene.node_items.get(vid) if vid is not None else None
            self.wb.select(item.node.name if item else None, sel.group, item.node if item else None)
        self.view.minimap.invalidate()
        self.relaidOut.emit()


def containers_of(node: Any) -> list[str]:
    from app.canvas.hierarchy import containers

    return containers(node)


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _inside(node: Any, path: str) -> bool:
    from app.canvas.hierarchy import containers

    return path in containers(node)
