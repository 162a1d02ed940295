"""What a pruning run produced, before the user decides to keep it: totals, the output
check against the original, metrics before -> after on the evaluation data (any model
with data: the data panel's evaluation split, or the demo's held-out digits), and every
layer before/after."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.engine_api import PruneResult
from app.panels.preview import change_text


def _arrow(a: int | None, b: int | None) -> str:
    if a is None and b is None:
        return ""
    return f"{a} → {b}" if a != b else str(a)


def output_check_text(r: PruneResult) -> str:
    if r.output_shape_after is None:
        return "the model returned no tensor to compare"
    shape = f"output shape {r.output_shape_before} → {r.output_shape_after}"
    if r.max_abs_diff is None:
        return shape + " (shapes differ: not comparable)"
    text = f"{shape}; max |pruned − original| on the example input = {r.max_abs_diff:.4g}"
    scale = getattr(r, "output_scale", None)
    if scale:  # a bare 54.79 means nothing: say what it is relative to
        text += (f" ({100 * r.max_abs_diff / scale:.1f} % of the largest original output, "
                 f"{scale:.4g}; pruning changes outputs until accuracy is recovered)")
    return text


METRIC_ROWS = (  # Metrics field, row label, shown as a percentage
    ("accuracy", "Accuracy", True),
    ("top5", "Top-5 accuracy", True),
    ("agreement", "Agreement with the original", True),
    ("kl", "KL to the original (nats)", False),
    ("cosine", "Cosine to the original", False),
    ("relative_error", "Relative error vs the original", False),
    ("perplexity", "Perplexity", False),
)


def metric_rows(r: PruneResult) -> dict[str, str]:
    """Row label -> "before → after" for every metric measured on the evaluation data."""
    before, after = r.metrics_before, r.metrics_after
    if after is None:
        return {}
    rows = {}
    for name, label, percent in METRIC_ROWS:
        b, a = getattr(before, name, None), getattr(after, name, None)
        if a is None:
            continue
        show = (lambda v: f"{100 * v:.2f} %") if percent else (lambda v: f"{v:.4g}")
        rows[label] = f"{show(b)} → {show(a)}" if b is not None else show(a)
    rows["Evaluated on"] = (
        f"{r.evaluation_note} ({after.samples} samples"
        + (f", {after.skipped} unreadable skipped" if after.skipped else "")
        + ", no fine-tuning)"
    )
    return rows


def latency_text(r: PruneResult) -> str | None:
    """'12.3 ms → 4.1 ms (3.00× faster; MACs 3.80× fewer), median of 9 interleaved runs …'."""
    lat = r.latency
    if lat is None:
        return None
    if lat.before_s is None or lat.after_s is None:
        return f"not measured ({lat.error})"
    macs = r.macs_before / r.macs_after if r.macs_after else float("nan")
    speedup = lat.before_s / lat.after_s
    text = (
        f"{1e3 * lat.before_s:.3g} ms → {1e3 * lat.after_s:.3g} ms "
        f"({speedup:.2f}× faster; MACs {macs:.2f}× fewer), "
        f"median of {lat.rounds} interleaved runs on the example input"
    )
    if speedup < 0.8 * macs:  # the benchmarks' "within 20 %" line
        text += (
            ". Less than the MACs suggest: per-layer overheads and per-channel work "
            "(norms, activations, depthwise convs) shrink less than the MACs do"
        )
    return text


class PruneResultDialog(QDialog):
    """Accept keeps the pruned copy as the open model; Discard throws it away."""

    def __init__(self, result: PruneResult, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pruning result")
        self.result_data = result
        r = result
        form = QFormLayout()
        self.rows: dict[str, str] = {
            "MACs": change_text(r.macs_before, r.macs_after),
            "Parameters": change_text(r.params_before, r.params_after),
            "Steps": str(r.steps_done),
            "Output check": output_check_text(r),
        }
        attention = getattr(r, "attention", None)
        if attention is not None:  # a prune that left attention at full width says so
            more = attention.unsummarised_reasons
            self.rows["Attention"] = attention.summary() + (
                f"; also locked: {'; '.join(more)}" if more else "")
        if r.latency is not None:
            self.rows[f"Latency ({r.latency.device.upper()})"] = latency_text(r)
        self.rows.update(metric_rows(r))
        if r.metrics_after is None:
            self.rows["Accuracy"] = "not measured: choose evaluation data in the Data panel"
        if r.calibration_note:
            self.rows["Importance data"] = r.calibration_note
        for key, value in self.rows.items():
            label = QLabel(value, self)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            form.addRow(key, label)

        # a set of names: `c in list_of_dataclasses` made this table quadratic (~1 s of
        # frozen GUI on efficientnet_v2_l's 700 layers)
        changed = {c.name for c in r.layers if c.params_before != c.params_after}
        self.table = QTableWidget(len(r.layers), 5, self)
        self.table.setHorizontalHeaderLabels(["Layer", "Type", "In", "Out", "Params"])
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setAlternatingRowColors(True)
        for row, c in enumerate(r.layers):
            cells = (
                c.name,
                c.kind,
                _arrow(c.in_before, c.in_after),
                _arrow(c.out_before, c.out_after),
                _arrow(c.params_before, c.params_after),
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c.name in changed:
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                self.table.setItem(row, col, item)
        buttons = QDialogButtonBox(self)
        self.accept_button = buttons.addButton("Keep pruned model", QDialogButtonBox.AcceptRole)
        self.discard_button = buttons.addButton("Discard", QDialogButtonBox.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel(f"{len(changed)} of {len(r.layers)} layers changed:", self))
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.resize(760, 560)
