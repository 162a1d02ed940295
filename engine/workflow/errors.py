"""Errors of the workflow a front end turns into a message (CLI exit 1, GUI dialog)."""

from __future__ import annotations

from ..io.errors import ModelLoadError


class InputsUnknown(ModelLoadError):
    """No example inputs are known for the model: the user must give an input shape."""


class InputsDoNotRun(ModelLoadError):
    """The model does not run on its example inputs; `inputs` is the spec tried."""

    def __init__(self, message: str, inputs: str, guessed: bool) -> None:
        super().__init__(message)
        self.inputs = inputs
        self.guessed = guessed
