"""Live preview: total MACs/params before → after and channels per layer, from the engine's
exact Preview (never an estimate made up here).

The panel shows whatever Preview it is handed; the window decides when to compute one
(debounced, in a worker) and drops stale results, so this stays a pure view.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.canvas.names import distinct_short_names

BEFORE_RGBA = (150, 150, 160, 150)
AFTER_RGBA = (37, 99, 235, 230)


def _swatch(rgba: tuple[int, int, int, int], label: str) -> str:
    r, g, b, _ = rgba
    return f"<span style='color: #{r:02x}{g:02x}{b:02x}'>&#9632;</span> {label}"


LEGEND_HTML = f"{_swatch(BEFORE_RGBA, 'before')}&nbsp;&nbsp;{_swatch(AFTER_RGBA, 'after')}"

NORM_KINDS = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm")


def fmt_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f}"


def change_text(before: int, after: int) -> str:
    """'1.23 M → 0.61 M (49.6 % kept, −50.4 %)'."""
    if before <= 0:
        return f"{fmt_count(before)} → {fmt_count(after)}"
    kept = 100.0 * after / before
    return f"{fmt_count(before)} → {fmt_count(after)}  ({kept:.1f} % kept, {kept - 100.0:+.1f} %)"


def chart_layers(layers: list[Any]) -> list[Any]:
    """Layers worth a bar: the ones whose output width the plan changes (norms left out,
    they mirror their conv). A locked 1000-way classifier would otherwise flatten every
    other bar; the Layers tab lists everything. With no change at all, every layer."""
    own = [lp for lp in layers if lp.out_before and not any(k in lp.type for k in NORM_KINDS)]
    changed = [lp for lp in own if lp.out_after != lp.out_before]
    return changed or own


class LayerAxis(pg.AxisItem):
    """The bar chart's x axis: one layer name per labelled bar, as many as fit apart.

    Why not fixed ticks: ticks chosen once per preview (by a 7 px/character guess over
    the whole widget's width) overlapped when the panel was narrower or zoomed, and
    pyqtgraph silently drops a label that crosses the axis end, so DenseNet's chart named
    no bar at all. Here the spacing follows the axis's own pixels and the tick font's
    real widths every time the view changes, and labels stay inside the axis.
    """

    GAP = 12.0  # px between neighbouring labels

    def __init__(self, orientation: str = "bottom", **kw: Any) -> None:
        super().__init__(orientation, **kw)
        self.names: list[str] = []

    def set_names(self, names: list[str]) -> None:
        self.names = list(names)
        self.picture = None  # pyqtgraph's cached drawing
        self.update()

    def _metrics(self) -> QFontMetricsF:
        font = self.style.get("tickFont")
        return QFontMetricsF(font if font is not None else self.font())

    def tickValues(self, minVal: float, maxVal: float, size: float):  # noqa: N802, N803
        n = len(self.names)
        if not n or size <= 0 or maxVal <= minVal:
            return []
        px = size / (maxVal - minVal)  # pixels per bar
        lo, hi = max(0, int(-(-minVal // 1))), min(n - 1, int(maxVal // 1))
        if lo > hi:
            return []
        fm = self._metrics()
        widths = [fm.horizontalAdvance(self.names[i]) for i in range(lo, hi + 1)]
        step = max(1, int(-(-(max(widths) + self.GAP) // px)))
        values = []
        for i in range(lo, hi + 1):
            if i % step != step // 2 % step:  # fixed phase: labels do not hop while panning
                continue
            centre, half = (i - minVal) * px, widths[i - lo] / 2
            if centre - half >= 0 and centre + half <= size:  # else pyqtgraph drops it
                values.append(float(i))
        return [(float(step), values)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        n = len(self.names)
        return [self.names[int(round(v))] if 0 <= round(v) < n else "" for v in values]


class PreviewPanel(QWidget):
    """Totals, a bar per changed layer and the layer table of the current preview."""

    def __init__(self, parent: QWidget | None = None, workbench: Any = None) -> None:
        super().__init__(parent)
        self.wb = None
        self.preview: Any = None
        self.macs_label = QLabel("MACs: —", self)
        self.params_label = QLabel("Params: —", self)
        self.state_label = QLabel("Open a model to preview a pruning plan.", self)
        self.state_label.setWordWrap(True)
        self.state_label.setEnabled(False)
        for lab in (self.macs_label, self.params_label):
            lab.setTextInteractionFlags(Qt.TextSelectableByMouse)
            f = lab.font()
            f.setBold(True)
            lab.setFont(f)

        self.axis = LayerAxis("bottom")
        self.plot = pg.PlotWidget(self, axisItems={"bottom": self.axis})
        self.plot.setBackground(None)
        self.plot.setLabel("left", "channels")
        self.plot.setLabel("bottom", "layer")
        self.plot.showGrid(y=True, alpha=0.25)
        self.plot.setMouseEnabled(x=True, y=False)
        self.bars_before = pg.BarGraphItem(
            x=[], height=[], width=0.8, brush=pg.mkBrush(*BEFORE_RGBA), pen=None
        )
        self.bars_after = pg.BarGraphItem(
            x=[], height=[], width=0.5, brush=pg.mkBrush(*AFTER_RGBA), pen=None
        )
        self.plot.addItem(self.bars_before)
        self.plot.addItem(self.bars_after)
        self.chart_names: list[str] = []
        self._bars: list[Any] = []
        self.plot.scene().sigMouseMoved.connect(self._hover)

        self.table = QTableWidget(0, 5, self)
        self.table.setHorizontalHeaderLabels(["Layer", "Type", "Out ch", "Params", "MACs"])
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setAlternatingRowColors(True)

        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.plot, "Channels per layer")
        self.tabs.addTab(self.table, "Layers")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.macs_label)
        layout.addWidget(self.params_label)
        layout.addWidget(self.state_label)
        layout.addWidget(self.tabs, 1)
        if workbench is not None:
            self.attach(workbench)

    def attach(self, wb: Any) -> None:
        self.wb = wb
        wb.events.preview_changed.connect(self._on_preview_change)
        wb.events.preview_state.connect(self.set_state)
        wb.events.document_changed.connect(
            lambda doc: self.clear("Computing the preview…" if doc is not None else "")
        )

    def _on_preview_change(self, done: Any) -> None:
        if done is None:
            self.clear(self.state_label.text())
            return
        p = done.preview
        n = sum(1 for lp in p.layers if lp.out_after != lp.out_before)
        self.show_preview(
            p, f"{n} layers change · preview computed in {1000 * done.seconds:.0f} ms"
        )

    def set_theme(self, dark: bool) -> None:
        """The chart follows the application theme (pyqtgraph draws its own colours)."""
        fg = "#e6e9ee" if dark else "#202124"
        self.plot.setBackground("#1e2126" if dark else "w")
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen(pg.mkPen(fg))
            axis.setTextPen(pg.mkPen(fg))
        self.plot.getPlotItem().titleLabel.setText(
            self.plot.getPlotItem().titleLabel.text, color=fg
        )
        self.dark = dark

    def clear(self, message: str = "") -> None:
        self.preview = None
        self.macs_label.setText("MACs: —")
        self.params_label.setText("Params: —")
        self.state_label.setText(message)
        self.bars_before.setOpts(x=[], height=[])
        self.bars_after.setOpts(x=[], height=[])
        self.chart_names = []
        self.axis.set_names([])
        self._bars = []
        self.table.setRowCount(0)

    def set_state(self, message: str) -> None:
        self.state_label.setText(message)

    def show_preview(self, preview: Any, note: str = "") -> None:
        """Show an engine Preview: totals, bars of out-channels per layer, the layer table."""
        self.preview = preview
        self.macs_label.setText("MACs: " + change_text(preview.macs_before, preview.macs_after))
        self.params_label.setText(
            "Params: " + change_text(preview.params_before, preview.params_after)
        )
        self.state_label.setText(note)
        shown = chart_layers(preview.layers)
        xs = list(range(len(shown)))
        self.chart_names = [lp.name for lp in shown]
        self._bars = shown
        self.bars_before.setOpts(x=xs, height=[lp.out_before for lp in shown])
        self.bars_after.setOpts(x=xs, height=[lp.out_after for lp in shown])
        # the shortest tail that tells the bars apart ("3.mlp.0", not "mlp.0" three times);
        # the axis names as many bars as fit apart (the hover tooltip and the table name all)
        names = distinct_short_names([lp.name for lp in shown])
        self.axis.set_names([names[lp.name] for lp in shown])
        changed = any(lp.out_after != lp.out_before for lp in shown)
        title = f"{len(shown)} layers whose width changes" if changed else "no layer changes width"
        # the key goes in the title: a legend item inside the plot covered the tallest bars
        color = "#e6e9ee" if getattr(self, "dark", False) else None
        self.plot.setTitle(f"{title}&nbsp;&nbsp;&nbsp;{LEGEND_HTML}", size="9pt", color=color)
        if shown:
            self.plot.setXRange(-0.8, len(shown) - 0.2, padding=0)
            self.plot.setYRange(0, max(lp.out_before for lp in shown) * 1.08, padding=0)
        self._fill_table(preview.layers)

    def _hover(self, pos: Any) -> None:
        """Tooltip naming the bar under the mouse (tick labels can name only some)."""
        x = self.plot.getPlotItem().vb.mapSceneToView(pos).x()
        i = round(x)
        if 0 <= i < len(self._bars) and abs(x - i) <= 0.4:
            lp = self._bars[i]
            self.plot.setToolTip(f"{lp.name} ({lp.type}): {lp.out_before} → {lp.out_after}")
        else:
            self.plot.setToolTip("")

    def _fill_table(self, layers: list[Any]) -> None:
        self.table.setRowCount(len(layers))
        for row, lp in enumerate(layers):
            cells = (
                lp.name,
                lp.type,
                f"{lp.out_before} → {lp.out_after}",
                f"{fmt_count(lp.params_before)} → {fmt_count(lp.params_after)}",
                f"{fmt_count(lp.macs_before)} → {fmt_count(lp.macs_after)}",
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col >= 2:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if col == 2 and lp.out_after != lp.out_before:
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                self.table.setItem(row, col, item)
