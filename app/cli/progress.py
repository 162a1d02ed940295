"""Progress bars on stderr for the long steps (load, trace, prune, export).

Bars only appear for a person watching a terminal: never with ``--json``
(scripts parse stdout and often capture stderr too) and never when stderr is
not a tty. tqdm is imported only when a bar is actually drawn.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Progress:
    """Stage bars (one per step) and counting bars (steps / groups)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def for_terminal(cls, json_mode: bool) -> Progress:
        isatty = getattr(sys.stderr, "isatty", None)
        return cls(enabled=not json_mode and bool(isatty and isatty()))

    def _bar(self, **kwargs: Any) -> Any:
        import shutil

        from tqdm import tqdm

        size = shutil.get_terminal_size((100, 20))
        # some ptys report 0x0, with which tqdm prints only empty lines
        return tqdm(
            file=sys.stderr,
            ncols=size.columns if size.columns >= 40 else 100,
            nrows=size.lines if size.lines >= 5 else 20,
            leave=True,
            **kwargs,
        )

    @contextmanager
    def stage(self, label: str) -> Iterator[None]:
        """A one-tick bar that shows ``label`` while the step runs, then its duration."""
        if not self.enabled:
            yield
            return
        bar = self._bar(total=1, desc=label, bar_format="{desc}: {elapsed}{postfix}")
        try:
            yield
            bar.update(1)
        finally:
            bar.close()

    @contextmanager
    def counter(self, label: str) -> Iterator[Callable[[int, int, str], None]]:
        """A bar driven by ``callback(done, total, message)`` (engine progress callbacks)."""
        if not self.enabled:
            yield lambda done, total, message: None
            return
        bar = self._bar(total=0, desc=label)

        def callback(done: int, total: int, message: str) -> None:
            if bar.total != total:
                bar.total = total
            bar.n = done
            bar.set_postfix_str(message[:60], refresh=False)
            bar.refresh()

        try:
            yield callback
        finally:
            bar.close()

    @contextmanager
    def fraction(self, label: str) -> Iterator[Callable[[float, str], None]]:
        """A bar driven by the engine's shared ``callback(fraction, message)``."""
        if not self.enabled:
            yield lambda fraction, message: None
            return
        shape = "{desc}: {percentage:3.0f}%|{bar}|{postfix}"
        bar = self._bar(total=100, desc=label, bar_format=shape)

        def callback(fraction: float, message: str) -> None:
            bar.n = int(100 * min(max(fraction, 0.0), 1.0))
            bar.set_postfix_str(message[:60], refresh=False)
            bar.refresh()

        try:
            yield callback
        finally:
            bar.close()
