"""Crash-safe file writes.

Exports can take minutes and may fail half-way (ONNX export errors, disk full,
Ctrl-C).  Writing to a temporary sibling and ``os.replace``-ing it over the
destination means the destination is either the old file or the complete new
one, never a truncated mix; and the source model file can never be clobbered.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import ExportError

PathLike = str | os.PathLike[str]


def same_file(a: PathLike, b: PathLike) -> bool:
    """True if ``a`` and ``b`` name the same file (symlinks / hard links included)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def atomic_write(
    path: PathLike,
    write_fn: Callable[[Path], None],
    *,
    protect: PathLike | Iterable[PathLike] | None = None,
) -> Path:
    """Call ``write_fn(tmp_path)`` then atomically move ``tmp_path`` to ``path``.

    ``tmp_path`` lives in the destination directory (so the final rename never
    crosses file systems).  On any exception the temporary file is removed and
    the destination is left untouched.  ``protect`` lists paths (typically the
    model's source file) that must never be overwritten: ExportError if
    ``path`` is one of them.
    """
    dest = Path(path)
    protected: list[PathLike]
    if protect is None:
        protected = []
    elif isinstance(protect, (str, os.PathLike)):
        protected = [protect]
    else:
        protected = list(protect)
    for p in protected:
        if same_file(dest, p):
            raise ExportError(
                f"refusing to overwrite the source model file {Path(p)}; choose another output path"
            )
    if dest.is_dir():
        raise ExportError(f"output path {dest} is a directory; give a file name")
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"output directory {parent} does not exist")

    # Keep the real suffix last: some writers (torch.export.save) check it.
    fd, tmp_name = tempfile.mkstemp(
        dir=parent, prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}"
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_fn(tmp)
        if not tmp.exists():
            raise ExportError(f"writer produced no file for {dest}")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes 0600; keep the replaced file's mode, else a usual 0644.
        os.chmod(tmp, dest.stat().st_mode & 0o777 if dest.exists() else 0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(parent)
    return dest


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (best effort: not supported on every OS)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
