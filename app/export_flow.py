"""File › Export…: the export dialog for a version, started where the user last saved.

Why not in the MainWindow: choosing the start folder and the version and remembering
the folder are behaviour; the window only lays out widgets. Needs only a FlowHost.
"""

from __future__ import annotations

import os

from app import engine_api
from app.dialogs.export import ExportDialog
from app.flow_host import FlowHost


def open_export_dialog(host: FlowHost, version_name: str | None = None) -> ExportDialog | None:
    """Open (non-modal) the export dialog for `version_name` (the current version if None)."""
    wb = host.workbench
    if wb.document is None:
        return None
    version = wb.version_named(version_name) if version_name else wb.version
    doc = version.document
    prefs = wb.prefs
    start = prefs.qs.value("lastFolder/export") or (
        "" if engine_api.is_zoo_spec(doc.source) else os.path.dirname(doc.source)
    )
    dialog = ExportDialog(
        doc,
        host.parent,
        start_dir=str(start or prefs.last_folder("model")),
        version=version.name,
        versions=[v.name for v in wb.versions],
    )
    dialog.versionChosen.connect(
        lambda name: dialog.set_document(wb.version_named(name).document, name)
    )
    dialog.exported.connect(lambda r: prefs.set_last_folder(r.path, "export"))
    host.export_dialog = dialog
    host.show(dialog)
    return dialog
