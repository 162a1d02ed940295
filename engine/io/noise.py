"""Collect what torch prints while it reads or writes a file, instead of printing it.

torch reports through both ``warnings`` and ``logging`` (``torch.export``'s
loader logs a traceback for every unreadable file). Users get one line from us;
the captured text is kept so a ``--debug`` run or a details pane can show it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

#: Loggers whose records are captured (children included).
CAPTURED_LOGGERS = ("torch", "onnxscript", "onnx_ir")


@dataclass
class Noise:
    """The warnings and log records captured in one ``captured_noise`` block."""

    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)


class _Collect(logging.Handler):
    def __init__(self, noise: Noise) -> None:
        super().__init__(logging.DEBUG)
        self.noise = noise

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record with bad arguments must not break the caller
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        self.noise.lines.append(f"{record.name}: {record.levelname}: {text}")


@contextmanager
def captured_noise() -> Iterator[Noise]:
    """Within the block, torch's warnings and log records go into the yielded Noise."""
    noise = Noise()
    handler = _Collect(noise)
    saved = []
    for logger in _loggers():  # torch gives many child loggers their own stderr handler
        saved.append((logger, logger.handlers, logger.propagate))
        logger.handlers = [handler]
        logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield noise
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers = handlers
            logger.propagate = propagate
        noise.lines.extend(
            f"{w.category.__name__}: {w.message}" for w in locals().get("caught") or []
        )


def _loggers() -> list[logging.Logger]:
    for name in CAPTURED_LOGGERS:
        logging.getLogger(name)  # make sure the roots exist
    return [
        logger
        for name, logger in list(logging.Logger.manager.loggerDict.items())
        if isinstance(logger, logging.Logger)
        and any(name == p or name.startswith(p + ".") for p in CAPTURED_LOGGERS)
    ]
