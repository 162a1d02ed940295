"""`python -m app`: the GUI, or the CLI when the first argument is a subcommand.

The decision never starts Qt for a command line that was meant for the CLI: a known
subcommand runs headless; CLI flags without a subcommand (``arborist --json``) and a
word that is neither a subcommand nor an existing file (``arborist evaluate``) are
usage errors (exit 2) instead of a window, which on a headless machine would abort.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from app.runtime import (
    collect_garbage_on_gui_thread,
    freeze_long_lived_objects,
    guard_none_refcount,
)

EXIT_USAGE = 2
FALLBACK_COMMANDS = ("inspect", "prune")
#: Options the GUI itself takes (Qt's own, like -platform, pass through to Qt).
GUI_OPTIONS = ("--settings", "--theme", "-h", "--help")
#: A bare word like these is meant as a subcommand, not as a model path or zoo spec.
_COMMAND_WORD = re.compile(r"[a-z][a-z0-9-]*")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from app.cli.commands import COMMAND_NAMES
    except ImportError:  # a broken install: still tell the command words from files
        COMMAND_NAMES = FALLBACK_COMMANDS  # noqa: N806
    if argv and argv[0] in COMMAND_NAMES:
        try:
            cli = importlib.import_module("app.cli")
        except ImportError:
            sys.stderr.write(
                f"arborist: the '{argv[0]}' command is not available (app.cli is missing)\n"
            )
            return EXIT_USAGE
        return int(cli.main(argv, freeze_gc=True) or 0)
    problem = cli_intent_without_command(argv, COMMAND_NAMES)
    if problem:
        sys.stderr.write(f"arborist: error: {problem}\n")
        return EXIT_USAGE
    if "-h" not in argv and "--help" not in argv:
        missing = missing_display()
        if missing:
            sys.stderr.write(f"arborist: error: {missing}\n")
            return 1
    return run_gui(argv)


def missing_display(env: dict[str, str] | None = None) -> str | None:
    """On Linux, Qt aborts the process without a display: say so in one line instead."""
    env = dict(os.environ) if env is None else env
    if not sys.platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no display to open the window on (DISPLAY is not set); run it in a desktop session, "
        "or use a command: arborist inspect|prune MODEL (see arborist --help)"
    )


def cli_intent_without_command(argv: list[str], commands: tuple[str, ...]) -> str | None:
    """Why ``argv`` is a broken CLI call rather than a GUI start, or None for the GUI."""
    names = ", ".join(commands)
    usage = f"use 'arborist COMMAND ...' with COMMAND one of: {names} (see arborist --help)"
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--") and flag not in GUI_OPTIONS:
            if flag in _cli_flags():
                return f"{flag} is an option of the command line, which needs a command; {usage}"
            return f"unknown option {flag[:60]}; the GUI takes --settings and --theme; {usage}"
    words = [a for a in argv if not a.startswith("-")]
    if words and _COMMAND_WORD.fullmatch(words[0]) and not os.path.exists(words[0]):
        return f"unknown command {words[0]!r}; {usage}; to open a model, give its file or zoo spec"
    return None


def _cli_flags() -> set[str]:
    """Every long option of every subcommand (read from the parser, so it stays in sync)."""
    try:
        from app.cli.parser import build_parser
    except ImportError:
        return set()
    flags: set[str] = set()
    parser = build_parser()
    for action in parser._subparsers._group_actions:  # noqa: SLF001 - argparse has no API
        for sub in action.choices.values():
            for a in sub._actions:  # noqa: SLF001
                flags.update(o for o in a.option_strings if o.startswith("--"))
    return flags


def run_gui(argv: list[str]) -> int:
    try:
        from app.cli.commands import COMMAND_NAMES
    except ImportError:
        COMMAND_NAMES = FALLBACK_COMMANDS  # noqa: N806
    commands = ", ".join(f"arborist {name} MODEL" for name in COMMAND_NAMES)
    parser = argparse.ArgumentParser(
        prog="arborist",
        description="Arborist pruning workbench",
        epilog=f"headless commands: {commands} (see arborist COMMAND --help)",
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
    collect_garbage_on_gui_thread()  # a worker's collection must not destroy Qt objects
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
