"""The workbench window: canvas in the middle, groups and properties docked, slow work
in the background.

State lives in a few plain fields (the open Document, the collapsed module
paths, the selected group); every slow step (load, trace, layout) runs in a
JobRunner, and a failure leaves the previous document untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QApplication,
    QCompleter,
    QDockWidget,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QToolBar,
    QWidget,
)

from app import engine_api
from app.canvas.hierarchy import containers
from app.canvas.prepare import AUTO_COLLAPSE_OVER, AUTO_COLLAPSE_TARGET, PreparedView, prepare_view
from app.canvas.scene import GraphScene
from app.canvas.style import THEMES
from app.canvas.view import GraphView
from app.dialogs.arch_picker import ArchPickerDialog
from app.dialogs.builtin import BuiltinModelDialog
from app.dialogs.export import ExportDialog
from app.dialogs.input_shape import InputShapeDialog
from app.dialogs.model_code import ModelCodeDialog
from app.dialogs.prune_result import PruneResultDialog
from app.dialogs.trust import make_trust_dialog
from app.document import DEMO_SOURCE, Document
from app.panels.data import DataPanel
from app.panels.groups import GroupsPanel
from app.panels.preview import PreviewPanel
from app.panels.properties import PropertiesPanel
from app.panels.settings import SettingsPanel
from app.plan_edits import group_ratios_shown
from app.pruning import PreviewDone, PruningController, SolveDone
from app.settings import Preferences, default_settings
from app.theme import apply_theme
from app.workers import JobFailure, JobRunner

Loader = Callable[..., Document]
MODEL_FILTER = "Models (*.pt *.pth *.pt2 *.bin *.ckpt *.onnx *.safetensors);;All files (*)"
PLAN_FILTER = "Pruning plans (*.json);;All files (*)"
RATIO_PRESETS = (0.0, 0.25, 0.5, 0.75)


class LoadResult:
    """What a load job hands back: the document plus its first view."""

    def __init__(self, document: Document, view: PreparedView) -> None:
        self.document = document
        self.view = view


class MainWindow(QMainWindow):
    documentChanged = Signal()  # noqa: N815 (Qt naming)
    viewChanged = Signal()  # noqa: N815 - emitted after every (re)layout is on screen

    def __init__(
        self,
        settings: QSettings | None = None,
        auto_open: bool = True,
        loader: Loader | None = None,
    ) -> None:
        super().__init__()
        self.prefs = Preferences(settings if settings is not None else default_settings())
        self.loader: Loader = loader or engine_api.load_and_trace
        self.document: Document | None = None
        self.collapsed: frozenset[str] = frozenset()
        self.selected_group: int | None = None
        self.last_dialog: QWidget | None = None
        self.result_dialog: PruneResultDialog | None = None
        self.export_dialog: ExportDialog | None = None
        self._search_hits: list[int] = []
        self._search_pos = -1
        self._search_text = ""
        self.setWindowTitle("Arborist")
        self.setAcceptDrops(True)

        self.loads = JobRunner(self, cancel_types=(engine_api.LoadCancelled,))
        self.loads.started.connect(self._on_job_started)
        self.loads.progress.connect(self._on_job_progress)
        self.loads.finished.connect(self._on_loaded)
        self.loads.failed.connect(self._on_load_failed)
        self.loads.cancelled.connect(self._on_load_cancelled)
        self.layouts = JobRunner(self)
        self.layouts.finished.connect(self._on_relayout)
        self.layouts.failed.connect(
            lambda f: self._show_error("Layout failed", f.message, f.details)
        )

        theme = self.prefs.theme()
        self.scene = GraphScene(THEMES[theme], self)
        self.view = GraphView(self.scene, self)
        self.view.nodeClicked.connect(self.on_node_clicked)
        self.view.nodeDoubleClicked.connect(self._on_node_double_clicked)
        self.view.nodeContextMenu.connect(self._node_menu)
        self.view.zoomChanged.connect(lambda s: self.zoom_label.setText(f"{s * 100:.0f}%"))
        self.setCentralWidget(self.view)

        self.groups_panel = GroupsPanel(self)
        self.groups_panel.groupSelected.connect(self._on_group_selected)
        self.properties = PropertiesPanel(self)
        self.groups_dock = self._dock(
            "Groups", "groupsDock", self.groups_panel, Qt.RightDockWidgetArea
        )
        self.props_dock = self._dock(
            "Properties", "propertiesDock", self.properties, Qt.RightDockWidgetArea
        )
        self._build_pruning()

        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_statusbar()
        self.set_theme(theme, save=False)
        self._restore_window()
        from app.sensitivity import install as install_sensitivity  # scan, heat, planner

        install_sensitivity(self)
        if auto_open and self.prefs.first_launch():
            QTimer.singleShot(0, self.open_demo)
        self.prefs.mark_launched()

    # ------------------------------------------------------------------ construction

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        act.setStatusTip(tip or text.replace("…", "").replace("&", ""))
        act.triggered.connect(slot)
        return act

    def _build_actions(self) -> None:
        a = self._action
        self.act_open = a("&Open…", self.open_file_dialog, QKeySequence.Open, "Open a model file")
        self.act_builtin = a(
            "Open &Built-in Model…",
            self.open_builtin_dialog,
            "Ctrl+B",
            "Open a torchvision architecture",
        )
        self.act_demo = a("Open &Demo", self.open_demo, "Ctrl+D", "Open the DigitsNet demo model")
        self.act_quit = a("&Quit", self.close, QKeySequence.Quit)
        self.act_fit = a("&Fit to View", self.view.fit_to_view, ["F", "Ctrl+0"])
        self.act_zoom_in = a(
            "Zoom &In",
            lambda: self.view.zoom_by(1.25, animate=True),
            [QKeySequence.ZoomIn, QKeySequence("Ctrl+=")],
        )
        self.act_zoom_out = a(
            "Zoom &Out", lambda: self.view.zoom_by(0.8, animate=True), QKeySequence.ZoomOut
        )
        self.act_zoom_100 = a("&Actual Size", lambda: self.view.set_scale(1.0), "Ctrl+1")
        self.act_collapse_all = a("&Collapse Top-Level Modules", self.collapse_all, "Ctrl+Shift+C")
        self.act_expand_all = a("&Expand All", self.expand_all, "Ctrl+Shift+E")
        self.act_find = a("&Find Layer…", self.focus_search, QKeySequence.Find)
        self.act_cancel = a(
            "&Cancel Loading or Pruning", self.cancel_load, "Esc", "Stop the running job"
        )
        self.act_cancel.setEnabled(False)
        self.act_clear = a("Clear &Highlight", lambda: self.select_group(None))
        self.act_minimap = a("&Minimap", self._toggle_minimap, "M")
        self.act_minimap.setCheckable(True)
        self.act_minimap.setChecked(True)
        self.theme_group = QActionGroup(self)
        self.act_light = a("&Light", lambda: self.set_theme("light"))
        self.act_dark = a("&Dark", lambda: self.set_theme("dark"))
        for act in (self.act_light, self.act_dark):
            act.setCheckable(True)
            self.theme_group.addAction(act)
        self.act_toggle_theme = a("Toggle &Theme", self.toggle_theme, "Ctrl+T")
        stack = self.pruning.editor.stack
        self.act_undo = stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcuts([QKeySequence(QKeySequence.Undo)])
        self.act_redo = stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.act_save_plan = a("&Save Plan…", self.save_plan_dialog, QKeySequence.Save)
        self.act_open_plan = a("Open &Plan…", self.open_plan_dialog, "Ctrl+Shift+O")
        self.act_prune = a(
            "&Prune", self.prune, "Ctrl+P", "Prune a copy of the model with the current plan"
        )
        self.act_export = a("&Export…", self.open_export_dialog, "Ctrl+E", "Export the model")
        self.act_make_scope = a(
            "Make User &Scope of Selected Groups", self.make_scope_from_selection, "Ctrl+G"
        )
        for act in (self.act_save_plan, self.act_open_plan, self.act_prune, self.act_export):
            act.setEnabled(False)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        file_menu.addActions([self.act_open, self.act_builtin, self.act_demo])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addActions([self.act_open_plan, self.act_save_plan, self.act_export])
        file_menu.addSeparator()
        file_menu.addAction(self.act_cancel)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        edit_menu = mb.addMenu("&Edit")
        edit_menu.addActions([self.act_undo, self.act_redo])
        edit_menu.addSeparator()
        edit_menu.addAction(self.act_make_scope)
        prune_menu = mb.addMenu("&Prune")
        prune_menu.addAction(self.act_prune)
        self.act_recover = prune_menu.addAction("&Recover accuracy…", self.open_recover_dialog)
        view_menu = mb.addMenu("&View")
        view_menu.addActions([self.act_fit, self.act_zoom_in, self.act_zoom_out, self.act_zoom_100])
        view_menu.addSeparator()
        view_menu.addActions(
            [self.act_find, self.act_clear, self.act_collapse_all, self.act_expand_all]
        )
        view_menu.addSeparator()
        theme_menu = view_menu.addMenu("T&heme")
        theme_menu.addActions([self.act_light, self.act_dark])
        theme_menu.addSeparator()
        theme_menu.addAction(self.act_toggle_theme)
        panels = view_menu.addMenu("&Panels")
        panels.addAction(self.groups_dock.toggleViewAction())
        panels.addAction(self.props_dock.toggleViewAction())
        panels.addAction(self.settings_dock.toggleViewAction())
        panels.addAction(self.preview_dock.toggleViewAction())
        panels.addAction(self.act_minimap)
        help_menu = mb.addMenu("&Help")
        help_menu.addAction(self._action("&About Arborist", self._about))
        help_menu.addAction(
            self._action("&Navigation", self._navigation_help, QKeySequence.HelpContents)
        )

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main", self)
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.addActions([self.act_open, self.act_builtin, self.act_demo])
        tb.addSeparator()
        tb.addActions([self.act_undo, self.act_redo, self.act_prune, self.act_export])
        tb.addSeparator()
        tb.addActions([self.act_fit, self.act_zoom_out, self.act_zoom_in])
        tb.addSeparator()
        self.search = QLineEdit(
            self, placeholderText="Find layer (Ctrl+F)…", clearButtonEnabled=True
        )
        self.search.setMaximumWidth(260)
        self.search.returnPressed.connect(lambda: self.search_next(self.search.text()))
        self.completer = QCompleter([], self)
        self.completer.setCaseSensitivity(Qt.CaseInsensitive)
        self.completer.setFilterMode(Qt.MatchContains)
        self.completer.activated.connect(lambda text: self.search_next(text))
        self.search.setCompleter(self.completer)
        tb.addWidget(self.search)
        tb.addSeparator()
        tb.addAction(self.act_toggle_theme)
        self.addToolBar(tb)
        self.toolbar = tb

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("Ready", self)
        self.counts_label = QLabel("", self)
        self.zoom_label = QLabel("100%", self)
        self.progress = QProgressBar(self, minimum=0, maximum=100, textVisible=False)
        self.progress.setFixedWidth(160)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel_current)
        sb.addWidget(self.status_label, 1)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.counts_label)
        sb.addPermanentWidget(self.zoom_label)
        self.progress.hide()
        self.cancel_button.hide()

    def _restore_window(self) -> None:
        geometry = self.prefs.qs.value("geometry")
        state = self.prefs.qs.value("windowState")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            screen = self.screen().availableGeometry()
            self.resize(
                max(1000, int(screen.width() * 0.85)), max(700, int(screen.height() * 0.85))
            )
        if isinstance(state, QByteArray):
            self.restoreState(state)
        else:
            self.resizeDocks([self.groups_dock, self.props_dock], [460, 460], Qt.Horizontal)
            self.resizeDocks([self.groups_dock, self.props_dock], [520, 260], Qt.Vertical)
            self.resizeDocks([self.settings_dock, self.preview_dock], [360, 360], Qt.Horizontal)
            self.resizeDocks([self.settings_dock, self.preview_dock], [430, 400], Qt.Vertical)

    # ------------------------------------------------------------------ opening

    def open_demo(self) -> None:
        self.open_source(DEMO_SOURCE)

    def open_file_dialog(self) -> None:
        start = os.path.dirname(self.prefs.recent()[0]) if self.prefs.recent() else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open model", start, MODEL_FILTER)
        if path:
            self.open_source(path)

    def open_builtin_dialog(self) -> None:
        dialog = BuiltinModelDialog(self)
        self.last_dialog = dialog
        dialog.accepted.connect(lambda: dialog.source() and self.open_source(dialog.source()))
        dialog.open()

    def open_source(
        self,
        source: str,
        input_spec: str | None = None,
        trust: bool = False,
        arch: str | None = None,
        code: str | None = None,
    ) -> None:
        """Load `source` in the background; the current document stays until it succeeds."""
        loader = self.loader
        code = code or self.prefs.model_code(source)  # remembered per file; used after trust
        extra = {k: v for k, v in (("arch", arch), ("code", code)) if v}

        def job(progress, cancelled) -> LoadResult:
            doc = loader(
                source,
                input_spec=input_spec,
                trust=trust,
                progress=progress,
                cancel=cancelled,
                **extra,
            )
            if cancelled():
                raise engine_api.LoadCancelled()
            progress(0.9, "Laying out the graph…")
            from app.canvas.hierarchy import auto_collapse

            collapsed = (
                auto_collapse(doc.summary.nodes, AUTO_COLLAPSE_TARGET)
                if len(doc.summary.nodes) > AUTO_COLLAPSE_OVER
                else set()
            )
            return LoadResult(doc, prepare_view(doc.summary, collapsed))

        self._pending = (source, input_spec, trust)
        self.loads.submit(job, f"Opening {engine_api.display_name(source)}…")

    def cancel_load(self) -> None:
        if self.loads.busy:
            self.loads.cancel()
        elif self.pruning.busy:
            self.pruning.cancel_prune()

    def cancel_current(self) -> None:
        """The status bar's Cancel: stops loading or pruning, whichever runs."""
        self.cancel_load()

    def _on_job_started(self, label: str) -> None:
        self.status_label.setText(label)
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        self.act_cancel.setEnabled(True)

    def _on_job_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 100))
        self.status_label.setText(message)

    def _job_ended(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()
        self.act_cancel.setEnabled(False)

    def _on_load_cancelled(self) -> None:
        self._job_ended()
        self.status_label.setText(
            "Loading cancelled"
            + (f"; still showing {self.document.title}" if self.document else "")
        )

    def _on_loaded(self, result: LoadResult) -> None:
        self._job_ended()
        self.set_document(result.document, result.view)
        self.prefs.add_recent(result.document.source)

    def _on_load_failed(self, failure: JobFailure) -> None:
        self._job_ended()
        exc = failure.exception
        source, spec, trust = self._pending
        if isinstance(exc, engine_api.TrustRequired):
            self.status_label.setText("Waiting for your decision about running code from the file")
            box = make_trust_dialog(self, source, failure.message)
            self.last_dialog = box

            def decided(_result: int) -> None:
                if box.clickedButton() is box.button(QMessageBox.Yes):
                    self.open_source(source, spec, trust=True)
                else:
                    self.status_label.setText("Not loaded: the file was not trusted")

            box.finished.connect(decided)
            box.open()
            return
        if isinstance(exc, engine_api.ArchRequired):  # weights only: which model are they?
            picker = ArchPickerDialog(self, source, failure.message, exc.candidates)
            self.last_dialog = picker
            picker.accepted.connect(lambda: self.open_source(source, spec, trust, picker.arch()))
            picker.rejected.connect(
                lambda: self.status_label.setText("Not loaded: no architecture")
            )
            picker.open()
            return
        if isinstance(exc, engine_api.CodeRequired):  # after trust: where is the model's code?
            asked = ModelCodeDialog(self, source, exc.module, failure.message)
            self.last_dialog = asked

            def chosen() -> None:
                self.prefs.set_model_code(source, asked.path())
                self.open_source(source, spec, trust, code=asked.path())

            asked.accepted.connect(chosen)
            asked.rejected.connect(lambda: self.status_label.setText("Not loaded: no model code"))
            asked.open()
            return
        if isinstance(exc, engine_api.InputShapeRequired):
            dialog = InputShapeDialog(
                self, failure.message, exc.suggestion, engine_api.parse_input_spec
            )
            self.last_dialog = dialog
            dialog.accepted.connect(lambda: self.open_source(source, dialog.spec(), trust))
            dialog.rejected.connect(lambda: self.status_label.setText("Not loaded: no input shape"))
            dialog.open()
            return
        name = engine_api.display_name(source)
        self.status_label.setText(f"Could not open {name}")
        self._show_error(f"Could not open {name}", failure.message, failure.details)

    def _show_error(self, title: str, message: str, details: str = "") -> None:
        box = QMessageBox(QMessageBox.Critical, title, message, QMessageBox.Ok, self)
        if details:
            box.setDetailedText(details)
        if self.document is not None:
            box.setInformativeText(f"{self.document.title} is still open.")
        self.last_dialog = box
        box.open()

    # ------------------------------------------------------------------ document

    def set_document(self, doc: Document, view: PreparedView, plan=None) -> None:
        self.document = doc
        self.collapsed = view.graph.collapsed
        self.selected_group = None
        self._search_hits, self._search_pos = [], -1
        self._show_view(view)
        self.groups_panel.set_groups(doc.summary.groups)
        self.properties.clear()
        self.completer.model().setStringList([n.name for n in doc.summary.nodes])
        self.setWindowTitle(f"{doc.title} — Arborist")
        s = doc.summary
        self.counts_label.setText(
            f"{len(s.nodes)} nodes · {len(s.edges)} edges · {len(s.groups)} groups"
        )
        folded = f"; {len(self.collapsed)} modules collapsed" if self.collapsed else ""
        self.status_label.setText(
            f"Opened {doc.title} (input {doc.input_spec}){folded}"
            + ("; " + "; ".join(doc.notes) if doc.notes else "")
        )
        self.view.show_start()
        self.settings_panel.set_demo(doc.source == DEMO_SOURCE)
        att = engine_api.attention_summary(doc.model)
        self.settings_panel.set_attention(att.blocks, att.rope_blocks, att.text)
        self.preview_panel.clear("Computing the preview…")
        self.pruning.set_document(doc, plan)
        self.pruning.set_calibration(*self.settings_panel.calibration_source())
        self.data_panel.set_document(doc)
        for act in (self.act_save_plan, self.act_open_plan, self.act_prune, self.act_export):
            act.setEnabled(True)
        self.settings_panel.setEnabled(True)
        self.documentChanged.emit()

    def _on_data_changed(self, choice) -> None:
        """The data panel's dataset feeds calibration (via the settings) and evaluation."""
        self.pruning.set_data(choice)
        self.settings_panel.set_data_path(choice.data if choice is not None else "")

    def _show_view(self, view: PreparedView) -> None:
        self.scene.show_graph(view.graph, view.layout)
        self.view.minimap.invalidate()
        self.viewChanged.emit()

    def view_id(self, summary_id: int) -> int | None:
        graph = self.scene.graph
        return graph.owner.get(summary_id) if graph else None

    # ------------------------------------------------------------------ groups & selection

    def select_group(self, group_id: int | None) -> None:
        """Select a group in the panel, which highlights its members on the canvas."""
        self.groups_panel.select_group(group_id)
        if group_id is None:
            self._on_group_selected(-1)

    def _on_group_selected(self, group_id: int) -> None:
        doc = self.document
        group = doc.group(group_id) if doc and group_id >= 0 else None
        self.selected_group = group.id if group else None
        if group is None:
            self.scene.highlight(())
            self.view.minimap.invalidate()
            return
        ids = {self.view_id(i) for i in doc.group_node_ids(group)}
        shown = self.scene.highlight(i for i in ids if i is not None)
        self.view.minimap.invalidate()
        self.status_label.setText(
            f"Group #{group.id}: {len(group.members)} coupled layers, "
            f"root {group.root}, {group.channels} channels"
        )
        root = doc.node_by_name(group.root)
        root_view = self.view_id(root.id) if root else None
        visible = self.view.visible_scene_rect()
        if root_view in shown and not visible.contains(self.scene.node_items[root_view].pos()):
            self.view.centerOn(self.scene.node_items[root_view])

    def on_node_clicked(self, view_id: int) -> None:
        """Show the node's properties and select the group it belongs to."""
        doc = self.document
        item = self.scene.node_items.get(view_id)
        if doc is None or item is None:
            return
        node = item.node
        groups = [] if node.is_block else doc.groups_of(node.name)
        self.scene.set_current(view_id)
        self.properties.show_node(node, groups)
        self._refresh_plan_views()
        if groups:
            self.select_group(groups[0].id)
        elif self.selected_group is not None:
            self.select_group(None)
        g = groups[0] if groups else None
        suffix = f": group #{g.id}, {len(g.members)} coupled layers, {g.channels} ch" if g else ""
        self.status_label.setText(f"{node.name} ({node.kind}){suffix}")

    # ------------------------------------------------------------------ search

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def find_layers(self, text: str) -> list[int]:
        """Summary ids whose name contains `text` (case-insensitive), exact match first."""
        if self.document is None or not text.strip():
            return []
        t = text.strip().lower()
        nodes = self.document.summary.nodes
        exact = [n.id for n in nodes if n.name.lower() == t]
        return exact + [n.id for n in nodes if t in n.name.lower() and n.id not in exact]

    def search_next(self, text: str) -> int | None:
        """Jump to the next layer matching `text`; returns the view node id shown."""
        if text != self._search_text:
            self._search_text, self._search_hits, self._search_pos = (
                text,
                self.find_layers(text),
                -1,
            )
        if not self._search_hits:
            self.status_label.setText(f"No layer matches “{text}”")
            return None
        self._search_pos = (self._search_pos + 1) % len(self._search_hits)
        summary_id = self._search_hits[self._search_pos]
        view_id = self.view_id(summary_id)
        if view_id is None:
            return None
        self.view.center_on_node(view_id)
        self.on_node_clicked(view_id)
        name = self.document.node(summary_id).name
        inside = (
            ""
            if view_id == summary_id
            else f" (inside collapsed {self.scene.node_items[view_id].node.name})"
        )
        self.status_label.setText(
            f"{name}{inside}: match {self._search_pos + 1} of {len(self._search_hits)}"
        )
        return view_id

    # ------------------------------------------------------------------ collapse / expand

    def set_collapsed(self, paths: frozenset[str] | set[str]) -> None:
        if self.document is None:
            return
        summary = self.document.summary
        paths = frozenset(paths)
        self.collapsed = paths
        self.layouts.submit(lambda progress, cancelled: prepare_view(summary, paths), "Layout")

    def _on_relayout(self, view: PreparedView) -> None:
        center = self.view.visible_scene_rect().center()
        self._show_view(view)
        self.view.centerOn(center)
        if self.selected_group is not None:
            self._on_group_selected(self.selected_group)
        self.status_label.setText(
            f"{len(view.graph.nodes)} nodes shown, {len(self.collapsed)} modules collapsed"
        )

    def collapse_path(self, path: str) -> None:
        self.set_collapsed(self.collapsed | {path})

    def expand_block(self, view_id: int) -> None:
        item = self.scene.node_items.get(view_id)
        if item is not None and item.node.is_block:
            self.set_collapsed(self.collapsed - {item.node.name})

    def collapse_all(self) -> None:
        if self.document is not None:
            from app.canvas.hierarchy import paths_at_depth

            self.set_collapsed(paths_at_depth(self.document.summary.nodes, 1))

    def expand_all(self) -> None:
        self.set_collapsed(frozenset())

    def _on_node_double_clicked(self, view_id: int) -> None:
        item = self.scene.node_items.get(view_id)
        if item is not None and item.node.is_block:
            self.expand_block(view_id)

    def _node_menu(self, view_id: int, global_pos) -> None:
        item = self.scene.node_items.get(view_id)
        if item is None or self.document is None:
            return
        menu = QMenu(self)
        node = item.node
        if node.is_block:
            menu.addAction(f"Expand {node.name}", lambda: self.expand_block(view_id))
        else:
            info = self.document.node(view_id)
            for path in containers(info) if info else []:
                menu.addAction(f"Collapse {path}", lambda p=path: self.collapse_path(p))
            groups = self.document.groups_of(node.name)
            if groups:
                menu.addSeparator()
                menu.addAction(
                    f"Select group #{groups[0].id}", lambda: self.select_group(groups[0].id)
                )
            if node.is_layer:
                menu.addSeparator()
                self._add_plan_items(menu, view_id, node.name, groups)
        menu.addSeparator()
        menu.addAction("Copy name", lambda: QApplication.clipboard().setText(node.name))
        self.last_dialog = menu
        menu.popup(global_pos)

    # ------------------------------------------------------------------ pruning plan

    def _build_pruning(self) -> None:
        """Settings and preview docks on the left, wired to the PruningController."""
        self.pruning = PruningController(self)
        self.pruning.editor.planChanged.connect(self._on_plan_changed)
        self.pruning.previewReady.connect(self._on_preview)
        self.pruning.previewFailed.connect(self._on_preview_failed)
        self.pruning.previews.progress.connect(lambda f, m: self.preview_panel.set_state(m))
        self.pruning.solved.connect(self._on_solved)
        self.pruning.pruneStarted.connect(lambda: self._on_job_started("Pruning a copy…"))
        self.pruning.pruneProgress.connect(self._on_job_progress)
        self.pruning.pruneFinished.connect(self._on_pruned)
        self.pruning.pruneFailed.connect(self._on_prune_failed)
        self.pruning.pruneCancelled.connect(self._on_prune_cancelled)
        self.settings_panel = SettingsPanel(engine_api.criteria(), self)
        self.settings_panel.edited.connect(self._on_settings_edited)
        self.settings_panel.solveRequested.connect(self.pruning.solve)
        self.settings_panel.calibrationChanged.connect(
            lambda: self.pruning.set_calibration(*self.settings_panel.calibration_source())
        )
        self.settings_panel.setEnabled(False)
        self.preview_panel = PreviewPanel(self)
        self.settings_dock = self._dock(
            "Pruning settings", "settingsDock", self.settings_panel, Qt.LeftDockWidgetArea
        )
        self.preview_dock = self._dock(
            "Preview", "previewDock", self.preview_panel, Qt.LeftDockWidgetArea
        )
        self.data_panel = DataPanel(self)
        self.data_dock = self._dock("Data", "dataDock", self.data_panel, Qt.LeftDockWidgetArea)
        self.data_panel.dataChanged.connect(self._on_data_changed)
        gp = self.groups_panel
        gp.ratioEdited.connect(self._guard(self.pruning.set_group_ratio))
        gp.clearRatioRequested.connect(self._guard(self.pruning.clear_ratios))
        gp.scopeRequested.connect(self._guard(self.pruning.make_scope))
        gp.leaveScopeRequested.connect(self._guard(self.pruning.leave_scopes))
        gp.ignoreRequested.connect(self._guard(self.pruning.set_ignored))
        self.properties.layerRatioEdited.connect(self._guard(self.pruning.set_layer_ratio))
        self.properties.ignoreToggled.connect(
            self._guard(lambda name, on: self.pruning.set_ignored([name], on))
        )

    def _guard(self, fn):
        """Plan edits with a bad value explain themselves in the status bar, never crash."""

        def call(*args):
            try:
                fn(*args)
            except (ValueError, AttributeError) as exc:
                self.status_label.setText(f"Not applied: {exc}")

        return call

    def _on_settings_edited(self, text: str, changes: dict, merge: str) -> None:
        self._guard(self.pruning.set_options)(text, changes, merge)

    def _on_plan_changed(self, plan) -> None:
        """Plan edited, undone or redone: every view of the plan follows it."""
        self.settings_panel.show_plan(plan)
        self._refresh_plan_views()
        self.preview_panel.set_state("Updating preview…")

    def _refresh_plan_views(self) -> None:
        doc, plan = self.document, self.pruning.plan
        if doc is None:
            return
        # The last preview stays on screen until the next one lands (~0.1 s; no flicker).
        done = self.pruning.last_preview
        planned: dict[str, int] = {}
        widths: dict[str, tuple[int | None, int | None]] = {}
        if done is not None:
            for lp in done.preview.layers:
                widths[lp.name] = (lp.in_after, lp.out_after)
                planned[lp.name] = lp.out_after
        ratios = group_ratios_shown(plan, doc.summary.groups)
        self.groups_panel.model.set_plan_info(ratios, planned)
        self.scene.show_planned(widths)
        node = self.properties.node
        if node is not None and not node.is_block:
            self.properties.show_plan(plan, widths.get(node.name))

    def _on_preview(self, done: PreviewDone) -> None:
        p = done.preview
        n = sum(1 for lp in p.layers if lp.out_after != lp.out_before)
        self.preview_panel.show_preview(
            p, f"{n} layers change · preview computed in {1000 * done.seconds:.0f} ms"
        )
        self._refresh_plan_views()

    def _on_preview_failed(self, message: str) -> None:
        """No figures rather than another plan's figures."""
        self.preview_panel.clear(f"⚠ Preview failed: {message}")
        self.scene.show_planned({})

    def _on_solved(self, done: SolveDone) -> None:
        what = "MACs" if done.target == "macs" else "parameters"
        self.settings_panel.solve_label.setText(
            f"Ratio {done.result.ratio:.3f} keeps {100 * done.result.achieved:.1f} % of {what} "
            f"(asked for {100 * done.keep:.0f} %)"
        )

    def _add_plan_items(self, menu: QMenu, view_id: int, name: str, groups) -> None:
        """Canvas context menu: ratio presets for the layer, ignore, scope with selection."""
        plan = self.pruning.plan
        current = plan.layer_ratios.get(name)
        ratio_menu = menu.addMenu("Pruning ratio of this layer")
        for r in RATIO_PRESETS:
            act = ratio_menu.addAction(
                f"{r:.2f}", lambda r=r: self._guard(self.pruning.set_layer_ratio)(name, r)
            )
            act.setCheckable(True)
            act.setChecked(current == r)
        ratio_menu.addSeparator()
        ratio_menu.addAction(
            "Other…", lambda: (self.on_node_clicked(view_id), self.properties.focus_ratio())
        )
        ratio_menu.addAction(
            "Use group/default ratio", lambda: self.pruning.set_layer_ratio(name, None)
        ).setEnabled(current is not None)
        if groups:
            menu.addAction(
                f"Edit ratio of group #{groups[0].id}…",
                lambda: (
                    self.select_group(groups[0].id),
                    self.groups_panel.edit_ratio(groups[0].id),
                ),
            )
        ignored = name in plan.ignored_layers
        menu.addAction(
            "Un-ignore layer" if ignored else "Ignore layer (never prune)",
            lambda: self.pruning.set_ignored([name], not ignored),
        )
        roots = self.groups_panel.selected_roots()
        extra = [r for r in roots if r != name]
        if extra:
            menu.addAction(
                f"Make user scope with {len(extra)} selected group(s)",
                self._guard(lambda: self.pruning.make_scope([name, *extra])),
            )

    def make_scope_from_selection(self) -> None:
        roots = self.groups_panel.selected_roots()
        if len(roots) < 2:
            self.status_label.setText("Select two or more groups (Ctrl+click) to share a ratio")
            return
        self._guard(self.pruning.make_scope)(roots)

    def save_plan_dialog(self) -> None:
        if self.document is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save pruning plan", "plan.json", PLAN_FILTER)
        if path:
            self.save_plan(path)

    def save_plan(self, path: str) -> None:
        try:
            self.pruning.save_plan(path)
        except OSError as exc:
            self._show_error("Could not save the plan", str(exc))
            return
        self.status_label.setText(f"Plan saved to {path}")

    def open_plan_dialog(self) -> None:
        if self.document is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open pruning plan", "", PLAN_FILTER)
        if path:
            self.read_plan(path)

    def read_plan(self, path: str) -> None:
        """Read and check the plan file on a worker (a FIFO or a huge file never blocks the
        window); it is applied, or its problems shown, when the worker is done."""
        runner = self.__dict__.get("plan_reads")
        if runner is None:
            runner = self.plan_reads = JobRunner(self)
            runner.finished.connect(lambda done: self._plan_read(*done))
            runner.failed.connect(
                lambda f: self._show_error("Could not read the plan", f.message, f.details)
            )

        def job(progress, cancelled):
            try:
                return path, engine_api.load_plan(path), []
            except engine_api.PlanFileError as exc:
                return path, None, list(exc.problems)

        runner.submit(job, f"Reading {os.path.basename(path)}…")

    def _plan_read(self, path: str, plan, problems: list[str]) -> bool:
        if plan is not None and self.document is not None:
            problems = self.pruning.use_plan(plan)
        return self._report_plan(path, problems)

    def open_plan(self, path: str) -> bool:
        """Read and apply a plan at once (scripts, tests); the GUI itself uses read_plan."""
        return self._report_plan(path, self.pruning.open_plan(path))

    def _report_plan(self, path: str, problems: list[str]) -> bool:
        if self.document is None:
            return False
        if problems:
            self._show_error(
                "Could not use this plan",
                f"{os.path.basename(path)} does not fit {self.document.title}:",
                "\n".join(problems),
            )
            self.last_dialog.setInformativeText("\n".join(problems[:8]))
            return False
        made_for = self.pruning.plan.source
        other = (
            f"; it was made for {made_for}" if made_for and made_for != self.document.source else ""
        )
        self.status_label.setText(f"Opened plan {path} (Ctrl+Z to undo){other}")
        return True

    # ------------------------------------------------------------------ prune & export

    def prune(self) -> None:
        if self.document is None or self.loads.busy:
            return
        if self.pruning.prune():
            self.act_prune.setEnabled(False)

    def _on_pruned(self, payload) -> None:
        result, view = payload
        self._job_ended()
        self.act_prune.setEnabled(True)
        self.status_label.setText(
            f"Pruned a copy: MACs {result.macs_before:,} → {result.macs_after:,}; "
            "keep it or discard it"
        )
        dialog = PruneResultDialog(result, self)
        self.last_dialog = dialog
        self.result_dialog = dialog
        dialog.accepted.connect(lambda: self.accept_pruned(result, view))
        dialog.rejected.connect(
            lambda: self.status_label.setText("Pruned copy discarded; the model is unchanged")
        )
        dialog.open()

    def accept_pruned(self, result, view: PreparedView) -> None:
        if self.document is not None and not self.document.pruned:
            self.recover_teacher = self.document  # the teacher of "Recover accuracy"
        plan = self.pruning.plan.replace(layer_ratios={}, group_ratios={}, scopes=[])
        self.set_document(result.document, view, plan)
        self.status_label.setText(
            f"Showing the pruned model: {len(result.document.summary.nodes)} nodes; "
            "File › Export… to save it"
        )

    def _on_prune_failed(self, failure: JobFailure) -> None:
        self._job_ended()
        self.act_prune.setEnabled(True)
        self.status_label.setText("Pruning failed; the model is unchanged")
        self._show_error("Pruning failed", failure.message, failure.details)

    def _on_prune_cancelled(self) -> None:
        self._job_ended()
        self.act_prune.setEnabled(True)
        self.status_label.setText("Pruning cancelled; the model is unchanged")

    def open_recover_dialog(self):
        from app.dialogs.recover import open_recover_dialog

        return open_recover_dialog(self)

    def open_export_dialog(self) -> ExportDialog | None:
        if self.document is None:
            return None
        start = (
            ""
            if engine_api.is_zoo_spec(self.document.source)
            else os.path.dirname(self.document.source)
        )
        dialog = ExportDialog(self.document, self, start_dir=start or os.getcwd())
        self.last_dialog = dialog
        self.export_dialog = dialog
        dialog.open()
        return dialog

    # ------------------------------------------------------------------ view options

    def set_theme(self, name: str, save: bool = True) -> None:
        name = name if name in THEMES else "light"
        app = QApplication.instance()
        if app is not None:
            apply_theme(app, name)
        self.scene.set_theme(THEMES[name])
        self.view.minimap.invalidate()
        (self.act_dark if name == "dark" else self.act_light).setChecked(True)
        self.theme = name
        if save:
            self.prefs.set_theme(name)

    def toggle_theme(self) -> None:
        self.set_theme("light" if self.theme == "dark" else "dark")

    def _toggle_minimap(self) -> None:
        self.view.minimap.setVisible(self.act_minimap.isChecked())

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.prefs.recent()
        for source in recent:
            self.recent_menu.addAction(
                engine_api.display_name(source), lambda s=source: self.open_source(s)
            ).setToolTip(source)
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear Recent", self.prefs.clear_recent)

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About Arborist",
            "<b>Arborist</b><br>A workbench for structural pruning of PyTorch models.",
        )

    def _navigation_help(self) -> None:
        QMessageBox.information(
            self,
            "Navigation",
            "Wheel or pinch: zoom around the cursor\nDrag (left or middle button): pan\n"
            "F / Ctrl+0: fit graph\nClick a layer: properties and its group\n"
            "Double-click a block: expand it; right-click a layer: collapse its module\n"
            "Ctrl+F: find a layer; Enter again: next match\nEsc: cancel loading",
        )

    # ------------------------------------------------------------------ drag & drop, close

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt API)
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt API)
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_source(files[0])

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        self.prefs.qs.setValue("geometry", self.saveGeometry())
        self.prefs.qs.setValue("windowState", self.saveState())
        self.prefs.qs.sync()
        self.loads.cancel(quiet=True)
        self.layouts.cancel(quiet=True)
        self.pruning.previews.cancel(quiet=True)
        self.pruning.prunes.cancel(quiet=True)
        super().closeEvent(event)
