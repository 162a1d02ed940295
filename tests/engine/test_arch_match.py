"""Weights-only files: zoo entries ranked by tensor names and shapes; the error names them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from engine.io import ArchRequiredError, ModelLoadError, load_model
from engine.io.arch_match import (
    ArchCandidate,
    closest_message,
    rank_architectures,
    tensor_signature,
)


def resnet18_state(num_classes: int = 1000) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=num_classes).state_dict()


def test_resnet18_ranks_first_with_every_tensor_matching(tmp_path: Path):
    ranked = rank_architectures(resnet18_state())
    best = ranked[0]
    assert best.spec == "torchvision:resnet18" and best.exact and best.score == 1.0
    assert best.describe() == "torchvision:resnet18 (100% of tensors match)"
    assert ranked[1].spec == "torchvision:resnet34" and ranked[1].score < 0.7
    assert len(ranked) == 5 and all(
        a.score >= b.score for a, b in zip(ranked, ranked[1:], strict=False)
    )


def test_a_fine_tuned_head_is_named_as_a_shape_difference():
    best = rank_architectures(resnet18_state(num_classes=10))[0]
    assert best.spec == "torchvision:resnet18" and not best.exact
    assert best.matched == best.file_tensors - 2 and best.same_name == best.file_tensors
    assert "2 differ only in shape" in best.describe()


def test_wrapper_prefixes_are_stripped_like_the_loader_does():
    sd = {f"module.{k}": v for k, v in resnet18_state().items()}
    assert set(tensor_signature(sd)) == set(resnet18_state())
    assert rank_architectures(sd)[0].exact


def test_missing_arch_error_names_the_closest_and_the_arch_then_loads(tmp_path: Path):
    path = tmp_path / "weights.pt"
    torch.save(resnet18_state(), path)
    with pytest.raises(ArchRequiredError) as info:
        load_model(path)
    message = str(info.value)
    assert "pass arch=" in message and "\n" not in message
    assert "closest: torchvision:resnet18 (100% of tensors match)" in message
    assert info.value.candidates[0].spec == "torchvision:resnet18"
    loaded = load_model(path, arch=info.value.candidates[0].spec)
    assert torch.equal(loaded.model.state_dict()["fc.weight"], resnet18_state()["fc.weight"])


def test_the_demo_and_safetensors_files_rank_too(tmp_path: Path):
    from safetensors.torch import save_file

    from engine.io.zoo import build_zoo_model

    sd = build_zoo_model("arborist:demo").model.state_dict()
    path = tmp_path / "demo.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    with pytest.raises(ArchRequiredError, match=r"closest: arborist:demo \(100% of tensors"):
        load_model(path)


def test_timm_candidates_come_from_the_file_name_and_checkpoint_hints(tmp_path: Path):
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        model = timm.create_model("efficientnet_b0", pretrained=False)
    sd = model.state_dict()
    by_name = rank_architectures(
        sd, path=tmp_path / "efficientnet_b0_finetuned.pth", torchvision_models=False
    )
    assert by_name[0].spec == "timm:efficientnet_b0" and by_name[0].exact
    by_hint = rank_architectures(sd, hints=["efficientnet_b0"], torchvision_models=False)
    assert by_hint[0].spec == "timm:efficientnet_b0"
    assert rank_architectures(sd, path=tmp_path / "w.pth", torchvision_models=False) == []


def test_hf_config_beside_the_file_is_a_candidate_and_an_arch(tmp_path: Path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, architectures=["BertForMaskedLM"],
    )  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config).eval()
    path = tmp_path / "pytorch_model.bin"
    torch.save(model.state_dict(), path)
    ranked = rank_architectures(model.state_dict(), path=path, torchvision_models=False)
    assert ranked[0].spec == f"hf:{tmp_path.resolve()}" and ranked[0].score > 0.95
    loaded = load_model(path, arch=ranked[0].spec)
    assert type(loaded.model).__name__ == "BertForMaskedLM"
    key = "bert.encoder.layer.0.output.dense.weight"
    assert torch.equal(loaded.model.state_dict()[key], model.state_dict()[key])
    with torch.no_grad():
        out = loaded.model(**loaded.example_inputs)
    assert out.logits.shape == (1, 16, 64)


def test_hf_spec_without_config_is_a_clear_error(tmp_path: Path):
    pytest.importorskip("transformers")
    with pytest.raises(ModelLoadError, match="has no config.json"):
        load_model(f"hf:{tmp_path}")


def test_closest_message_without_candidates():
    assert closest_message([]) == "no zoo model matches its tensor names"
    assert rank_architectures({}) == []
    one = ArchCandidate("torchvision:x", 3, 3, 4, 3)
    assert closest_message([one]) == "closest: torchvision:x (75% of tensors match)"


def test_unrelated_weights_match_nothing_well():
    sd = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2)).state_dict()  # keys "0.weight", ...
    assert all(c.score < 0.5 for c in rank_architectures(sd))


def test_cli_names_the_best_candidate(tmp_path: Path, capsys):
    from app.cli import main

    path = tmp_path / "weights.pt"
    torch.save(resnet18_state(), path)
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("arborist: error: ")
    assert "pass --arch to say which model" in err
    assert "closest: torchvision:resnet18 (100% of tensors match)" in err
    assert main(["inspect", str(path), "--arch", "torchvision:resnet18", "--json"]) == 0
