"""Arborist's PySide6 front end (the workbench window) and its entry point.

Importing `app` changes nothing process-wide (the headless CLI imports it too); the
GUI entry point applies what the GUI needs (`app.runtime.guard_none_refcount`).
"""
