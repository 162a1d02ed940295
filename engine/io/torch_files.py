"""Reading ``.pt`` / ``.pth`` files without running code from them unless trusted.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers.
Zip files are checked first (``zip_guard``): every member's CRC-32 (torch's
reader never checks it, so flipped bytes in a weight would load silently) and
their inflated sizes (decompression bombs).
When it refuses a file because the pickle names other Python globals (a
pickled ``nn.Module``, or something hostile) we raise UntrustedPickleError;
only ``trust=True`` re-reads it with ``weights_only=False``.  Every other
failure is reported as a corrupt / foreign file, never as a raw traceback.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import MissingCodeError, ModelLoadError, UntrustedPickleError
from .user_code import check_code_path, importable, missing_module
from .zip_guard import check_torch_zip

_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def pickle_reason(exc: BaseException, limit: int = 160) -> str:
    """First sentence of an exception message, skipping torch's weights-only boilerplate."""
    msg = str(exc)
    if "Weights only load failed" in msg:
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", msg)
        msg = detail.group(1) if detail else "unreadable pickle data"
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    first = lines[0].split(". ")[0] if lines else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_readable_file(path: Path) -> None:
    """ModelLoadError unless ``path`` is an existing, non-empty, readable file."""
    if not path.exists():
        raise ModelLoadError(f"file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"not a PyTorch file or corrupt: {path.name} is empty (0 bytes)")


def read_torch_file(path: Path, *, trust: bool = False, code: str | Path | None = None) -> Any:
    """Return the object stored in a torch.save (or plain pickle) file; see module docstring.

    ``code`` (a .py file or folder, see ``user_code``) is imported only after the trust
    gate, and only when the file needs unpickling.
    """
    check_readable_file(path)
    if is_plain_pickle(path):
        return _read_plain_pickle(path, trust=trust, code=code)
    if zipfile.is_zipfile(path):  # torch's reader checks neither CRCs nor inflated sizes
        check_torch_zip(path, what=path.name)
    try:
        return _torch_load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        needs = _unsafe_global(exc)
        if needs is None:
            raise _corrupt(path, exc) from None
    except Exception as exc:
        raise _corrupt(path, exc) from None
    if not trust:
        raise _untrusted(path, needs)
    code_path = check_code_path(code) if code is not None else None
    try:
        with importable(code_path) as pickle_module:
            return _torch_load(path, weights_only=False, pickle_module=pickle_module)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise _trusted_failure(path, exc, code_path) from None


def _untrusted(path: Path, needs: str) -> UntrustedPickleError:
    return UntrustedPickleError(
        f"{path.name} stores pickled Python objects (needs {needs}) and loading it would run code "
        f"from the file; pass trust=True (--trust) only if it comes from a trusted source"
    )


def _trusted_failure(path: Path, exc: BaseException, code: Path | None = None) -> ModelLoadError:
    if isinstance(exc, (AttributeError, ImportError)):
        where = f" (not in {code.name} either)" if code is not None else ""
        return MissingCodeError(
            f"{path.name} needs Python code that is not importable here ({pickle_reason(exc)})"
            f"{where}; pass code= (--code PATH): the .py file or folder that defines the "
            f"model class, or install its package",
            module=missing_module(exc),
        )
    return _corrupt(path, exc)


def is_plain_pickle(path: Path) -> bool:
    """A pickle written by ``pickle.dump`` rather than torch.save.

    torch.save writes a zip archive, or (legacy format) a pickle stream whose
    first object is a bare integer magic number; ``torch.load`` cannot read
    anything else, so plain pickles are read by ``_read_plain_pickle``.
    """
    with open(path, "rb") as fh:
        if fh.read(1) != b"\x80":  # pickle protocol >= 2 always starts with PROTO
            return False
        fh.seek(0)
        try:
            ops = {op.name for op, _arg, _pos in pickletools.genops(fh)}
        except Exception:
            return False  # damaged: let torch.load produce the error
    return not ops <= _LEGACY_MAGIC_OPS


_LEGACY_MAGIC_OPS = {
    "PROTO",
    "FRAME",
    "LONG1",
    "LONG4",
    "LONG",
    "INT",
    "BININT",
    "BININT1",
    "BININT2",
    "STOP",
}


def _read_plain_pickle(path: Path, *, trust: bool, code: str | Path | None = None) -> Any:
    found = scan_pickle_globals(path)
    if found is None:
        raise ModelLoadError(f"not a PyTorch file or corrupt: {path.name} (damaged pickle stream)")
    if found and not trust:
        raise _untrusted(path, ", ".join(found[:3]))
    code_path = check_code_path(code) if code is not None and found else None
    try:
        with importable(code_path) as pickle_module, open(path, "rb") as fh:
            return pickle_module.load(fh)  # no globals (safe), or trusted by the caller
    except ModelLoadError:
        raise
    except Exception as exc:
        raise _trusted_failure(path, exc, code_path) from None


def _corrupt(path: Path, exc: BaseException) -> ModelLoadError:
    """Error for an unreadable file, explained by its header when that is telling."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PK") or head[:1] == b"\x80":
        reason = pickle_reason(exc)  # zip or pickle, but damaged: torch's reason is useful
    elif head.isascii() and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        reason = f"it is a text file starting {head.decode(errors='replace')!r}"
    else:
        reason = f"unrecognised header {head.hex()}; expected a zip archive or pickle"
    return ModelLoadError(f"not a PyTorch file or corrupt: {path.name} ({reason})")


def _torch_load(path: Path, *, weights_only: bool, pickle_module: Any = None) -> Any:
    extra = {"pickle_module": pickle_module} if pickle_module is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pickle-protocol / deprecation chatter
        return torch.load(path, map_location="cpu", weights_only=weights_only, **extra)


_GLOBAL_OPS = {"GLOBAL", "INST"}
_CODE_OPS = {"STACK_GLOBAL", "EXT1", "EXT2", "EXT4"}


def scan_pickle_globals(path: Path) -> list[str] | None:
    """Globals a raw pickle file would import, found by parsing only (never unpickling).

    Returns None when the file is not a well-formed pickle stream.
    """
    strings: list[str | None] = []  # values pushed, as far as names need them
    memo: dict[int, str | None] = {}
    found: list[str] = []
    try:
        with open(path, "rb") as fh:
            for opcode, arg, _pos in pickletools.genops(fh):
                name = opcode.name
                if name in _GLOBAL_OPS:
                    found.append(str(arg).replace(" ", "."))
                elif name == "STACK_GLOBAL":
                    mod, attr = strings[-2:] if len(strings) >= 2 else [None, None]
                    found.append(f"{mod}.{attr}" if mod and attr else "a Python global")
                elif name in _CODE_OPS:
                    found.append("a registered pickle extension")
                elif name == "MEMOIZE":
                    memo[len(memo)] = strings[-1] if strings else None
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[int(arg)] = strings[-1] if strings else None
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    strings.append(memo.get(int(arg)))
                else:
                    strings.append(arg if isinstance(arg, str) else None)
    except Exception:
        return None
    return list(dict.fromkeys(found))


def _unsafe_global(exc: pickle.UnpicklingError) -> str | None:
    """Name of the global the weights-only unpickler refused, if that was the failure."""
    msg = str(exc)
    match = _GLOBAL_RE.search(msg)
    if match:
        return match.group(1)
    if "Unsupported global" in msg or "not an allowed global" in msg:
        return "a Python global"
    return None


# ------------------------------------------------------------------ state dicts


def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping of str -> tensor."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def find_state_dict(obj: Any) -> Mapping[str, torch.Tensor] | None:
    """The state dict in ``obj``: itself, or under a usual training-checkpoint key."""
    if is_state_dict(obj):
        return obj
    if isinstance(obj, Mapping):
        for key in _STATE_DICT_KEYS:
            if is_state_dict(obj.get(key)):
                return obj[key]
    return None


def describe_object(obj: Any) -> str:
    """Short human description of an unexpected loaded object."""
    name = type(obj).__name__
    if isinstance(obj, Mapping):
        keys = [repr(k) for k in list(obj)[:5]]
        more = ", ..." if len(obj) > 5 else ""
        return (
            f"a {name} with {len(obj)} keys ({', '.join(keys)}{more})"
            if obj
            else f"an empty {name}"
        )
    if isinstance(obj, (list, tuple, set)):
        return f"a {name} of {len(obj)} items"
    if isinstance(obj, torch.Tensor):
        return f"a single tensor of shape {tuple(obj.shape)}"
    return f"a {name}"


def _strip_prefix(sd: Mapping[str, torch.Tensor], expected: set[str]) -> Mapping[str, torch.Tensor]:
    """Drop DataParallel's ``module.`` or torch.compile's ``_orig_mod.`` prefix."""
    for prefix in ("module.", "_orig_mod."):
        if (
            sd
            and all(k.startswith(prefix) for k in sd)
            and not any(k.startswith(prefix) for k in expected)
        ):
            return {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def load_state_dict_strict(
    model: torch.nn.Module, sd: Mapping[str, torch.Tensor], *, what: str, arch: str
) -> None:
    """``load_state_dict(strict=True)`` with a one-line, example-rich mismatch error."""
    expected = model.state_dict()
    sd = _strip_prefix(sd, set(expected))
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatches", shapes),
        ):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {'; '.join(items[:2])})")
        hint = "pass the right arch"
        if shapes and not missing and not unexpected:
            hint += " (only shapes differ: a pruned model? save it as an Arborist safe checkpoint)"
        raise ModelLoadError(
            f"state dict in {what} does not match {arch}: {', '.join(parts)}; {hint}"
        )
    try:
        model.load_state_dict(sd, strict=True)
    except Exception as exc:
        raise ModelLoadError(
            f"state dict in {what} does not load into {arch}: {pickle_reason(exc)}"
        ) from None
