"""Checks on zip archives (``.pt`` from torch.save, ``.pt2``) before anything reads them.

torch's own zip reader inflates members without bounding their size and never
checks their CRC-32, so a 4 MB archive can inflate to gigabytes and flipped
bytes in a weight load silently. Here the central directory is checked first
(member names, count, compression, declared sizes against the file's size),
then every member is read once through Python's ``zipfile``, which verifies
each CRC-32 and never reads past a member's declared size.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import PurePosixPath
from typing import IO

from .errors import ModelLoadError
from .limits import ARCHIVE_SLACK, MAX_ARCHIVE_MEMBERS, MAX_INFLATION

_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_CHUNK = 1 << 20


def open_checked_zip(source: str | os.PathLike[str] | IO[bytes], *, what: str) -> zipfile.ZipFile:
    """A ZipFile whose directory passed ``check_members``; ModelLoadError otherwise."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelLoadError(f"{what} is not a readable zip archive ({exc})") from None
    try:
        check_members(archive, what=what, archive_size=_size_of(source))
    except BaseException:
        archive.close()
        raise
    return archive


def _size_of(source: str | os.PathLike[str] | IO[bytes]) -> int:
    if isinstance(source, (str, os.PathLike)):
        return os.path.getsize(source)
    here = source.tell()
    end = source.seek(0, os.SEEK_END)
    source.seek(here)
    return end


def check_members(archive: zipfile.ZipFile, *, what: str, archive_size: int) -> None:
    """Refuse unsafe names, odd compression and declared sizes that would be a bomb."""
    infos = archive.infolist()
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise ModelLoadError(
            f"{what} has {len(infos):,} archive members; the limit is {MAX_ARCHIVE_MEMBERS:,}"
        )
    total = 0
    for info in infos:
        unsafe = unsafe_member_name(info.filename)
        if unsafe:
            raise ModelLoadError(f"{what} has an archive member {info.filename[:80]!r} {unsafe}")
        if info.compress_type not in _COMPRESSIONS:
            raise ModelLoadError(
                f"{what}: member {info.filename[:80]!r} uses zip compression method "
                f"{info.compress_type}; only stored or deflated members are read"
            )
        total += info.file_size
    bound = MAX_INFLATION * archive_size + ARCHIVE_SLACK
    if total > bound:
        raise ModelLoadError(
            f"{what} would inflate to {total:,} bytes from {archive_size:,} "
            f"(over {MAX_INFLATION}x its size): refusing a decompression bomb"
        )


def unsafe_member_name(name: str) -> str | None:
    """Why ``name`` could escape a folder it was extracted to, or None if it cannot."""
    if "\x00" in name or "\\" in name:
        return "contains a NUL or backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "points outside the archive ('..')"
    return None


def verify_crcs(archive: zipfile.ZipFile, *, what: str) -> None:
    """Read every member once so zipfile checks its CRC-32; ModelLoadError on a mismatch."""
    for info in archive.infolist():
        if info.is_dir():
            continue
        try:
            with archive.open(info) as member:
                while member.read(_CHUNK):
                    pass
        except zipfile.BadZipFile as exc:
            raise ModelLoadError(
                f"{what} is corrupt: member {info.filename[:80]!r} fails its check ({exc}); "
                "the file was damaged after it was written"
            ) from None
        except (OSError, EOFError, ValueError) as exc:
            raise ModelLoadError(
                f"{what} is corrupt: cannot read {info.filename[:80]!r} ({exc})"
            ) from None


def check_torch_zip(path: str | os.PathLike[str], *, what: str) -> None:
    """The full check for a torch.save zip before torch.load reads it."""
    with open_checked_zip(path, what=what) as archive:
        verify_crcs(archive, what=what)
