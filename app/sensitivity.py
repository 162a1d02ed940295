"""Sensitivity scan and target planning in the GUI: jobs off the GUI thread, results as
plain data, every accepted plan one undoable edit of the PruningController's plan.

`install(window)` adds the menu actions, the curve (in the properties panel), the heat
overlay (groups table + canvas) and the dialog, so the window needs one line.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from app.workers import JobFailure, JobRunner

SCAN_SAMPLES = 256


def calibration_batches(doc: Any, kind: str, folder: str, data: Any = None) -> list[Any]:
    """The scan's data (also block importance and depth costs): the data panel's
    calibration split, the demo's TRAINING digits, or the chosen image folder."""
    import torch

    if kind == "data" and data is not None:
        from app import engine_api
        from engine.data import subset

        run = engine_api.prepare_data(doc, data)
        if run.calibration is None:
            raise ValueError("the data panel's dataset has no calibration split")
        run.calibration = subset(run.calibration, SCAN_SAMPLES)
        return list(run.calibration_loader())

    if kind == "demo":
        from engine.data.digits import load_split

        x, y = load_split("train")
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        return [(x[i:i + 128], y[i:i + 128]) for i in range(0, len(x), 128)]
    if kind == "folder":
        from engine.data import ModelFacts, make_loader, open_data, subset

        facts = ModelFacts(source=doc.source, model=doc.model, example_inputs=doc.example_inputs)
        return list(make_loader(subset(open_data(folder, model_facts=facts), SCAN_SAMPLES), 64,
                                num_workers=0))
    raise ValueError("this needs real data: choose a dataset in the data panel, or the demo "
                     "digits or an image folder as calibration data in the settings panel")


class SensitivityController(QObject):
    scanReady = Signal(object)  # noqa: N815 - ScanResult
    scanFailed = Signal(str)  # noqa: N815
    planned = Signal(object)  # noqa: N815 - PlanResult
    planFailed = Signal(str)  # noqa: N815
    progress = Signal(float, str)

    def __init__(self, pruning: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pruning = pruning
        self.scan: Any = None
        self.tables: dict[str, Any] = {}  # latency table per device (cpu / ort / cuda)
        self._previewer: Any = None
        self._doc: Any = None
        self._costs: dict[str, Any] = {}
        self._costs_key: Any = None
        self.jobs = JobRunner(self, cancel_types=(_cancelled_type(),))
        self.jobs.pool.setMaxThreadCount(1)
        self.jobs.progress.connect(self.progress)
        self.jobs.finished.connect(self._on_done)
        self.jobs.failed.connect(self._on_failed)

    # ------------------------------------------------------------ state
    def reset(self) -> None:
        self.jobs.cancel(quiet=True)
        self.scan, self._previewer = None, None
        self.tables = {}
        self._doc = self.pruning.document

    def _ensure_previewer(self) -> Any:
        from engine.plan.scan import ScanPreviewer

        doc = self.pruning.document
        if self._previewer is None or self._doc is not doc:
            self._doc = doc
            self._previewer = ScanPreviewer(doc.model, doc.example_inputs, doc.graph)
        return self._previewer

    def latency_before_ms(self, device: str = "cpu") -> float | None:
        table = self.tables.get(device)
        return table.full_model_ms if table is not None else None

    # ------------------------------------------------------------ jobs
    def start_scan(self) -> None:
        doc = self.pruning.document
        if doc is None or doc.model is None:
            self.scanFailed.emit("open a model first")
            return
        kind, folder = self.pruning.calibration
        options = self.pruning.data
        base = self.pruning.plan.replace(source=None)

        def job(progress, cancelled) -> Any:
            from engine.plan.scan import ScanSettings, sensitivity_scan

            data = calibration_batches(doc, kind, folder, options)
            pv = self._ensure_previewer()
            return sensitivity_scan(
                doc.model, doc.example_inputs, data, base, previewer=pv,
                settings=ScanSettings(max_samples=SCAN_SAMPLES),
                progress=lambda d, t, m: progress(d / max(t, 1), f"Scanning: {m}"),
                cancel=cancelled)

        self.jobs.submit(job, "sensitivity scan")

    def plan_for(self, kind: str, value: float, allow_drop_blocks: bool = False,
                 device: str = "cpu") -> None:
        """`allow_drop_blocks`: whole residual blocks are moves too, each priced by the
        fidelity lost with it removed alone on the scan's data (measured once per model).
        `device`: where latency is measured and predicted (cpu = PyTorch CPU, ort = ONNX
        Runtime CPU, cuda), as `arborist plan --device`."""
        if self.scan is None:
            self.planFailed.emit("run the sensitivity scan first (Prune ▸ Sensitivity Scan)")
            return
        scan, base, doc = self.scan, self.pruning.plan.replace(), self.pruning.document
        cal, options = self.pruning.calibration, self.pruning.data

        def job(progress, cancelled) -> Any:
            from engine.latency import cached_table, check_device, predict_plan
            from engine.plan.planner import Target, plan_for_target

            target = Target(kind, value)  # PlanError for a bad value: shown in the dialog
            check_device(device)  # ValueError saying why (no GPU, no onnxruntime): shown
            pv = self._ensure_previewer()
            costs = (self._block_costs(doc, cal, options, progress, cancelled)
                     if allow_drop_blocks else None)
            if device not in self.tables:
                where = {"cpu": "this CPU", "ort": "ONNX Runtime (CPU)"}.get(device, device)
                progress(0.1, f"Measuring layer latencies on {where} (once per model)…")
                self.tables[device] = cached_table(doc.model, doc.example_inputs, device=device)
            table = self.tables[device]
            if target.kind == "latency":  # closed loop: the pruned copy is timed, then re-aimed
                from engine.latency import plan_latency_budget

                progress(0.5, "Planning, then timing the pruned model…")
                return plan_latency_budget(scan, pv, table, doc.model, doc.example_inputs,
                                           target.value, base=base, block_costs=costs).result
            return plan_for_target(scan, pv, target, base=base, block_costs=costs,
                                   latency=lambda p: predict_plan(table, pv, p))

        self.jobs.submit(job, "plan for a target")

    def _block_costs(self, doc: Any, cal: tuple[str, str], options: Any,
                     progress: Any, cancelled: Any) -> dict[str, Any]:
        """Each removable block's fidelity cost, cached per document and data (one forward
        pass over the data per block: about a minute for resnet18 on 64 samples, 2 CPUs)."""
        from engine.plan.depth_cost import block_costs

        key = (id(doc), cal, repr(options))
        if self._costs_key != key:
            progress(0.05, "Measuring each block removed alone…")
            data = calibration_batches(doc, cal[0], cal[1], options)
            self._costs = block_costs(
                doc.model, data, max_samples=SCAN_SAMPLES, cancel=cancelled,
                progress=lambda d, t, m: progress(0.05 + 0.4 * d / max(t, 1), f"Depth: {m}"))
            self._costs_key = key
        return self._costs

    def plan_of(self, candidate: Any) -> Any:
        from engine.plan.planner import plan_from_ratios

        return plan_from_ratios(self.pruning.plan, self.scan, candidate.ratios,
                                drop_blocks=candidate.dropped)

    def accept(self, plan: Any, text: str = "Plan for a target") -> None:
        """One undoable edit (Ctrl+Z restores the plan before)."""
        self.pruning.plans.replace(plan, text)  # the workbench's PlanModel

    def _on_done(self, result: Any) -> None:
        from engine.plan.scan import ScanResult

        if isinstance(result, ScanResult):
            self.scan = result
            self.scanReady.emit(result)
        else:
            self.planned.emit(result)

    def _on_failed(self, failure: JobFailure) -> None:
        message = failure.message
        if self.scan is None:
            self.scanFailed.emit(message)
        self.planFailed.emit(message)


def _cancelled_type() -> type:
    from engine.plan.apply import Cancelled

    return Cancelled


def install(window: Any) -> SensitivityController:
    """Wire scan, heat overlay, curves and the target dialog into the main window."""
    from PySide6.QtGui import QAction

    from app.panels.heat import heat_of
    from app.panels.sensitivity import CurvePanel

    ctl = SensitivityController(window.pruning, window)
    window.sensitivity = ctl
    curve = CurvePanel(window.properties)
    window.properties.layout().addWidget(curve)
    window.sensitivity_curve = curve
    menu = next((a.menu() for a in window.menuBar().actions() if "Prune" in a.text()), None)
    scan_act = QAction("Sensitivity &Scan", window)
    scan_act.setStatusTip("Prune each group alone at 0.1…0.9 and measure fidelity on the "
                          "calibration data")
    scan_act.triggered.connect(ctl.start_scan)
    cancel_act = QAction("Cancel Sensitivity Scan", window)
    cancel_act.triggered.connect(ctl.jobs.cancel)
    plan_act = QAction("Plan for a &Target…", window)
    plan_act.triggered.connect(lambda: open_plan_dialog(window))
    if menu is not None:
        menu.addSeparator()
        menu.addAction(scan_act)
        menu.addAction(cancel_act)
        menu.addAction(plan_act)
    window.act_scan, window.act_plan_target = scan_act, plan_act
    window.act_cancel_scan = cancel_act
    ctl.jobs.cancelled.connect(lambda: window.status_label.setText("Sensitivity scan cancelled"))

    def on_scan(scan: Any) -> None:
        heat = heat_of(scan)
        window.groups_panel.model.set_heat(heat)
        doc = window.pruning.document
        by_layer = {}
        if doc is not None:
            for g in doc.summary.groups:
                if g.root in heat:
                    for m in g.members:
                        by_layer.setdefault(m.node, heat[g.root])
        window.scene.show_heat(by_layer)
        curve.set_scan(scan)
        window.status_label.setText(f"Sensitivity scan: {len(scan.curves)} groups on "
                                    f"{scan.samples} samples ({scan.seconds:.1f} s)")

    def on_group(group_id: int) -> None:
        doc = window.pruning.document
        group = doc.group(group_id) if doc is not None and group_id >= 0 else None
        curve.show_unit(group.root if group else None)

    ctl.scanReady.connect(on_scan)
    ctl.scanFailed.connect(lambda m: window.status_label.setText(f"Scan failed: {m}"))
    ctl.progress.connect(lambda f, m: window.status_label.setText(m))
    # the workbench's selection (table row, canvas click, module tree) picks the curve
    window.workbench.events.selection_changed.connect(
        lambda sel: on_group(sel.group if sel.group is not None else -1)
    )
    window.documentChanged.connect(lambda: (ctl.reset(), curve.set_scan(None),
                                            window.groups_panel.model.set_heat({}),
                                            window.scene.show_heat({})))
    return ctl


def open_plan_dialog(window: Any) -> Any:
    from app.dialogs.plan_target import PlanTargetDialog

    dialog = PlanTargetDialog(window.sensitivity, window)
    dialog.accepted.connect(lambda: dialog.chosen_plan is not None
                            and window.sensitivity.accept(dialog.chosen_plan))
    window.last_dialog = dialog
    dialog.show()
    return dialog
