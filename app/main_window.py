"""The workbench window: a layout of panels around the canvas, plus the few jobs that need
the window (loading a file, dialogs, prune / keep).

State lives in the Workbench (app/workbench.py): document, plan, selection, versions,
jobs. Each panel observes it; the canvas is driven by the CanvasController; the menus and
shortcuts come from one table (app/actions.py). A failed load leaves the open document
untouched.
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
    QFrame,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolBar,
    QWidget,
)

from app import engine_api
from app.actions import MENUS, build_actions, specs_in
from app.canvas.controller import CanvasController
from app.canvas.menu import node_menu
from app.canvas.prepare import PreparedView, initial_collapse, prepare_view
from app.canvas.scene import GraphScene
from app.canvas.search import LayerSearch
from app.canvas.style import THEMES
from app.canvas.view import GraphView
from app.dialogs.builtin import BuiltinModelDialog
from app.dialogs.export import ExportDialog
from app.document import DEMO_SOURCE, Document
from app.export_flow import open_export_dialog
from app.open_flow import on_load_failed
from app.panels.data import DataPanel
from app.panels.groups import GroupsPanel
from app.panels.module_tree import ModuleTreePanel
from app.panels.preview import PreviewPanel
from app.panels.properties import PropertiesPanel
from app.panels.settings import SettingsPanel
from app.panels.versions import VersionsPanel
from app.plan_files import PLAN_FILTER, PlanFiles
from app.prune_flow import PruneFlow
from app.pruning import PruningController, SolveDone
from app.settings import Preferences, default_settings
from app.theme import apply_theme
from app.workbench import JobState, Workbench
from app.workers import JobFailure, JobRunner

Loader = Callable[..., Document]
MODEL_FILTER = "Models (*.pt *.pth *.pt2 *.bin *.ckpt *.onnx *.safetensors);;All files (*)"


class LoadResult:
    """What a load job hands back: the document plus its first view."""

    def __init__(self, document: Document, view: PreparedView) -> None:
        self.document = document
        self.view = view


def ask_user(
    parent: QWidget, title: str, text: str, buttons, default
) -> QMessageBox.StandardButton:
    """A modal question; tests replace MainWindow.ask to answer it."""
    return QMessageBox.question(parent, title, text, buttons, default)


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
        self.last_dialog: QWidget | None = None
        self.result_dialog: QWidget | None = None  # the last PruneResultDialog
        self.export_dialog: ExportDialog | None = None
        self.ask = lambda title, text, buttons, default: ask_user(
            self, title, text, buttons, default
        )
        self.setWindowTitle("Arborist")
        self.setAcceptDrops(True)

        self.pruning = PruningController(self)
        self.workbench = wb = Workbench(self.pruning, self.prefs)
        wb.plans.editor.setParent(self)  # the undo stack (and its actions) close with the window
        self.plan_files = PlanFiles(self)
        self.prune_flow = PruneFlow(self)
        wb.opener = self._reopen_at
        self.loads = JobRunner(self, cancel_types=(engine_api.LoadCancelled,))
        self.loads.started.connect(lambda label: wb.job_started("load", label, self.loads.cancel))
        self.loads.progress.connect(lambda f, m: wb.job_progress("load", f, m))
        self.loads.finished.connect(self._on_loaded)
        self.loads.failed.connect(self._on_load_failed)
        self.loads.cancelled.connect(self._on_load_cancelled)

        theme = self.prefs.theme()
        self.scene = GraphScene(THEMES[theme], self)
        self.view = GraphView(self.scene, self)
        self.canvas = CanvasController(wb, self.scene, self.view, self)
        self.layouts = self.canvas.layouts
        self.layer_search = LayerSearch(wb, self.canvas)
        self.layouts.failed.connect(
            lambda f: self._show_error("Layout failed", f.message, f.details)
        )
        self.canvas.relaidOut.connect(self.viewChanged)
        self.view.nodeContextMenu.connect(self._node_menu)
        self.view.zoomChanged.connect(lambda s: self.zoom_label.setText(f"{s * 100:.0f}%"))
        self.setCentralWidget(self.view)

        self.groups_panel = GroupsPanel(self, workbench=wb)
        self.properties = PropertiesPanel(self, workbench=wb)
        self.settings_panel = SettingsPanel(engine_api.criteria(), self)
        self.settings_panel.attach(wb)
        self.settings_panel.setEnabled(False)
        self.preview_panel = PreviewPanel(self, workbench=wb)
        self.versions_panel = VersionsPanel(self, workbench=wb)
        self.versions_panel.exportRequested.connect(self.open_export_dialog)
        self.module_tree = ModuleTreePanel(self, workbench=wb)
        self.data_panel = DataPanel(self)
        self.data_panel.dataChanged.connect(self._on_data_changed)
        right, left = Qt.RightDockWidgetArea, Qt.LeftDockWidgetArea
        self.groups_dock = self._dock("Groups", "groupsDock", self.groups_panel, right)
        self.props_dock = self._dock("Properties", "propertiesDock", self.properties, right)
        self.settings_dock = self._dock(
            "Pruning settings", "settingsDock", self.settings_panel, left, scroll=True
        )
        self.preview_dock = self._dock("Preview", "previewDock", self.preview_panel, left)
        self.tree_dock = self._dock("Modules", "modulesDock", self.module_tree, left)
        self.versions_dock = self._dock("Versions", "versionsDock", self.versions_panel, right)
        self.data_dock = self._dock("Data", "dataDock", self.data_panel, left, scroll=True)
        self.tabifyDockWidget(self.settings_dock, self.tree_dock)
        self.tabifyDockWidget(self.preview_dock, self.data_dock)
        self.tabifyDockWidget(self.props_dock, self.versions_dock)
        self.settings_dock.raise_()
        self.preview_dock.raise_()
        self.props_dock.raise_()

        wb.events.document_changed.connect(self._on_document_change)
        wb.events.selection_changed.connect(self._on_selection_change)
        wb.events.job_changed.connect(self._on_job_change)
        wb.events.status.connect(lambda text: self.status_label.setText(text))
        wb.events.preview_changed.connect(self._on_preview_change)
        self.pruning.solved.connect(self._on_solved)

        from app.depth_view import install as install_depth  # before the actions: depth.measure
        install_depth(self)
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

    # ------------------------------------------------------------------ state shortcuts

    @property
    def document(self) -> Document | None:
        return self.workbench.document

    @property
    def collapsed(self) -> frozenset[str]:
        return self.workbench.collapsed

    @property
    def selected_group(self) -> int | None:
        return self.workbench.selection.group

    # ------------------------------------------------------------------ construction

    def _dock(
        self, title: str, name: str, widget: QWidget, area, scroll: bool = False
    ) -> QDockWidget:
        """`scroll`: tall forms scroll inside their dock instead of overlapping the next one
        when the window is shorter than all stacked docks want."""
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        if scroll:
            box = QScrollArea(dock)
            box.setWidgetResizable(True)
            box.setFrameShape(QFrame.NoFrame)
            box.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # only height is short
            box.setWidget(widget)
            box.setMinimumWidth(widget.minimumSizeHint().width() + 18)  # room for the bar
            dock.setWidget(box)
        else:
            dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_actions(self) -> None:
        self.actions_by_name = build_actions(self)
        self.act_cancel.setEnabled(False)
        self.act_minimap.setChecked(True)
        self.theme_group = QActionGroup(self)
        self.act_light = QAction("&Light", self, checkable=True)
        self.act_light.triggered.connect(lambda: self.set_theme("light"))
        self.act_dark = QAction("&Dark", self, checkable=True)
        self.act_dark.triggered.connect(lambda: self.set_theme("dark"))
        for act in (self.act_light, self.act_dark):
            self.theme_group.addAction(act)
        stack = self.workbench.plans.stack
        self.act_undo = stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcuts([QKeySequence(QKeySequence.Undo)])
        self.act_redo = stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        # Toolbar buttons with a fixed label (the menu's "Undo Group x ratio 0.50" text
        # changed the button width on every edit and made the toolbar jump).
        self.tb_undo = QAction("Undo", self, enabled=False)
        self.tb_undo.triggered.connect(stack.undo)
        stack.canUndoChanged.connect(self.tb_undo.setEnabled)
        stack.undoTextChanged.connect(lambda t: self.tb_undo.setToolTip(f"Undo {t}".strip()))
        self.tb_redo = QAction("Redo", self, enabled=False)
        self.tb_redo.triggered.connect(stack.redo)
        stack.canRedoChanged.connect(self.tb_redo.setEnabled)
        stack.redoTextChanged.connect(lambda t: self.tb_redo.setToolTip(f"Redo {t}".strip()))
        for act in (self.act_save_plan, self.act_open_plan, self.act_prune, self.act_export):
            act.setEnabled(False)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        menus = {name: mb.addMenu("&" + name) for name in MENUS}
        for name, menu in menus.items():
            for spec in specs_in(name):
                if spec.separator_before:
                    menu.addSeparator()
                menu.addAction(getattr(self, f"act_{spec.name}"))
            if name == "File":
                self.recent_menu = QMenu("Open &Recent", menu)
                menu.insertMenu(self.act_open_plan, self.recent_menu)
                self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
            if name == "Edit":
                first = menu.actions()[0] if menu.actions() else None
                menu.insertActions(first, [self.act_undo, self.act_redo])
        view_menu = menus["View"]
        view_menu.addSeparator()
        theme_menu = view_menu.addMenu("T&heme")
        theme_menu.addActions([self.act_light, self.act_dark])
        theme_menu.addSeparator()
        theme_menu.addAction(self.act_toggle_theme)
        panels = view_menu.addMenu("&Panels")
        for dock in (
            self.groups_dock,
            self.props_dock,
            self.settings_dock,
            self.preview_dock,
            self.tree_dock,
            self.versions_dock,
            self.data_dock,
        ):
            panels.addAction(dock.toggleViewAction())
        panels.addAction(self.act_minimap)

    def _build_toolbar(self) -> None:
        from app.actions import ACTIONS

        tb = QToolBar("Main", self)
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        groups = [["open", "builtin", "demo"], ["prune", "export"], ["fit", "zoom_out", "zoom_in"]]
        shown = {s.name for s in ACTIONS if s.toolbar}
        for i, names in enumerate(groups):
            if i == 1:
                tb.addActions([self.tb_undo, self.tb_redo])
            tb.addActions([getattr(self, f"act_{n}") for n in names if n in shown])
            tb.addSeparator()
        self.search = QLineEdit(
            self, placeholderText="Find layer (Ctrl+F)…", clearButtonEnabled=True
        )
        self.search.setMaximumWidth(260)
        # Click or Ctrl+F only: with the default focus policy the box took the focus at
        # start-up and "F" typed into it instead of fitting the view.
        self.search.setFocusPolicy(Qt.ClickFocus)
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
        self.progress = QProgressBar(self, minimum=0, maximum=100, textVisible=True)
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

    # ------------------------------------------------------------------ small actions

    def zoom_in(self) -> None:
        self.view.zoom_by(1.25, animate=True)

    def zoom_out(self) -> None:
        self.view.zoom_by(0.8, animate=True)

    def zoom_100(self) -> None:
        self.view.set_scale(1.0)

    def clear_selection(self) -> None:
        self.workbench.select()

    def toggle_minimap(self) -> None:
        self.view.minimap.setVisible(self.act_minimap.isChecked())

    _toggle_minimap = toggle_minimap

    # ------------------------------------------------------------------ unsaved edits

    def confirm_discard(self, what: str) -> bool:
        """Unsaved plan edits: Save, Discard or Cancel before `what` throws them away."""
        if not self.workbench.unsaved_edits:
            return True
        answer = self.ask(
            "Unsaved plan edits",
            f"The pruning plan of {self.document.title} has unsaved edits. "
            f"Save them before {what}?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel,
            QMessageBox.Save,
        )
        if answer == QMessageBox.Cancel:
            self.status_label.setText("Kept the open model and its plan edits")
            return False
        if answer == QMessageBox.Save:
            path, _ = QFileDialog.getSaveFileName(
                self,
                "Save pruning plan",
                os.path.join(self.prefs.last_folder("plan"), "plan.json"),
                PLAN_FILTER,
            )
            if not path:
                return False
            self.plan_files.save(path)
        return True

    # ------------------------------------------------------------------ opening

    def _reopen_at(self, source: str, spec: str) -> None:
        """The input shape changed: trace the original again at that shape. Versions made
        at the old shape would mix numbers from two shapes, so they close (after asking)."""
        extra = len(self.workbench.versions) - 1
        if extra > 0:
            answer = self.ask(
                "Change the input shape",
                f"Re-tracing at {spec} starts a new history: {extra} pruned or recovered "
                "version(s) made at the old shape will be closed (export them first to keep "
                "them). Continue?",
                QMessageBox.Yes | QMessageBox.No,
                QMessageBox.No,
            )
            if answer not in (QMessageBox.Yes, QMessageBox.Discard):
                self.status_label.setText("Input shape unchanged")
                return
        self.open_source(source, spec, ask=False)

    def open_demo(self) -> None:
        self.open_source(DEMO_SOURCE)

    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open model", self.prefs.last_folder("model"), MODEL_FILTER
        )
        if path:
            self.prefs.set_last_folder(path, "model")
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
        ask: bool = True,
        arch: str | None = None,
        code: str | None = None,
    ) -> bool:
        """Load `source` in the background; the current document stays until it succeeds."""
        if ask and self.document is not None and not self.confirm_discard("opening another model"):
            return False
        if input_spec is None:
            input_spec = self.workbench.remembered_input_spec(source)
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
            return LoadResult(doc, prepare_view(doc.summary, initial_collapse(doc.summary.nodes)))

        self._pending = (source, input_spec, trust)
        self.loads.submit(job, f"Opening {engine_api.display_name(source)}…")
        return True

    def cancel_load(self) -> None:
        if self.loads.busy:
            self.loads.cancel()
        elif self.pruning.busy:
            self.pruning.cancel_prune()

    def cancel_current(self) -> None:
        """Esc / the status bar's Cancel: stops whichever job runs."""
        if self.export_dialog is not None and self.export_dialog.runner.busy:
            self.export_dialog.cancel()
        self.cancel_load()

    def _on_job_change(self, job: JobState) -> None:
        busy = self.workbench.busy
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.act_cancel.setEnabled(busy)
        if job.running:
            self.progress.setValue(int(job.fraction * 100))
            self.status_label.setText(job.text())

    def _on_load_cancelled(self) -> None:
        self.workbench.job_ended("load")
        self.status_label.setText(
            "Loading cancelled"
            + (f"; still showing {self.document.title}" if self.document else "")
        )

    def _on_loaded(self, result: LoadResult) -> None:
        self.workbench.job_ended("load")
        self.set_document(result.document, result.view)
        self.prefs.add_recent(result.document.source)

    def _on_load_failed(self, failure: JobFailure) -> None:
        self.workbench.job_ended("load")
        on_load_failed(self, failure, *self._pending)

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
        """A freshly loaded model becomes the history's "original"."""
        self.workbench.open_document(doc, view, plan)

    def _on_document_change(self, doc: Document | None) -> None:
        self.result_dialog = None  # a closed model must not stay alive through its dialogs
        self.export_dialog = None
        self.last_dialog = None
        self.layer_search.reset()
        for act in (self.act_save_plan, self.act_open_plan, self.act_prune, self.act_export):
            act.setEnabled(doc is not None)
        if doc is None:
            self.setWindowTitle("Arborist")
            self.counts_label.setText("")
            return
        self.completer.model().setStringList([n.name for n in doc.summary.nodes])
        self.data_panel.set_document(doc)
        version = self.workbench.version
        vname = version.name if version is not None else ""
        self.setWindowTitle(f"{doc.title} [{vname}] — Arborist")
        s = doc.summary
        self.counts_label.setText(
            f"{len(s.nodes)} nodes · {len(s.edges)} edges · {len(s.groups)} groups"
        )
        folded = (
            f"; {len(self.collapsed)} modules collapsed (double-click to expand)"
            if self.collapsed
            else ""
        )
        self.status_label.setText(
            f"Opened {doc.title} (input {doc.input_spec}){folded}"
            + ("; " + "; ".join(doc.notes) if doc.notes else "")
        )
        self.view.setFocus()  # keyboard shortcuts (F, M) go to the canvas, not the search box
        self.documentChanged.emit()

    def _on_data_changed(self, choice) -> None:
        """The data panel's dataset feeds calibration (via the settings) and evaluation."""
        self.pruning.set_data(choice)
        self.settings_panel.set_data_path(choice.data if choice is not None else "")

    def _on_preview_change(self, done) -> None:
        if done is not None and self.workbench.version is not None:
            p = done.preview
            self.workbench.version.metrics.setdefault("macs", float(p.macs_before))

    def view_id(self, summary_id: int) -> int | None:
        return self.canvas.view_id(summary_id)

    # ------------------------------------------------------------------ groups & selection

    def select_group(self, group_id: int | None) -> None:
        """Select a group (highlights its members on the canvas and its row)."""
        self.workbench.select(group=group_id)

    def _on_selection_change(self, sel) -> None:
        doc = self.document
        if doc is None:
            return
        group = doc.group(sel.group) if sel.group is not None else None
        if sel.node:
            node = sel.view_node
            kind = node.kind if node is not None else ""
            g = group
            suffix = (
                f": group #{g.id}, {len(g.members)} coupled layers, {g.channels} ch" if g else ""
            )
            self.status_label.setText(f"{sel.node} ({kind}){suffix}")
        elif group is not None:
            self.status_label.setText(
                f"Group #{group.id}: {len(group.members)} coupled layers, "
                f"root {group.root}, {group.channels} channels"
            )
            root = doc.node_by_name(group.root)
            root_view = self.view_id(root.id) if root else None
            item = self.scene.node_items.get(root_view) if root_view is not None else None
            if item is not None and not self.view.visible_scene_rect().contains(item.pos()):
                self.view.centerOn(item)

    def on_node_clicked(self, view_id: int) -> None:
        self.canvas.click(view_id)

    # ------------------------------------------------------------------ search (canvas/search.py)

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def find_layers(self, text: str) -> list[int]:
        return self.layer_search.find(text)

    def search_next(self, text: str) -> int | None:
        view_id, message = self.layer_search.next(text)
        self.status_label.setText(message)
        return view_id

    # ------------------------------------------------------------------ collapse / expand

    def set_collapsed(self, paths) -> None:
        self.canvas.set_collapsed(paths)

    def collapse_path(self, path: str) -> None:
        self.canvas.collapse_path(path)

    def expand_block(self, view_id: int) -> None:
        self.canvas.expand_block(view_id)

    def collapse_all(self) -> None:
        self.canvas.collapse_all()

    def expand_all(self) -> None:
        self.canvas.expand_all()

    def _node_menu(self, view_id: int, global_pos) -> None:
        menu = node_menu(self, view_id)
        if menu is not None:
            self.last_dialog = menu
            menu.popup(global_pos)

    # ------------------------------------------------------------------ pruning plan

    def _guard(self, fn):
        """Plan edits with a bad value explain themselves in the status bar, never crash."""
        return lambda *args: self.workbench.try_edit(fn, *args)

    def _on_solved(self, done: SolveDone) -> None:
        what = "MACs" if done.target == "macs" else "parameters"
        self.settings_panel.show_solved(
            f"Ratio {done.result.ratio:.4g} keeps {100 * done.result.achieved:.1f} % of {what} "
            f"(asked for {100 * done.keep:.0f} %)",
            round(float(done.result.ratio), 4),
        )

    def make_scope_from_selection(self) -> None:
        roots = self.groups_panel.selected_roots()
        if len(roots) < 2:
            self.status_label.setText("Select two or more groups (Ctrl+click) to share a ratio")
            return
        self._guard(self.workbench.plans.make_scope)(roots)

    # ------------------------------------------------------------------ prune, keep, export

    def prune(self) -> None:
        self.prune_flow.prune()

    def accept_pruned(self, result, view: PreparedView) -> None:
        self.prune_flow.accept(result, view)

    def open_recover_dialog(self):
        from app.dialogs.recover import open_recover_dialog

        return open_recover_dialog(self)

    def open_export_dialog(self, version_name: str | None = None) -> ExportDialog | None:
        return open_export_dialog(self, version_name)

    # ------------------------------------------------------------------ view options

    def set_theme(self, name: str, save: bool = True) -> None:
        name = name if name in THEMES else "light"
        app = QApplication.instance()
        if app is not None:
            apply_theme(app, name)
        self.scene.set_theme(THEMES[name])
        self.view.minimap.invalidate()
        self.preview_panel.set_theme(name == "dark")
        (self.act_dark if name == "dark" else self.act_light).setChecked(True)
        self.theme = name
        if save:
            self.prefs.set_theme(name)

    def toggle_theme(self) -> None:
        self.set_theme("light" if self.theme == "dark" else "dark")

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

    def about(self) -> None:
        QMessageBox.about(
            self,
            "About Arborist",
            "<b>Arborist</b><br>A workbench for structural pruning of PyTorch models.",
        )

    def navigation_help(self) -> None:
        QMessageBox.information(
            self,
            "Navigation",
            "Wheel or pinch: zoom around the cursor\nDrag (left or middle button): pan\n"
            "F / Ctrl+0: fit graph\nClick a layer: properties and its group\n"
            "Double-click a block: expand it one level; right-click a layer: collapse its module\n"
            "Ctrl+F: find a layer; Enter again: next match\nEsc: cancel the running job",
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
        if self.document is not None and not self.confirm_discard("quitting"):
            event.ignore()
            return
        self.prefs.qs.setValue("geometry", self.saveGeometry())
        self.prefs.qs.setValue("windowState", self.saveState())
        self.prefs.qs.sync()
        self.loads.cancel(quiet=True)
        self.layouts.cancel(quiet=True)
        self.pruning.previews.cancel(quiet=True)
        self.pruning.prunes.cancel(quiet=True)
        super().closeEvent(event)
