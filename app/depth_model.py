"""What the workbench knows about depth pruning: the removable blocks and their measurements.

Plain data (no Qt), held by the Workbench (`workbench.depth`, announced on the
`depth_changed` event) so the canvas, the module tree and Properties all show the same
blocks and numbers. Which blocks are REMOVED is not here: that is the plan's
`drop_blocks`, edited through the PlanModel like every other plan setting.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class BlockFacts:
    """One removable residual block: its own parameters, and once measured, its
    importance (1 - cos of its input and output) and what removing it alone saves."""

    name: str
    params: int
    importance: float | None = None
    macs_saved: float | None = None
    params_saved: int | None = None


@dataclasses.dataclass(frozen=True)
class BlockMark:
    """How one canvas node shows depth: the block it is (whole) or lies inside."""

    block: str
    whole: bool
    importance: float | None
    dropped: bool

    def tooltip_line(self) -> str:
        what = "Removable block" if self.whole else f"Inside removable block {self.block}"
        imp = (f"importance 1−cos {self.importance:.4f}" if self.importance is not None
               else "importance not measured (Prune ▸ Measure Block Importance)")
        state = "REMOVED in the plan" if self.dropped else "kept"
        return f"{what} · {imp} · {state}"


@dataclasses.dataclass(frozen=True)
class DepthState:
    """The open version's removable blocks (model order) and what was measured on `data`."""

    blocks: dict[str, BlockFacts] = dataclasses.field(default_factory=dict)
    data: str = ""  # what the importance was measured on; "" = not measured

    @property
    def measured(self) -> bool:
        return any(b.importance is not None for b in self.blocks.values())

    def block_of(self, name: str | None) -> str | None:
        """The removable block `name` is, or lies inside (the innermost one)."""
        if not name:
            return None
        if name in self.blocks:
            return name
        parts = name.split(".")
        for i in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:i])
            if prefix in self.blocks:
                return prefix
        return None

    def mark(self, name: str, dropped: list[str] | tuple[str, ...]) -> BlockMark | None:
        block = self.block_of(name)
        if block is None:
            return None
        return BlockMark(block, block == name, self.blocks[block].importance, block in dropped)

    def with_measurement(self, importance: dict[str, float],
                         savings: dict[str, tuple[float, int]], data: str) -> DepthState:
        blocks = {
            n: dataclasses.replace(
                b, importance=importance.get(n),
                macs_saved=savings[n][0] if n in savings else None,
                params_saved=savings[n][1] if n in savings else None)
            for n, b in self.blocks.items()
        }
        return DepthState(blocks, data)


def depth_state_of(doc: Any) -> DepthState:
    """The removable blocks of a document's model (none without a model, e.g. a summary)."""
    model = getattr(doc, "model", None)
    if model is None:
        return DepthState()
    from engine.depth import find_depth_groups

    blocks = {}
    for g in find_depth_groups(model):
        params = sum(p.numel() for p in g.module.parameters())
        blocks[g.name] = BlockFacts(g.name, int(params))
    return DepthState(blocks)
