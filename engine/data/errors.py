"""The one error type of user data: a bad folder or file is the user's to fix, in one line."""

from __future__ import annotations


class DataError(ValueError):
    """Data that cannot be used as given (empty folder, wrong tensor shape, no tokenizer...).

    The message is one actionable sentence; front ends show it as is (CLI exit 1).
    """
