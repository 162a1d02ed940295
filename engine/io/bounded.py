"""Reading small user files and JSON with hard bounds.

``read_regular_file`` opens without blocking (a FIFO would otherwise hang the
caller) and refuses anything but a regular file (``/dev/zero`` never ends), then
reads at most ``max_bytes``. ``loads_json`` parses with bounded nesting and
integer length, so hostile JSON is a clear error instead of a RecursionError or
the interpreter's "exceeds the limit for integer string conversion".
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any


class BoundedInputError(ValueError):
    """Input over one of the limits in ``engine.io.limits``; the message names it."""


def read_regular_file(path: str | os.PathLike[str], *, max_bytes: int, what: str) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``.

    Raises FileNotFoundError, BoundedInputError (not a regular file, too large)
    or OSError (unreadable), each naming the path.
    """
    p = Path(path)
    shown = shorten(str(p))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {shown} does not exist") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _kind(info.st_mode)
            raise BoundedInputError(f"{what} {shown} is {kind}, not a regular file")
        if info.st_size > max_bytes:
            raise BoundedInputError(
                f"{what} {shown} is {info.st_size:,} bytes; the limit is {max_bytes:,}"
            )
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # grew while we read it
                raise BoundedInputError(f"{what} {shown} is larger than {max_bytes:,} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def shorten(text: str, limit: int = 120) -> str:
    """A path or name cut to ``limit`` characters for one-line messages."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def loads_json(
    text: str | bytes,
    *,
    max_depth: int,
    max_int_digits: int,
    allow_non_finite: bool = False,
) -> Any:
    """``json.loads`` with bounded nesting and integer size.

    Raises BoundedInputError for the limits (and NaN/Infinity unless
    ``allow_non_finite``) and json.JSONDecodeError for syntax errors.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    depth = _max_depth(text, max_depth)
    if depth > max_depth:
        raise BoundedInputError(f"JSON nested deeper than {max_depth} levels")

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_int_digits:
            raise BoundedInputError(
                f"JSON integer of {len(digits.lstrip('-')):,} digits; the limit is {max_int_digits}"
            )
        return int(digits)

    def parse_float(digits: str) -> float:
        value = float(digits)
        if not allow_non_finite and not math.isfinite(value):
            raise BoundedInputError(f"JSON number {digits[:40]} is out of range")
        return value

    def parse_constant(name: str) -> float:
        if not allow_non_finite:
            raise BoundedInputError(f"JSON value {name} is not a number; use a finite number")
        return float(name.replace("Infinity", "inf"))

    try:
        return json.loads(
            text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant
        )
    except RecursionError:  # only if max_depth exceeds the interpreter's limit
        raise BoundedInputError(f"JSON nested deeper than {max_depth} levels") from None


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _max_depth(text: str, stop_over: int) -> int:
    """Deepest bracket nesting outside strings (stops counting past ``stop_over``).

    The regex consumes whole string literals, so only brackets are counted in Python.
    """
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        c = match.group()
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_over:
                    return deepest
        elif c in "]}":
            depth -= 1
    return deepest
