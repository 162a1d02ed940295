"""Model code: pickled models of the user's own classes load, after trust, with --code."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from engine.io import MissingCodeError, ModelLoadError, UntrustedPickleError, load_model

NET_SOURCE = textwrap.dedent(
    """
    import pathlib
    import torch

    MARKER = pathlib.Path(__file__).with_name("imported.marker")
    MARKER.write_text("imported")  # proof that importing this file ran it

    class {cls}(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))
    """
)


def _import_as(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def project(tmp_path: Path):
    """A model saved from the user's package ``usernets_<id>``, which is then forgotten."""
    name = f"usernets_{tmp_path.name.replace('-', '_')}"
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / f"{name}.py").write_text(NET_SOURCE.format(cls="UserNet"))
    module = _import_as(name, folder / f"{name}.py")
    torch.manual_seed(0)
    model = module.UserNet().eval()
    path = tmp_path / "user_model.pt"
    torch.save(model, path)
    del sys.modules[name]
    (folder / "imported.marker").unlink()
    yield path, folder, name, model
    sys.modules.pop(name, None)


def test_missing_code_is_named_and_code_folder_loads_it(project):
    path, folder, name, model = project
    with pytest.raises(MissingCodeError) as info:
        load_model(path, trust=True)
    assert info.value.module == name and "pass code= (--code PATH)" in str(info.value)
    before = list(sys.path)
    loaded = load_model(path, trust=True, code=folder)
    assert sys.path == before  # the folder was on sys.path only while unpickling
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)
    assert type(loaded.model).__module__ == name  # kept importable: it can be saved again
    torch.save(loaded.model, path.with_name("again.pt"))


def test_code_is_never_imported_without_trust(project):
    path, folder, _name, _model = project
    with pytest.raises(UntrustedPickleError):
        load_model(path, code=folder)
    assert not (folder / "imported.marker").exists()


def test_main_module_classes_are_found_in_the_given_file(tmp_path: Path):
    """``torch.save(model)`` in a notebook or a script stores ``__main__.NotebookNet``."""
    code = tmp_path / "notebook_code.py"
    code.write_text(NET_SOURCE.format(cls="NotebookNet"))
    module = _import_as("notebook_code_tmp", code)
    cls = module.NotebookNet
    main = sys.modules["__main__"]
    cls.__module__ = "__main__"
    main.NotebookNet = cls
    try:
        torch.manual_seed(0)
        model = cls().eval()
        path = tmp_path / "nb.pt"
        torch.save(model, path)
    finally:
        delattr(main, "NotebookNet")
        del sys.modules["notebook_code_tmp"]
    with pytest.raises(MissingCodeError) as info:
        load_model(path, trust=True)
    assert info.value.module == "__main__"
    loaded = load_model(path, trust=True, code=code)
    assert type(loaded.model).__name__ == "NotebookNet"
    assert type(loaded.model).__module__.startswith("arborist_user_code.")
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)


def test_bad_code_paths_are_clear_errors(project, tmp_path: Path):
    path, _folder, _name, _model = project
    with pytest.raises(ModelLoadError, match="model code not found"):
        load_model(path, trust=True, code=tmp_path / "nope")
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(ModelLoadError, match="must be a .py file or a folder"):
        load_model(path, trust=True, code=text)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ModelLoadError, match=r"model code broken.py failed to import"):
        load_model(path.with_name("user_model.pt"), trust=True, code=broken)


def test_cli_code_flag(project, capsys):
    from app.cli import main

    path, folder, _name, _model = project
    assert main(["inspect", str(path), "--trust"]) == 1
    err = capsys.readouterr().err
    assert "pass --code PATH" in err and len(err.strip().splitlines()) == 1
    assert main(["inspect", str(path), "--trust", "--code", str(folder), "--json"]) == 0
