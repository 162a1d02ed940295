"""Persistent preferences (QSettings): window state, recent sources, theme, first launch."""

from __future__ import annotations

import hashlib
import os

from PySide6.QtCore import QSettings

ORGANIZATION = "Arborist"
APPLICATION = "Arborist"
MAX_RECENT = 10


def default_settings() -> QSettings:
    return QSettings(ORGANIZATION, APPLICATION)


class Preferences:
    """Typed access to the few keys Arborist stores; the QSettings object is injected."""

    def __init__(self, settings: QSettings) -> None:
        self.qs = settings

    def recent(self) -> list[str]:
        value = self.qs.value("recent", [])
        if isinstance(value, str):  # QSettings returns a bare string for one-item lists
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, source: str) -> list[str]:
        items = [source] + [r for r in self.recent() if r != source]
        self.qs.setValue("recent", items[:MAX_RECENT])
        return items[:MAX_RECENT]

    def clear_recent(self) -> None:
        self.qs.setValue("recent", [])

    def theme(self) -> str:
        value = str(self.qs.value("theme", "light"))
        return value if value in ("light", "dark") else "light"

    def set_theme(self, name: str) -> None:
        self.qs.setValue("theme", name)

    def first_launch(self) -> bool:
        return str(self.qs.value("launched", "false")).lower() != "true"

    def mark_launched(self) -> None:
        self.qs.setValue("launched", True)

    # per model file: where its own model code lives (a .py file or a folder)

    @staticmethod
    def _file_key(source: str) -> str:
        digest = hashlib.sha1(os.path.abspath(source).encode()).hexdigest()[:16]
        return f"model_code/{digest}"

    def model_code(self, source: str) -> str | None:
        value = self.qs.value(self._file_key(source), "")
        return str(value) if value else None

    def set_model_code(self, source: str, path: str) -> None:
        self.qs.setValue(self._file_key(source), path)
