"""Exceptions raised by model loading and export.

Every message is meant to be shown verbatim to a user (GUI dialog or CLI), so
it is one line, names the file or spec involved and says what to do next.
"""

from __future__ import annotations


class ModelLoadError(Exception):
    """A model source could not be turned into an ``nn.Module``."""


class UntrustedPickleError(ModelLoadError):
    """The file can only be loaded by executing code stored inside it.

    Raised instead of executing that code; the caller may retry with
    ``trust=True`` when (and only when) the file comes from a trusted source.
    """


class MissingCodeError(ModelLoadError):
    """A trusted pickle names a class whose module cannot be imported here.

    ``module`` is the missing module's name when the unpickler said it (``__main__`` for
    classes defined in a notebook or a script): the caller may retry with ``code=``.
    """

    def __init__(self, message: str, module: str | None = None) -> None:
        super().__init__(message)
        self.module = module


class ArchRequiredError(ModelLoadError):
    """A weights-only file was opened without saying which architecture it fills.

    ``candidates`` ranks zoo entries by how well their tensor names and shapes match the
    file (``engine.io.arch_match.ArchCandidate``, best first), for a picker to offer.
    """

    def __init__(self, message: str, candidates: list | None = None) -> None:
        super().__init__(message)
        self.candidates = list(candidates or [])


class InputSpecError(ValueError):
    """An input specification string (e.g. ``"1,3,224,224"``) is malformed."""


class ExportError(Exception):
    """A model could not be written to the requested path or format."""


def short_reason(exc: BaseException, limit: int = 160) -> str:
    """``"TypeName: first line"`` of an exception, bounded, for one-line messages."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
