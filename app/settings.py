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

    def input_spec(self, source: str) -> str | None:
        """The input shape the user chose for this model file, if any."""
        value = self.qs.value(f"inputSpec/{_key(source)}")
        return str(value) if value else None

    def set_input_spec(self, source: str, spec: str) -> None:
        self.qs.setValue(f"inputSpec/{_key(source)}", spec)

    def last_folder(self, kind: str = "model") -> str:
        """The folder of the last file opened or written (kind: model, plan, export)."""
        value = self.qs.value(f"lastFolder/{kind}")
        if value:
            return str(value)
        recent = [r for r in self.recent() if os.path.isabs(r)]
        return os.path.dirname(recent[0]) if recent else os.path.expanduser("~")

    def set_last_folder(self, path: str, kind: str = "model") -> None:
        folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        self.qs.setValue(f"lastFolder/{kind}", folder)

    def first_launch(self) -> bool:
        return str(self.qs.value("launched", "false")).lower() != "true"

    def mark_launched(self) -> None:
        self.qs.setValue("launched", True)

    # per model file: where its own model code lives (a .py file or a folder)

    def model_code(self, source: str) -> str | None:
        value = self.qs.value(f"model_code/{_key(source)}", "")
        return str(value) if value else None

    def set_model_code(self, source: str, path: str) -> None:
        self.qs.setValue(f"model_code/{_key(source)}", path)


def _key(source: str) -> str:
    """A QSettings-safe key for a path or zoo spec (slashes and colons would nest groups)."""
    return hashlib.sha1(os.path.abspath(source).encode() if os.path.exists(source)
                        else source.encode()).hexdigest()[:16]
