"""Sensitivity heat: one number per group from a scan, and its colour (no plotting deps)."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QColor

HEAT_RATIO = 0.5  # heat = agreement lost when the group alone loses this share


def heat_of(scan: Any, ratio: float = HEAT_RATIO) -> dict[str, float]:
    """Per unit: 1 - agreement at the scanned ratio nearest `ratio` (0 robust, 1 fragile)."""
    out: dict[str, float] = {}
    for name, c in scan.group_curves().items():  # a class curve colours every member
        if c.points:
            p = min(c.points, key=lambda q: abs(q.ratio - ratio))
            out[name] = max(0.0, min(1.0, 1.0 - p.agreement))
    return out


def heat_color(heat: float) -> QColor:
    """Green (robust) through yellow to red (fragile)."""
    h = max(0.0, min(1.0, heat))
    return QColor.fromHsvF((1.0 - h) * 0.33, 0.75, 0.95)
