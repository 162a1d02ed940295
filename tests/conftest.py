"""Shared pytest setup: make Qt headless before anything imports it."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
