"""Tests for engine.io: safe loading, input specs, atomic writes, exports."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from engine.io import (
    ExportError,
    InputSpec,
    InputSpecError,
    ModelLoadError,
    UntrustedPickleError,
    atomic_write,
    export_onnx,
    export_pt2,
    export_pytorch,
    export_safe_checkpoint,
    guess_input_spec,
    load_model,
)
from engine.io.input_spec import INT_HIGH, call_with

# ---------------------------------------------------------------- helpers


class Hostile:
    """Unpickling this creates ``marker``: a stand-in for arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    ).eval()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------- untrusted / corrupt files


@pytest.mark.parametrize("via", ["torch.save", "raw pickle"])
def test_hostile_pickle_refused_without_running_it(tmp_path: Path, via: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if via == "torch.save":
        torch.save({"weights": torch.zeros(1), "payload": Hostile(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Hostile(marker)))
    with pytest.raises(UntrustedPickleError, match="trust=True") as info:
        load_model(path)
    assert not marker.exists(), "the pickle's code ran during an untrusted load"
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ModelLoadError)
    # Control: the payload is real, trusting the file does run it (and it is no model).
    with pytest.raises(ModelLoadError, match="not a model"):
        load_model(path, trust=True)
    assert marker.exists()


def test_pickled_module_needs_trust_then_matches(tmp_path: Path, x: torch.Tensor) -> None:
    model = small_cnn()
    path = tmp_path / "model.pt"
    torch.save(model, path)
    with pytest.raises(UntrustedPickleError, match="Sequential"):
        load_model(path)
    loaded = load_model(path, trust=True)
    assert loaded.source_kind == "pickle"
    assert not loaded.model.training
    torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)
    # The example input was guessed from the first conv and actually runs.
    assert loaded.input_spec is not None and loaded.input_spec.tensors[0].shape[1] == 3
    loaded.model(loaded.example_inputs)


def _real_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "real.pt"
    torch.save(small_cnn().state_dict(), path)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), r"empty \(0 bytes\)"),
        (lambda p: p.write_text("hello, I am not a model\n"), "text file"),
        (lambda p: p.write_bytes(bytes(range(256)) * 4), "unrecognised header"),
        (lambda p: p.write_bytes(_real_checkpoint(p.parent).read_bytes()[:700]), "corrupt"),
    ],
    ids=["empty", "text", "binary-garbage", "truncated"],
)
def test_unreadable_files_give_one_line_error(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "broken.pth"
    make(path)
    before = sha256(path)
    with pytest.raises(ModelLoadError, match=message) as info:
        load_model(path, trust=True)  # even trusted, garbage must not crash
    err = str(info.value)
    assert err.startswith("not a PyTorch file or corrupt: broken.pth")
    assert "\n" not in err and "Traceback" not in err
    assert not isinstance(info.value, UntrustedPickleError)
    assert sha256(path) == before


def test_pickled_list_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2), torch.ones(3)], path)
    with pytest.raises(ModelLoadError, match="holds a list of 2 items, not a model"):
        load_model(path)


def test_plain_data_pickle_of_new_protocol_is_not_called_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=5))  # opcodes torch's safe unpickler lacks
    with pytest.raises(ModelLoadError, match="holds a list of 3 items"):
        load_model(path)


def test_plain_pickled_module_names_its_globals_and_loads_with_trust(
    tmp_path: Path, x: torch.Tensor
) -> None:
    model = small_cnn()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    with pytest.raises(UntrustedPickleError, match=r"torch\.nn\.modules\.container\.Sequential"):
        load_model(path)
    torch.testing.assert_close(load_model(path, trust=True).model(x), model(x), rtol=0, atol=0)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="file not found"):
        load_model(tmp_path / "nope.pt")


# ---------------------------------------------------------------- state dicts


def test_state_dict_requires_arch(tmp_path: Path) -> None:
    path = _real_checkpoint(tmp_path)
    with pytest.raises(ModelLoadError, match="pass arch="):
        load_model(path)


@pytest.mark.parametrize("wrap", ["plain", "training-ckpt", "dataparallel", "legacy-format"])
def test_state_dict_with_arch_loads_exactly(tmp_path: Path, wrap: str) -> None:
    from torchvision.models import squeezenet1_1

    torch.manual_seed(3)
    original = squeezenet1_1(weights=None).eval()
    sd = original.state_dict()
    if wrap == "training-ckpt":
        sd = {"epoch": 7, "state_dict": sd}
    elif wrap == "dataparallel":
        sd = {f"module.{k}": v for k, v in sd.items()}
    path = tmp_path / "sq.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=(wrap != "legacy-format"))
    loaded = load_model(path, arch="torchvision:squeezenet1_1", input_spec="1,3,64,64")
    assert loaded.source_kind == "state_dict" and loaded.arch == "torchvision:squeezenet1_1"
    inp = loaded.example_inputs
    assert inp.shape == (1, 3, 64, 64)
    torch.testing.assert_close(loaded.model(inp), original(inp), rtol=0, atol=0)


def test_state_dict_with_wrong_arch_is_explained(tmp_path: Path) -> None:
    path = _real_checkpoint(tmp_path)
    with pytest.raises(
        ModelLoadError, match=r"does not match torchvision:squeezenet1_1: \d+ missing"
    ) as info:
        load_model(path, arch="torchvision:squeezenet1_1")
    assert "\n" not in str(info.value)


def test_state_dict_shape_mismatch_hints_pruning(tmp_path: Path) -> None:
    from torchvision.models import squeezenet1_1

    sd = squeezenet1_1(weights=None, num_classes=10).state_dict()
    path = tmp_path / "sq10.pth"
    torch.save(sd, path)
    with pytest.raises(
        ModelLoadError, match=r"shape mismatches \(e\.g\. classifier\.1\.weight.*pruned model"
    ):
        load_model(path, arch="torchvision:squeezenet1_1")


def test_bad_arch_spec(tmp_path: Path) -> None:
    path = _real_checkpoint(tmp_path)
    with pytest.raises(ModelLoadError, match="not a model spec"):
        load_model(path, arch="resnet18")


# ---------------------------------------------------------------- zoo


def test_torchvision_zoo_spec() -> None:
    loaded = load_model("torchvision:mobilenet_v3_small")
    assert loaded.source_kind == "torchvision"
    assert loaded.input_spec.to_string() == "1,3,224,224"
    assert not loaded.model.training
    with torch.no_grad():
        assert loaded.model(loaded.example_inputs).shape == (1, 1000)


def test_zoo_default_inputs_follow_the_family() -> None:
    assert load_model("torchvision:r3d_18").input_spec.to_string() == "1,3,16,112,112"
    assert load_model("torchvision:raft_small").input_spec.to_string() == "1,3,224,224;1,3,224,224"


def test_zoo_unknown_names() -> None:
    with pytest.raises(ModelLoadError, match="did you mean.*resnet18"):
        load_model("torchvision:resnet1")
    with pytest.raises(ModelLoadError, match="unknown built-in model"):
        load_model("arborist:nothing")


def test_timm_missing_or_builds() -> None:
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ModelLoadError, match="pip install timm"):
            load_model("timm:resnet18")
    else:
        assert load_model("timm:resnet18").input_spec.tensors[0].shape[:2] == (1, 3)


def test_arborist_demo_runs() -> None:
    loaded = load_model("arborist:demo")
    with torch.no_grad():
        out = call_with(loaded.model, loaded.example_inputs)
    assert out.shape[0] == 1


def test_guess_input_spec_finds_a_size_that_runs() -> None:
    # The classifier only fits a 28x28 input: guessing must not stop at 224.
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    assert guess_input_spec(model).to_string() == "1,1,28,28"
    assert guess_input_spec(nn.Sequential(nn.Linear(7, 2))).to_string() == "1,7"


# ---------------------------------------------------------------- input specs


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("1,3,224,224", "1,3,224,224"),
        ("1x3x224x224", "1,3,224,224"),
        (" 1 , 3 ,8,8 ; 1,10 ", "1,3,8,8;1,10"),
        ("1,128:int64", "1,128:int64"),
        ("1,4:long;2:float", "1,4:int64;2"),
        (
            "input_ids=1,16:int64;attention_mask=1,16:int64",
            "input_ids=1,16:int64;attention_mask=1,16:int64",
        ),
    ],
)
def test_input_spec_round_trip(text: str, canonical: str) -> None:
    spec = InputSpec.parse(text)
    assert spec.to_string() == canonical
    assert InputSpec.parse(spec.to_string()) == spec


def test_input_spec_make_shapes_dtypes_and_determinism() -> None:
    one = InputSpec.parse("2,3,4,4").make()
    assert (
        isinstance(one, torch.Tensor) and one.shape == (2, 3, 4, 4) and one.dtype == torch.float32
    )
    pair = InputSpec.parse("1,3;1,5:int64").make()
    assert isinstance(pair, tuple) and pair[1].dtype == torch.int64
    ids = InputSpec.parse("ids=4,64:int64;mask=4,64:bool").make()
    assert list(ids) == ["ids", "mask"]
    assert 0 <= int(ids["ids"].min()) and int(ids["ids"].max()) < INT_HIGH
    assert ids["mask"].dtype == torch.bool
    torch.testing.assert_close(
        InputSpec.parse("3,3").make(seed=5), InputSpec.parse("3,3").make(seed=5)
    )
    assert not torch.equal(InputSpec.parse("3,3").make(seed=5), InputSpec.parse("3,3").make(seed=6))


def test_embedding_accepts_int_inputs() -> None:
    emb = nn.Embedding(2, 4)
    emb(InputSpec.parse("1,16:int64").make())  # ids must be valid for any vocabulary


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("1,3,,4", r"input #1 .*dimension '' is not a positive integer"),
        ("1,-3", "dimension '-3'"),
        ("1,0,4", "dimension 0"),
        ("1,3:float17", "unknown dtype 'float17'"),
        ("1,3;;1,2", "input #2 is empty"),
        ("a=1,3;1,2", "mixes named and unnamed"),
        ("a=1,3;a=1,2", "names a more than once"),
        ("1bad=1,3", "not a valid argument name"),
        ("abc", "dimension 'abc'"),
    ],
)
def test_input_spec_errors_are_precise(text: str, message: str) -> None:
    with pytest.raises(InputSpecError, match=message):
        InputSpec.parse(text)


def test_input_spec_from_inputs() -> None:
    spec = InputSpec.from_inputs({"a": torch.zeros(1, 2, dtype=torch.int64), "b": torch.zeros(3)})
    assert spec.to_string() == "a=1,2:int64;b=3"


def test_load_model_input_spec_override() -> None:
    loaded = load_model("torchvision:squeezenet1_1", input_spec="2,3,64,64")
    assert loaded.example_inputs.shape == (2, 3, 64, 64)
    with pytest.raises(InputSpecError):
        load_model("torchvision:squeezenet1_1", input_spec="2,3,x")


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"previous")

    def failing(tmp: Path) -> None:
        tmp.write_bytes(b"half written")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(dest, failing)
    assert dest.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_atomic_write_replaces_and_keeps_no_temp(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    atomic_write(dest, lambda tmp: tmp.write_bytes(b"new"))
    assert dest.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_write_refuses_protected_source(tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    src.write_bytes(b"original")
    link = tmp_path / "alias.pt"
    link.symlink_to(src)
    for target in (src, link, tmp_path / "." / "model.pt"):
        with pytest.raises(ExportError, match="refusing to overwrite the source"):
            atomic_write(target, lambda tmp: tmp.write_bytes(b"clobbered"), protect=src)
    assert src.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias.pt", "model.pt"]


def test_export_refuses_to_overwrite_source(tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    model = small_cnn()
    torch.save(model, src)
    before = sha256(src)
    with pytest.raises(ExportError):
        export_pytorch(model, src, source=src)
    with pytest.raises(ExportError):
        export_onnx(model, torch.randn(1, 3, 8, 8), src, source=src)
    assert sha256(src) == before


# ---------------------------------------------------------------- exports


def test_export_pytorch_round_trip_keeps_source(tmp_path: Path, x: torch.Tensor) -> None:
    src = tmp_path / "src.pt"
    torch.save(small_cnn(), src)
    before = sha256(src)
    loaded = load_model(src, trust=True)
    out = tmp_path / "copy.pt"
    export_pytorch(loaded.model, out, source=src)
    export_onnx(loaded.model, x, tmp_path / "copy.onnx", source=src)
    assert sha256(src) == before
    again = load_model(out, trust=True)
    torch.testing.assert_close(again.model(x), loaded.model(x), rtol=0, atol=0)


def test_safe_checkpoint_is_weights_only_and_reloads(tmp_path: Path) -> None:
    loaded = load_model("torchvision:squeezenet1_1")
    path = tmp_path / "safe.pt"
    export_safe_checkpoint(
        loaded.model,
        path,
        arch="torchvision:squeezenet1_1",
        pruning_history=[],
        example_input_spec="1,3,64,64",
    )
    raw = torch.load(path, weights_only=True)
    assert raw["arborist_format"] == 1 and raw["arch"] == "torchvision:squeezenet1_1"
    again = load_model(path)  # no trust needed
    assert again.source_kind == "arborist_checkpoint"
    inp = again.example_inputs
    assert inp.shape == (1, 3, 64, 64)
    torch.testing.assert_close(again.model(inp), loaded.model(inp), rtol=0, atol=0)


def test_safe_checkpoint_rejects_non_plain_history(tmp_path: Path) -> None:
    path = tmp_path / "safe.pt"
    with pytest.raises(ExportError, match="not be loadable safely"):
        export_safe_checkpoint(
            small_cnn(),
            path,
            arch="torchvision:squeezenet1_1",
            pruning_history=[object()],
            example_input_spec=None,
        )
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_safe_checkpoint_with_history_replays_pruning(tmp_path: Path) -> None:
    engine = pytest.importorskip("engine", reason="engine package not importable")
    if not hasattr(engine, "DependencyGraph"):
        pytest.skip("engine.DependencyGraph not available yet")
    loaded = load_model("arborist:demo")
    model, inputs = loaded.model, loaded.example_inputs
    dg = engine.DependencyGraph().build_dependency(model, example_inputs=inputs, verbose=False)
    conv = dict(model.named_modules())["stem.0"]
    dg.get_pruning_group(conv, engine.prune_conv_out_channels, [0, 1]).prune()
    history = dg.pruning_history()
    assert history, "pruning recorded no history"
    path = tmp_path / "pruned.pt"
    export_safe_checkpoint(
        model, path, arch="arborist:demo", pruning_history=history, example_input_spec=None
    )
    torch.load(path, weights_only=True)  # safe by construction
    if not hasattr(engine.DependencyGraph, "load_pruning_history"):
        with pytest.raises(ModelLoadError, match="load_pruning_history"):
            load_model(path)
        pytest.skip("DependencyGraph.load_pruning_history not implemented yet")
    again = load_model(path)
    assert again.source_kind == "arborist_checkpoint"
    assert dict(again.model.named_modules())["stem.0"].out_channels == conv.out_channels
    with torch.no_grad():
        torch.testing.assert_close(again.model(inputs), model(inputs), rtol=0, atol=0)


def test_pt2_round_trip(tmp_path: Path, x: torch.Tensor) -> None:
    model = small_cnn()
    path = tmp_path / "m.pt2"
    export_pt2(model, x, path)
    loaded = load_model(path)
    assert loaded.source_kind == "pt2"
    assert loaded.input_spec.to_string() == "2,3,16,16"
    torch.testing.assert_close(loaded.model(loaded.example_inputs), model(loaded.example_inputs))
    torch.testing.assert_close(loaded.model(x), model(x))


def test_onnx_export_validates_and_has_dynamic_batch(tmp_path: Path) -> None:
    import onnxruntime as ort

    model = small_cnn()
    example = torch.randn(1, 3, 16, 16)
    path = tmp_path / "m.onnx"
    report = export_onnx(model, example, path)
    assert report.onnx_checker_ok and report.outputs_match and report.ok
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-5
    assert report.input_names == ["input"] and report.output_names == ["output"]
    assert report.inputs[0].shape == ["batch", 3, 16, 16]
    assert report.file_size == path.stat().st_size > 0
    assert report.to_dict()["outputs"][0]["shape"] == ["batch", 5]
    batch3 = torch.randn(3, 3, 16, 16)
    (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": batch3.numpy()}
    )
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(batch3), rtol=0, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_onnx_export_static_batch(tmp_path: Path) -> None:
    report = export_onnx(
        small_cnn(), torch.randn(1, 3, 8, 8), tmp_path / "s.onnx", dynamic_batch=False
    )
    assert report.inputs[0].shape == [1, 3, 8, 8]


class DictModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        return {"logits": self.a(x), "aux": (self.b(y), self.a(x).sum(1))}


def test_onnx_export_kwargs_and_nested_outputs(tmp_path: Path) -> None:
    model = DictModel().eval()
    inputs = {"x": torch.randn(2, 4), "y": torch.randn(2, 6)}
    report = export_onnx(model, inputs, tmp_path / "d.onnx")
    assert report.ok, report.errors
    assert report.input_names == ["x", "y"]
    assert report.output_names == ["logits", "aux_0", "aux_1"]


def test_onnx_export_detects_mismatch(tmp_path: Path) -> None:
    class Noisy(nn.Module):  # output differs between PyTorch and ONNX Runtime runs
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.rand_like(x)

    report = export_onnx(Noisy(), torch.zeros(1, 64), tmp_path / "n.onnx")
    assert report.onnx_checker_ok and not report.outputs_match and not report.ok
    assert report.max_abs_diff > 1e-3


def test_onnx_export_restores_training_mode(tmp_path: Path) -> None:
    model = small_cnn().train()
    export_onnx(model, torch.randn(1, 3, 8, 8), tmp_path / "t.onnx")
    assert model.training


def test_onnx_in_module_out(tmp_path: Path) -> None:
    pytest.importorskip("onnx2torch", reason="onnx2torch not installed")
    model = small_cnn()
    path = tmp_path / "m.onnx"
    export_onnx(model, torch.randn(1, 3, 16, 16), path)
    loaded = load_model(path)
    assert loaded.source_kind == "onnx"
    assert loaded.input_spec.to_string() == "1,3,16,16"  # dynamic batch -> 1
    for batch in (loaded.example_inputs, torch.randn(3, 3, 16, 16)):
        with torch.no_grad():
            torch.testing.assert_close(loaded.model(batch), model(batch), rtol=0, atol=1e-5)


def test_corrupt_onnx_and_pt2(tmp_path: Path) -> None:
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ModelLoadError, match="bad.onnx"):
        load_model(bad_onnx)
    bad_pt2 = tmp_path / "bad.pt2"
    bad_pt2.write_text("not a program")
    with pytest.raises(
        ModelLoadError, match=r"not a torch.export \(.pt2\) file or corrupt: bad.pt2"
    ):
        load_model(bad_pt2)


def test_zoo_specs_build_the_same_weights_every_time_without_touching_the_callers_rng():
    from engine.io.zoo import build_zoo_model

    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_zoo_model("torchvision:resnet18").model
    after = torch.rand(1)
    b = build_zoo_model("torchvision:resnet18").model
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    assert torch.equal(a.fc.weight, b.fc.weight)
    assert torch.equal(after, expected_next)
