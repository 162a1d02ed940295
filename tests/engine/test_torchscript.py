"""TorchScript archives: recognised, refused without trust, else converted to prunable layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from engine import DependencyGraph
from engine.io import ModelLoadError, UntrustedPickleError, load_model
from engine.io.torchscript import is_torchscript
from engine.plan import PruningPlan, apply_plan


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).eval()


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_loads_after_trust_and_prunes(tmp_path: Path, how: str):
    model = small_cnn()
    x = torch.randn(1, 3, 32, 32)
    scripted = torch.jit.script(model) if how == "script" else torch.jit.trace(model, x)
    path = tmp_path / "model.pt"
    torch.jit.save(scripted, str(path))
    assert is_torchscript(path)
    with pytest.raises(UntrustedPickleError, match=r"model.pt is a TorchScript archive .*--trust"):
        load_model(path)
    loaded = load_model(path, trust=True, input_spec="1,3,32,32")
    assert loaded.source_kind == "torchscript" and "TorchScript" in loaded.description
    assert not isinstance(loaded.model, torch.jit.ScriptModule)
    batch = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(batch), model(batch), rtol=0, atol=1e-5)
    dg = DependencyGraph().build_dependency(loaded.model, example_inputs=loaded.example_inputs)
    assert dg.trace_notes == []
    outcome = apply_plan(loaded.model, loaded.example_inputs, PruningPlan(pruning_ratio=0.5))
    assert outcome.params_after < outcome.params_before
    with torch.no_grad():
        assert loaded.model(batch).shape == (4, 5)


def test_inputs_are_guessed_from_the_first_conv(tmp_path: Path):
    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(small_cnn()), str(path))
    loaded = load_model(path, trust=True)
    assert loaded.input_spec.to_string() == "1,3,224,224"


def test_a_program_without_an_onnx_form_is_refused_with_the_reason(tmp_path: Path):
    class Unexportable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.eigvals(self.fc(x).reshape(2, 2, 2)).real.reshape(1, -1)

    path = tmp_path / "odd.pt"
    torch.jit.save(torch.jit.script(Unexportable().eval()), str(path))
    with pytest.raises(ModelLoadError) as info:
        load_model(path, trust=True, input_spec="1,8")
    message = str(info.value)
    assert message.startswith("odd.pt is a TorchScript archive") and "\n" not in message
    assert "TorchScript" in message and "instead" in message


def test_unknown_or_wrong_inputs_ask_for_an_input_shape(tmp_path: Path):
    from engine.io import InputSpecError

    class NoLayers(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.relu()

    path = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(NoLayers()), str(path))
    with pytest.raises(InputSpecError, match="inputs could not be guessed"):
        load_model(path, trust=True)
    cnn = tmp_path / "cnn.pt"
    torch.jit.save(torch.jit.script(small_cnn()), str(cnn))
    with pytest.raises(InputSpecError, match=r"does not run on inputs 1,5,8,8"):
        load_model(cnn, trust=True, input_spec="1,5,8,8")


def test_plain_torch_save_files_are_not_torchscript(tmp_path: Path):
    path = tmp_path / "sd.pt"
    torch.save(small_cnn().state_dict(), path)
    assert not is_torchscript(path)
    text = tmp_path / "t.pt"
    text.write_text("hello")
    assert not is_torchscript(text)


def test_cli_explains_torchscript_and_loads_it_with_trust(tmp_path: Path, capsys):
    from app.cli import main

    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(small_cnn()), str(path))
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert "m.pt is a TorchScript archive" in err and "pass --trust" in err
    assert main(["inspect", str(path), "--trust", "--input-shape", "1,3,32,32", "--json"]) == 0
