"""The workbench window: a layout of panels around the canvas, and nothing else.

State lives in the Workbench (app/workbench.py): document, plan, selection, versions,
jobs. Each panel observes it; the canvas is driven by the CanvasController; the menus and
shortcuts come from one table (app/actions.py, built by app/menus.py). What the user does
runs in flows that need only a FlowHost (app/flow_host.py): opening a model
(app/open_flow.py), plan files and the unsaved-edits prompt (app/plan_files.py), pruning
(app/prune_flow.py) and export (app/export_flow.py). The methods below that only forward
are the window's public verbs (the action table, scripts and tests call them).
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFrame,
    QMainWindow,
    QScrollArea,
    QWidget,
)

from app import engine_api
from app.actions import build_actions
from app.canvas.controller import CanvasController
from app.canvas.menu import node_menu
from app.canvas.prepare import PreparedView
from app.canvas.scene import GraphScene
from app.canvas.search import LayerSearch
from app.canvas.style import THEMES
from app.canvas.view import GraphView
from app.dialogs.export import ExportDialog
from app.dialogs.help import show_about, show_navigation
from app.document import Document
from app.export_flow import open_export_dialog
from app.flow_host import FlowHost, on_host
from app.menus import build_menu_bar, build_toolbar, theme_actions, undo_actions
from app.open_flow import Loader, OpenFlow
from app.panels.data import DataPanel
from app.panels.groups import GroupsPanel
from app.panels.module_tree import ModuleTreePanel
from app.panels.preview import PreviewPanel
from app.panels.properties import PropertiesPanel
from app.panels.search_box import LayerSearchBox
from app.panels.settings import SettingsPanel
from app.panels.status_bar import StatusBar
from app.panels.versions import VersionsPanel
from app.plan_files import PlanFiles
from app.prune_flow import PruneFlow
from app.pruning import PruningController
from app.settings import Preferences, default_settings
from app.theme import apply_theme
from app.workbench import Workbench


class MainWindow(QMainWindow):
    documentChanged = Signal()  # noqa: N815 (Qt naming)
    viewChanged = Signal()  # noqa: N815 - emitted after every (re)layout is on screen

    # the flows' state, read (and, for `ask` and `loader`, replaced) on the window by tests
    ask = on_host("ask")
    last_dialog = on_host("last_dialog")
    result_dialog = on_host("result_dialog")
    export_dialog = on_host("export_dialog")
    recover_teacher = on_host("recover_teacher")
    loader = property(lambda w: w.opening.loader, lambda w, f: setattr(w.opening, "loader", f))

    def __init__(
        self,
        settings: QSettings | None = None,
        auto_open: bool = True,
        loader: Loader | None = None,
    ) -> None:
        super().__init__()
        self.prefs = Preferences(settings if settings is not None else default_settings())
        self.setWindowTitle("Arborist")
        self.setAcceptDrops(True)

        self.pruning = PruningController(self)
        self.workbench = wb = Workbench(self.pruning, self.prefs)
        wb.plans.editor.setParent(self)  # the undo stack (and its actions) close with the window
        self.host = FlowHost(wb, self)
        self.plan_files = PlanFiles(self.host)
        self.opening = OpenFlow(self.host, self.plan_files, loader)
        self.loads = self.opening.loads
        self.prune_flow = PruneFlow(self.host)

        theme = self.prefs.theme()
        self.scene = GraphScene(THEMES[theme], self)
        self.view = GraphView(self.scene, self)
        self.canvas = CanvasController(wb, self.scene, self.view, self)
        self.layouts = self.canvas.layouts
        self.layer_search = LayerSearch(wb, self.canvas)
        self.layouts.failed.connect(
            lambda f: self.host.show_error("Layout failed", f.message, f.details)
        )
        self.canvas.relaidOut.connect(self.viewChanged)
        self.view.nodeContextMenu.connect(self._node_menu)
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
        self.data_panel.attach(wb)
        right, left = Qt.RightDockWidgetArea, Qt.LeftDockWidgetArea
        self.groups_dock = self._dock("Groups", "groupsDock", self.groups_panel, right)
        self.props_dock = self._dock(
            "Properties", "propertiesDock", self.properties, right, scroll=True
        )
        self.settings_dock = self._dock(
            "Pruning settings", "settingsDock", self.settings_panel, left, scroll=True
        )
        self.preview_dock = self._dock("Preview", "previewDock", self.preview_panel, left)
        self.tree_dock = self._dock("Modules", "modulesDock", self.module_tree, left)
        self.versions_dock = self._dock("Versions", "versionsDock", self.versions_panel, right)
        self.data_dock = self._dock("Data", "dataDock", self.data_panel, left, scroll=True)
        pairs = (
            (self.settings_dock, self.tree_dock),
            (self.preview_dock, self.data_dock),
            (self.props_dock, self.versions_dock),
        )
        for first, second in pairs:
            self.tabifyDockWidget(first, second)
        for first, _ in pairs:  # raised after all are tabbed (earlier left a ghost tab bar)
            first.raise_()

        self.status_bar = bar = StatusBar(self, workbench=wb)
        self.setStatusBar(bar)
        for name in ("status_label", "counts_label", "zoom_label", "progress", "cancel_button"):
            setattr(self, name, getattr(bar, name))  # tests and scripts read them on the window
        self.cancel_button.clicked.connect(self.cancel_current)
        self.view.zoomChanged.connect(lambda s: self.zoom_label.setText(f"{s * 100:.0f}%"))
        wb.events.document_changed.connect(self._on_document_change)
        wb.events.selection_changed.connect(self._on_selection_change)
        wb.events.job_changed.connect(self._on_job_change)

        from app.depth_view import install as install_depth  # before the actions: depth.measure
        install_depth(self)
        self._build_actions()
        self.search = LayerSearchBox(self.layer_search, self)
        self.recent_menu = build_menu_bar(self, self._docks(), self.opening.fill_recent_menu)
        self.toolbar = build_toolbar(self, self.search)
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

    def _docks(self) -> list[QDockWidget]:
        return [
            self.groups_dock, self.props_dock, self.settings_dock, self.preview_dock,
            self.tree_dock, self.versions_dock, self.data_dock,
        ]  # fmt: skip

    def _build_actions(self) -> None:
        self.actions_by_name = build_actions(self)
        self.act_cancel.setEnabled(False)
        self.act_minimap.setChecked(True)
        self.theme_group, self.act_light, self.act_dark = theme_actions(self, self.set_theme)
        stack = self.workbench.plans.stack
        self.act_undo, self.act_redo, self.tb_undo, self.tb_redo = undo_actions(self, stack)
        for act in self._document_actions():
            act.setEnabled(False)

    def _document_actions(self) -> list:
        return [self.act_save_plan, self.act_open_plan, self.act_prune, self.act_export]

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
            self.resizeDocks([self.groups_dock, self.props_dock], [520, 520], Qt.Horizontal)
            self.resizeDocks([self.groups_dock, self.props_dock], [460, 420], Qt.Vertical)
            self.resizeDocks([self.settings_dock, self.preview_dock], [360, 360], Qt.Horizontal)
            self.resizeDocks([self.settings_dock, self.preview_dock], [430, 400], Qt.Vertical)

    # ------------------------------------------------------------------ following the workbench

    def _on_document_change(self, doc: Document | None) -> None:
        for act in self._document_actions():
            act.setEnabled(doc is not None)
        if doc is None:
            self.setWindowTitle("Arborist")
            return
        version = self.workbench.version
        self.setWindowTitle(f"{doc.title} [{version.name if version else ''}] — Arborist")
        self.view.setFocus()  # keyboard shortcuts (F, M) go to the canvas, not the search box
        self.documentChanged.emit()

    def _on_job_change(self, _job) -> None:
        wb = self.workbench
        self.act_cancel.setEnabled(wb.busy)
        self.act_prune.setEnabled(wb.document is not None and not wb.running("prune"))

    def _on_selection_change(self, sel) -> None:
        """A group chosen in the table: bring its root layer into view if it is off-screen."""
        doc = self.document
        if doc is None or sel.node or sel.group is None:
            return
        group = doc.group(sel.group)
        root = doc.node_by_name(group.root) if group is not None else None
        root_view = self.view_id(root.id) if root else None
        item = self.scene.node_items.get(root_view) if root_view is not None else None
        if item is not None and not self.view.visible_scene_rect().contains(item.pos()):
            self.view.centerOn(item)

    # ------------------------------------------------------------------ verbs (forwarders)

    def open_source(self, source: str, *args, **kwargs) -> bool:
        return self.opening.open_source(source, *args, **kwargs)

    def open_demo(self) -> None:
        self.opening.open_demo()

    def open_file_dialog(self) -> None:
        self.opening.file_dialog()

    def open_builtin_dialog(self) -> None:
        self.opening.builtin_dialog()

    def cancel_current(self) -> None:
        """Esc / the status bar's Cancel: stops whichever job runs."""
        if self.export_dialog is not None and self.export_dialog.runner.busy:
            self.export_dialog.cancel()
        if self.loads.busy:
            self.opening.cancel()
        elif self.pruning.busy:
            self.pruning.cancel_prune()

    def prune(self) -> None:
        self.prune_flow.prune()

    def accept_pruned(self, result, view: PreparedView) -> None:
        self.prune_flow.accept(result, view)

    def open_recover_dialog(self):
        from app.dialogs.recover import open_recover_dialog

        return open_recover_dialog(self)

    def open_export_dialog(self, version_name: str | None = None) -> ExportDialog | None:
        return open_export_dialog(self.host, version_name)

    def make_scope_from_selection(self) -> None:
        self.groups_panel.make_scope_from_selection()

    def view_id(self, summary_id: int) -> int | None:
        return self.canvas.view_id(summary_id)

    def select_group(self, group_id: int | None) -> None:
        self.workbench.select(group=group_id)

    def clear_selection(self) -> None:
        self.workbench.select()

    def on_node_clicked(self, view_id: int) -> None:
        self.canvas.click(view_id)

    def focus_search(self) -> None:
        self.search.focus()

    def find_layers(self, text: str) -> list[int]:
        return self.layer_search.find(text)

    def search_next(self, text: str) -> int | None:
        return self.search.next(text)

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

    # ------------------------------------------------------------------ view options

    def zoom_in(self) -> None:
        self.view.zoom_by(1.25, animate=True)

    def zoom_out(self) -> None:
        self.view.zoom_by(0.8, animate=True)

    def zoom_100(self) -> None:
        self.view.set_scale(1.0)

    def toggle_minimap(self) -> None:
        self.view.minimap.setVisible(self.act_minimap.isChecked())

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

    def about(self) -> None:
        show_about(self)

    def navigation_help(self) -> None:
        show_navigation(self)

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
        if self.document is not None and not self.plan_files.confirm_discard("quitting"):
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
