"""Find a layer by name and step through the matches ("Enter again: next match")."""

from __future__ import annotations

from typing import Any


class LayerSearch:
    """Keeps the hits of the last text; `next` moves the canvas to the next one."""

    def __init__(self, workbench: Any, canvas: Any) -> None:
        self.wb = workbench
        self.canvas = canvas
        self.reset()

    def reset(self) -> None:
        self.text, self.hits, self.pos = "", [], -1

    def find(self, text: str) -> list[int]:
        """Summary ids whose name contains `text` (case-insensitive), exact match first."""
        doc = self.wb.document
        if doc is None or not text.strip():
            return []
        t = text.strip().lower()
        nodes = doc.summary.nodes
        exact = [n.id for n in nodes if n.name.lower() == t]
        return exact + [n.id for n in nodes if t in n.name.lower() and n.id not in exact]

    def next(self, text: str) -> tuple[int | None, str]:
        """(view node shown, status message) for the next match of `text`."""
        if text != self.text:
            self.text, self.hits, self.pos = text, self.find(text), -1
        if not self.hits:
            return None, f"No layer matches “{text}”"
        self.pos = (self.pos + 1) % len(self.hits)
        summary_id = self.hits[self.pos]
        view_id = self.canvas.view_id(summary_id)
        if view_id is None:
            return None, ""
        self.canvas.view.center_on_node(view_id)
        self.canvas.click(view_id)
        name = self.wb.document.node(summary_id).name
        block = self.canvas.scene.node_items[view_id].node.name
        inside = "" if view_id == summary_id else f" (inside collapsed {block})"
        return view_id, f"{name}{inside}: match {self.pos + 1} of {len(self.hits)}"
