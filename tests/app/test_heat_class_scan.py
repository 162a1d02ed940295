"""A scan by isomorphic class colours every member group, not only the class's first."""

from __future__ import annotations

import pytest

from engine.plan.scan import ScanCurve, ScanPoint, ScanResult

pytest.importorskip("PySide6")

from app.panels.heat import heat_of  # noqa: E402


def _point(ratio: float, agreement: float) -> ScanPoint:
    return ScanPoint(ratio, 8, 100, 10, 0.1, agreement)


def _scan(curves: list[ScanCurve]) -> ScanResult:
    return ScanResult("k", "l1", {}, [0.1, 0.5], 16, 1000, 100, None, curves,
                      units="isomorphic")


def test_class_heat_reaches_every_member_and_groups_keep_their_own():
    cls = ScanCurve("b.0.conv1 (+2 isomorphic)", "class", ["b.0.conv1", "b.1.conv1", "b.2.conv1"],
                    16, [_point(0.1, 0.9), _point(0.5, 0.25)])
    group = ScanCurve("stem", "group", ["stem"], 16, [_point(0.1, 1.0), _point(0.5, 0.6)])
    heat = heat_of(_scan([cls, group]))
    assert heat == pytest.approx({"b.0.conv1": 0.75, "b.1.conv1": 0.75, "b.2.conv1": 0.75,
                                  "stem": 0.4})
