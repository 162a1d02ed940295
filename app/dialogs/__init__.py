"""Dialogs: trust, input shape, built-in model picker, errors."""
