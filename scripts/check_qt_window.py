"""Open a Qt window on the current platform (CI: QT_QPA_PLATFORM=xcb under Xvfb) and quit.

Exit 0 when the platform plugin loaded and a window was shown; Qt itself aborts the process
when the plugin cannot load, which is exactly what this check is for.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel


def main() -> int:
    app = QApplication(sys.argv)
    window = QLabel("Arborist: Qt platform check")
    window.resize(320, 80)
    window.show()
    shown: list[bool] = []
    QTimer.singleShot(300, lambda: (shown.append(window.isVisible()), app.quit()))
    app.exec()
    print(f"platform {app.platformName()}: window shown = {bool(shown and shown[0])}")
    return 0 if shown and shown[0] else 1


if __name__ == "__main__":
    sys.exit(main())
