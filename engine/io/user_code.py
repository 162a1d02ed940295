"""The user's own model code: import it so a pickled module of their classes can load.

``torch.save(model)`` stores ``model``'s class by reference (``mynet.Net``, or
``__main__.Net`` when it was defined in a notebook or a script run directly); unpickling
imports that module. ``code`` names where it lives: a ``.py`` file or a folder to import
from. Importing it runs it, so this is only ever used after the trust gate
(``read_torch_file`` refuses untrusted pickles before any of this runs).

What changes in the process, and why:

* ``sys.path`` gets the code's folder only while the file is unpickled, then is restored;
* modules imported from there stay in ``sys.modules``: the loaded model's classes refer
  to them by name, and saving or copying the (pruned) model later needs them importable;
  removing them would make every later ``torch.save`` of the model fail;
* a class pickled from ``__main__`` is looked up in the given ``.py`` file, imported under a
  private name (``arborist_user_code.<stem>``) so that it shadows nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

PRIVATE_PACKAGE = "arborist_user_code"


def check_code_path(code: str | Path) -> Path:
    """The resolved ``code`` path; ModelLoadError unless it is a .py file or a folder."""
    path = Path(code).expanduser()
    if not path.exists():
        raise ModelLoadError(f"model code not found: {path}")
    if path.is_file() and path.suffix != ".py":
        raise ModelLoadError(f"model code must be a .py file or a folder, not {path.name}")
    if not path.is_file() and not path.is_dir():
        raise ModelLoadError(f"model code must be a .py file or a folder: {path}")
    return path.resolve()


class _CodeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that also finds ``__main__`` classes in the user's .py file."""

    main_module: types.ModuleType | None = None

    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__" and self.main_module is not None:
            found = getattr(self.main_module, name, None)
            if found is not None:
                return found
        return super().find_class(module, name)


def _import_file(path: Path) -> types.ModuleType:
    """Import one .py file under a private name (so it shadows no real module)."""
    name = f"{PRIVATE_PACKAGE}.{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    if PRIVATE_PACKAGE not in sys.modules:
        package = types.ModuleType(PRIVATE_PACKAGE)
        package.__path__ = []  # a namespace for the user's files, nothing else
        sys.modules[PRIVATE_PACKAGE] = package
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import model code {path.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ModelLoadError(
            f"model code {path.name} failed to import ({type(exc).__name__}: {exc})"
        ) from None
    return module


@contextmanager
def importable(code: Path | None) -> Iterator[Any]:
    """Within the block the user's code can be imported; yields a ``pickle_module``.

    The yielded namespace has ``Unpickler`` and ``load``, as ``torch.load(pickle_module=)``
    and plain ``pickle`` reading expect.
    """
    if code is None:
        yield pickle
        return
    folder = code.parent if code.is_file() else code
    unpickler = type("CodeUnpickler", (_CodeUnpickler,), {})
    saved_path = list(sys.path)
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        if code.is_file():
            unpickler.main_module = _import_file(code)

        def load(fh: Any, **kwargs: Any) -> Any:
            return unpickler(fh, **kwargs).load()

        yield types.SimpleNamespace(
            Unpickler=unpickler, load=load, __name__="arborist_user_code_pickle"
        )
    finally:
        sys.path[:] = saved_path


def missing_module(exc: BaseException) -> str | None:
    """The module name an unpickling error says could not be imported, if that was it."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return exc.name
    if isinstance(exc, AttributeError):
        text = str(exc)
        if "Can't get attribute" in text and "__main__" in text:
            return "__main__"
    return None
