"""`python -m app`: the GUI, or the CLI when the first argument is a subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys

from app.runtime import freeze_long_lived_objects, guard_none_refcount

CLI_COMMANDS = ("inspect", "prune")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in CLI_COMMANDS:
        try:
            cli = importlib.import_module("app.cli")
        except ImportError:
            print(
                f"arborist: the '{argv[0]}' command is not available yet (app.cli is missing)",
                file=sys.stderr,
            )
            return 2
        return int(cli.main(argv, freeze_gc=True) or 0)
    return run_gui(argv)


def run_gui(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="arborist",
        description="Arborist pruning workbench",
        epilog="headless commands: arborist inspect MODEL, arborist prune MODEL -o OUT "
        "(see arborist inspect --help, arborist prune --help)",
    )
    parser.add_argument("model", nargs="?", help="model file or zoo spec (torchvision:resnet18)")
    parser.add_argument("--settings", help="use this .ini file instead of the user settings")
    parser.add_argument("--theme", choices=("light", "dark"))
    args, qt_args = parser.parse_known_args(argv)
    guard_none_refcount()  # before any Qt call: shiboken6 6.12 + CPython 3.11 drain None

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from app.settings import APPLICATION, ORGANIZATION

    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    settings = QSettings(args.settings, QSettings.IniFormat) if args.settings else QSettings()
    window = MainWindow(settings, auto_open=args.model is None)
    freeze_long_lived_objects()  # Qt, torch and the window: no more full-GC stalls over them
    if args.theme:
        window.set_theme(args.theme)
    window.show()
    if args.model:
        window.open_source(args.model)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
