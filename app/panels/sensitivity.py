"""Sensitivity views: a group's curve, the Pareto chart of candidate plans, heat colours.

Plain widgets over plain data (ScanResult / Candidate lists); the controller
(app/sensitivity.py) feeds them and turns a click into an undoable plan edit.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.panels.heat import HEAT_RATIO, heat_color, heat_of

__all__ = ["CurvePanel", "ParetoChart", "HEAT_RATIO", "heat_color", "heat_of"]

class CurvePanel(QWidget):
    """Agreement (and accuracy) of one group pruned alone, against its ratio."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("Run Prune ▸ Sensitivity Scan to see how much each group can lose")
        self.label.setWordWrap(True)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(160)
        self.plot.setLabel("bottom", "ratio pruned alone")
        self.plot.setLabel("left", "agreement")
        self.plot.setYRange(0, 1.02)
        self.plot.setXRange(0, 1)
        self.plot.addLegend(offset=(-5, 5))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label)
        lay.addWidget(self.plot)
        self.scan: Any = None
        self.shown: str | None = None
        self.plot.hide()  # an empty chart took the Properties table's room until a scan

    def set_scan(self, scan: Any) -> None:
        self.scan = scan
        self.plot.setVisible(scan is not None)
        if self.shown is not None:
            self.show_unit(self.shown)

    def show_unit(self, name: str | None) -> None:
        self.shown = name
        self.plot.clear()
        if self.scan is None or name is None:
            return
        curve = self.scan.group_curves().get(name)
        if curve is None:
            self.label.setText(f"{name}: not scanned (ignored, locked or not prunable)")
            return
        xs = [0.0] + [p.ratio for p in curve.points]
        agree = [1.0] + [p.agreement for p in curve.points]
        self.plot.plot(xs, agree, pen=pg.mkPen("#1f77b4", width=2), symbol="o",
                       symbolSize=6, name="agreement")
        if self.scan.accuracy_before is not None and curve.points[0].accuracy is not None:
            acc = [self.scan.accuracy_before] + [p.accuracy for p in curve.points]
            self.plot.plot(xs, acc, pen=pg.mkPen("#d62728", width=1, style=Qt.DashLine), symbol="t",
                           symbolSize=6, name="accuracy")
        h = heat_of(self.scan).get(name, 0.0)
        self.label.setText(f"{name}: {curve.channels} channels; agreement lost at "
                           f"{HEAT_RATIO:g}: {h:.0%}")


class ParetoChart(QWidget):
    """Candidate plans: kept MACs (or ms) against predicted agreement; a click picks one."""

    candidateClicked = Signal(int)  # noqa: N815 - index into the candidates given

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(200)
        self.plot.setLabel("left", "predicted agreement")
        self.scatter = pg.ScatterPlotItem(size=9, pen=pg.mkPen("k"), hoverable=True)
        self.scatter.sigClicked.connect(self._clicked)
        self.plot.addItem(self.scatter)
        self.chosen = pg.ScatterPlotItem(size=15, pen=pg.mkPen("#d62728", width=2),
                                         brush=pg.mkBrush(None))
        self.plot.addItem(self.chosen)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        self.candidates: list[Any] = []
        self.cost = "macs"

    def x_of(self, c: Any) -> float:
        return c.latency_ms if self.cost == "latency" and c.latency_ms is not None \
            else c.macs_ratio

    def set_candidates(self, candidates: list[Any], cost: str = "macs",
                       chosen: int | None = None) -> None:
        self.candidates, self.cost = list(candidates), cost
        self.plot.setLabel("bottom", "predicted latency (ms)" if cost == "latency"
                           else "MACs kept")
        spots = [{"pos": (self.x_of(c), c.prediction.agreement), "data": i,
                  "brush": pg.mkBrush("#1f77b4")} for i, c in enumerate(self.candidates)]
        self.scatter.setData(spots)
        self.mark(chosen if chosen is not None else len(self.candidates) - 1)

    def mark(self, index: int) -> None:
        if 0 <= index < len(self.candidates):
            c = self.candidates[index]
            self.chosen.setData([{"pos": (self.x_of(c), c.prediction.agreement)}])
        else:
            self.chosen.clear()

    def _clicked(self, _item: Any, points: Any, *_: Any) -> None:
        if len(points):
            index = int(points[0].data())
            self.mark(index)
            self.candidateClicked.emit(index)
