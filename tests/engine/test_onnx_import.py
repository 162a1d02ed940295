"""ONNX in: files from today's exporters open, match ONNX Runtime, trace on meta and prune.

Models are torchvision's with random weights (weights=None). ViT's zero-initialised head
and MobileNetV3's fading init get other random weights first, or the comparisons would
be between (near) zeros.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnx2torch")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from engine import DependencyGraph  # noqa: E402
from engine.io import ModelLoadError, call_with, export_onnx, load_model  # noqa: E402
from engine.io.onnx_clean import (  # noqa: E402
    bypass_identities,
    clean_onnx,
    constants_to_initializers,
    relax_reshape_allowzero,
    reshapes_to_flatten,
)
from engine.io.onnx_converters import ensure_converters  # noqa: E402
from engine.io.onnx_export import run_onnxruntime  # noqa: E402
from engine.plan import PruningPlan, apply_plan  # noqa: E402

ATOL = 1e-4


def tiny_vit() -> nn.Module:
    from torchvision.models import VisionTransformer

    return VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
        num_classes=10,
    )  # fmt: skip


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    import torchvision

    torch.manual_seed(0)
    if name == "vit_tiny":
        model, side = tiny_vit(), 32
    elif name == "vit_b_16":
        model, side = torchvision.models.vit_b_16(weights=None), 224
    else:
        model, side = getattr(torchvision.models, name)(weights=None), 32
    for module in model.modules():
        if isinstance(module, nn.Linear) and not module.weight.any():  # ViT's zero head
            nn.init.normal_(module.weight, std=0.5)
            nn.init.normal_(module.bias, std=0.5)
        if name.startswith("mobilenet"):  # its default init fades the signal to ~1e-10
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=module.in_features**-0.5)
    return model.eval(), torch.randn(1, 3, side, side)


def export(model: nn.Module, x: torch.Tensor, path: Path, exporter: str) -> Path:
    """``exporter``: 'legacy-N' (torch.onnx.export(dynamo=False), opset N) or 'dynamo'."""
    if exporter == "dynamo":
        pytest.importorskip("onnxscript", reason="torch's dynamo exporter needs onnxscript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(model, (x,), dynamo=True, verbose=False).save(str(path))
        else:
            opset = int(exporter.split("-")[1])
            torch.onnx.export(model, (x,), str(path), opset_version=opset, dynamo=False)
    return path


def assert_matches_onnxruntime(path: Path, module: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        ours = call_with(module, x).numpy()
    ref = run_onnxruntime(path, x)[0]
    assert ours.shape == ref.shape
    assert float(np.abs(ref).max()) > 1e-3  # a real output, not zeros
    np.testing.assert_allclose(ours, ref, rtol=0, atol=ATOL * max(1.0, float(np.abs(ref).max())))


def open_trace_prune(path: Path, reference: nn.Module | None = None) -> tuple[int, int]:
    """Open ``path``, check it against ONNX Runtime, trace on meta, prune 0.5, run it.

    With ``reference`` (the exported model, exported with a dynamic batch) a batch of 3 is
    compared with it too: the cleaning must keep the batch dynamic.
    """
    loaded = load_model(path)
    assert loaded.source_kind == "onnx"
    x = loaded.example_inputs
    assert_matches_onnxruntime(path, loaded.model, x)
    if reference is not None:
        batch = torch.randn(3, *x.shape[1:])
        with torch.no_grad():
            torch.testing.assert_close(loaded.model(batch), reference(batch), rtol=0, atol=1e-4)
    with torch.no_grad():
        shape_before = call_with(loaded.model, x).shape
    dg = DependencyGraph().build_dependency(loaded.model, example_inputs=x)
    assert dg.trace_notes == []  # traced on the meta device: the probe ran
    outcome = apply_plan(loaded.model, x, PruningPlan(pruning_ratio=0.5), dependency_graph=dg)
    with torch.no_grad():
        out = call_with(loaded.model, x)
    assert out.shape == shape_before and torch.isfinite(out).all()
    assert outcome.params_after < outcome.params_before
    return outcome.params_before, outcome.params_after


# ViT's attention (scaled_dot_product_attention) has no opset-13 form in the legacy
# exporter ("support ... was added in version 14"): its oldest possible opset is used.
CASES = [
    ("resnet18", "legacy-13"),
    ("resnet18", "legacy-17"),
    ("resnet18", "legacy-20"),
    ("resnet18", "dynamo"),
    ("mobilenet_v3_small", "legacy-13"),
    ("mobilenet_v3_small", "legacy-17"),
    ("mobilenet_v3_small", "dynamo"),
    ("vit_tiny", "legacy-14"),
    ("vit_tiny", "legacy-17"),
    ("vit_tiny", "dynamo"),
]


@pytest.mark.parametrize(("name", "exporter"), CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_exported_files_open_match_trace_and_prune(tmp_path: Path, name: str, exporter: str):
    model, x = build(name)
    path = export(model, x, tmp_path / f"{name}.onnx", exporter)
    before, after = open_trace_prune(path)
    if name == "resnet18":
        assert after < 0.3 * before  # convs prune fully: the flatten before fc is no lock
    if name == "vit_tiny":  # the MLPs are Linear layers again, so they prune
        assert after < 0.9 * before


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["legacy-14", "legacy-17", "dynamo"])
def test_vit_b_16(tmp_path: Path, exporter: str):
    model, x = build("vit_b_16")
    open_trace_prune(export(model, x, tmp_path / "vit_b_16.onnx", exporter))


@pytest.mark.slow
def test_arborists_export_of_a_pruned_resnet50_reopens(tmp_path: Path):
    """Issue 19's fourth file (KeyError 'onnx::Conv_504'); the default run covers the same
    failure with a pruned ResNet-18 below, and the other three with CASES above."""
    import torchvision

    torch.manual_seed(0)
    r50 = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(1, 3, 64, 64)
    apply_plan(r50, x, PruningPlan(pruning_ratio=0.5))
    path = tmp_path / "r50-pruned.onnx"
    assert export_onnx(r50, x, path).ok
    loaded = load_model(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), r50(x), rtol=0, atol=1e-4)
    apply_plan(loaded.model, x, PruningPlan(pruning_ratio=0.5))
    with torch.no_grad():
        assert loaded.model(x).shape == (1, 1000)


# ------------------------------------------------------------- Arborist's own exports


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny"])
def test_every_arborist_export_reopens_and_prunes(tmp_path: Path, name: str):
    """Arborist's own export (dynamic batch, as the CLI and GUI write it) of a pruned model:
    the legacy exporter's shared initializers made this a KeyError ('onnx::Conv_…')."""
    model, x = build(name)
    apply_plan(model, x, PruningPlan(pruning_ratio=0.25))
    path = tmp_path / f"{name}.onnx"
    report = export_onnx(model, x, path)
    assert report.ok, report.errors
    open_trace_prune(path, reference=model)


def test_cli_exported_onnx_reopens_and_prunes_through_the_cli(tmp_path: Path, capsys):
    from app.cli import main

    first, second = tmp_path / "demo.onnx", tmp_path / "again.onnx"
    assert main(["prune", "arborist:demo", "--ratio", "0.25", "-o", str(first), "--json"]) == 0
    capsys.readouterr()
    assert main(["prune", str(first), "--ratio", "0.5", "-o", str(second), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["after"]["params"] < report["before"]["params"]
    assert report["validation"]["outputs_match"] is True


# ------------------------------------------------------------------ cleaning passes


def _model(nodes, inputs, outputs, inits=(), opset=18):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def _convert_and_compare(tmp_path: Path, model, x: np.ndarray) -> nn.Module:
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    loaded = load_model(path)
    with torch.no_grad():
        ours = loaded.model(torch.from_numpy(x))
    ours = ours if isinstance(ours, (tuple, list)) else [ours]
    refs = run_onnxruntime(path, torch.from_numpy(x))
    assert len(ours) == len(refs)
    for a, b in zip(ours, refs, strict=True):
        np.testing.assert_allclose(a.numpy(), b, rtol=0, atol=1e-5)
    return loaded.model


@pytest.mark.parametrize(
    ("op", "axes", "keepdims", "noop"),
    [
        ("ReduceMean", [2, 3], 1, 0),
        ("ReduceMean", [-1], 0, 0),
        ("ReduceMax", [1], 1, 0),
        ("ReduceL2", [1, 2], 0, 0),
        ("ReduceProd", [1, 3], 1, 0),
        ("ReduceMean", None, 0, 0),  # no axes input: all dims
        ("ReduceMean", [], 1, 1),  # empty axes with noop: nothing is reduced
        ("ReduceSumSquare", [], 1, 1),  # ... but the square is still taken (ONNX Runtime)
        ("ReduceL1", [], 0, 1),
        ("ReduceLogSumExp", [], 0, 1),
    ],
)
def test_reduce_18_with_axes_input(tmp_path: Path, op, axes, keepdims, noop):
    inputs = ["x"] if axes is None else ["x", "axes"]
    inits = (
        [] if axes is None else [helper.make_tensor("axes", TensorProto.INT64, [len(axes)], axes)]
    )
    node = helper.make_node(op, inputs, ["y"], keepdims=keepdims, noop_with_empty_axes=noop)
    model = _model([node], [_vi("x", [2, 3, 4, 5])], [_vi("y", None)], inits)
    x = np.random.default_rng(0).random((2, 3, 4, 5), dtype=np.float32) + 0.5
    _convert_and_compare(tmp_path, model, x)


def test_split_18_num_outputs_uneven(tmp_path: Path):
    node = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3)
    model = _model([node], [_vi("x", [2, 7])], [_vi("a", None), _vi("b", None), _vi("c", None)])
    _convert_and_compare(tmp_path, model, np.arange(14, dtype=np.float32).reshape(2, 7))


def test_gelu_20_and_reshape_19(tmp_path: Path):
    shape = helper.make_tensor("s", TensorProto.INT64, [2], [4, 3])
    nodes = [
        helper.make_node("Gelu", ["x"], ["g"], approximate="tanh"),
        helper.make_node("Reshape", ["g", "s"], ["y"]),
    ]
    model = _model(nodes, [_vi("x", [2, 6])], [_vi("y", None)], [shape], opset=20)
    _convert_and_compare(tmp_path, model, np.linspace(-3, 3, 12, dtype=np.float32).reshape(2, 6))


def test_unsupported_new_feature_is_refused_with_its_reason(tmp_path: Path):
    pads = helper.make_tensor("p", TensorProto.INT64, [2], [1, 1])
    axes = helper.make_tensor("a", TensorProto.INT64, [1], [1])
    node = helper.make_node("Pad", ["x", "p", "", "a"], ["y"], mode="constant")
    model = _model([node], [_vi("x", [2, 3])], [_vi("y", None)], [pads, axes])
    path = tmp_path / "pad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match=r"pad.onnx: .*Pad with an axes input"):
        load_model(path)


def test_identity_shared_initializer_is_bypassed():
    """The legacy exporter's dedup: two Convs read one bias through an Identity."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 2, 1, 1], [1, 0, 0, 1])
    b = helper.make_tensor("b", TensorProto.FLOAT, [2], [0.5, -0.5])
    nodes = [
        helper.make_node("Identity", ["b"], ["b2"]),
        helper.make_node("Identity", ["w"], ["w2"]),
        helper.make_node("Conv", ["x", "w", "b"], ["h"]),
        helper.make_node("Conv", ["h", "w2", "b2"], ["y"]),
    ]
    model = _model(nodes, [_vi("x", [1, 2, 3, 3])], [_vi("y", [1, 2, 3, 3])], [w, b], opset=13)
    assert bypass_identities(model) == 2
    assert [n.op_type for n in model.graph.node] == ["Conv", "Conv"]
    assert list(model.graph.node[1].input) == ["h", "w", "b"]


def test_identity_producing_a_graph_output_stays():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"])]
    model = _model(nodes, [_vi("x", [2])], [_vi("y", [2])])
    assert bypass_identities(model) == 0


def test_constants_become_initializers_and_allowzero_is_relaxed(tmp_path: Path):
    shape = helper.make_tensor("shape_value", TensorProto.INT64, [2], [3, 4])
    nodes = [
        helper.make_node("Constant", [], ["s"], value=shape),
        helper.make_node("Constant", [], ["k"], value_float=2.0),
        helper.make_node("Mul", ["x", "k"], ["m"]),
        helper.make_node("Reshape", ["m", "s"], ["y"], allowzero=1),
    ]
    model = _model(nodes, [_vi("x", [2, 6])], [_vi("y", [3, 4])], opset=14)
    before = onnx.ModelProto()
    before.CopyFrom(model)
    assert constants_to_initializers(model) == 2
    assert {t.name for t in model.graph.initializer} == {"s", "k"}
    assert relax_reshape_allowzero(model) == 1
    assert all(not n.attribute for n in model.graph.node if n.op_type == "Reshape")
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    _convert_and_compare(tmp_path, before, x)  # load_model runs the same passes


def test_allowzero_with_a_zero_in_the_shape_is_kept():
    shape = helper.make_tensor("s", TensorProto.INT64, [2], [0, 4])
    node = helper.make_node("Reshape", ["x", "s"], ["y"], allowzero=1)
    model = _model([node], [_vi("x", [0, 4])], [_vi("y", [0, 4])], [shape], opset=14)
    assert relax_reshape_allowzero(model) == 0


def test_flattening_reshape_becomes_flatten_and_others_stay():
    flat = helper.make_tensor("flat", TensorProto.INT64, [2], [1, 24])
    split = helper.make_tensor("split", TensorProto.INT64, [2], [2, 12])
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["a"]),
        helper.make_node("Reshape", ["x", "split"], ["b"]),
    ]
    model = _model(nodes, [_vi("x", [1, 2, 3, 4])], [_vi("a", None), _vi("b", None)], [flat, split])
    model = onnx.shape_inference.infer_shapes(model)
    assert reshapes_to_flatten(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Flatten", "Reshape"]


def test_cleaning_never_touches_the_callers_model_or_the_file(tmp_path: Path):
    model, x = build("resnet18")
    path = export(model, x, tmp_path / "r.onnx", "legacy-13")
    data = path.read_bytes()
    proto = onnx.load(str(path))
    identities = sum(n.op_type == "Identity" for n in proto.graph.node)
    report = clean_onnx(proto)
    assert identities > 0 and sum(n.op_type == "Identity" for n in proto.graph.node) == identities
    assert not any(n.op_type == "Identity" for n in report.model.graph.node)
    assert report.steps[0] == "onnxslim"
    load_model(path)
    assert path.read_bytes() == data


def test_basic_cleaning_alone_converts_the_legacy_dedup(tmp_path: Path):
    """Without onnxslim (missing or failing) our own passes still fix the KeyError."""
    from onnx2torch import convert

    model, x = build("resnet18")
    proto = onnx.load(str(export(model, x, tmp_path / "r.onnx", "legacy-13")))
    with pytest.raises(KeyError):
        convert(proto)
    module = convert(clean_onnx(proto, use_onnxslim=False).model)
    with torch.no_grad():
        torch.testing.assert_close(module(x), model(x), rtol=0, atol=1e-4)


def test_converter_registration_is_idempotent_and_additive():
    from onnx2torch.node_converters.registry import get_converter

    ensure_converters()
    assert ensure_converters() == []
    get_converter(operation_type="ReduceMean", version=18)
    original = get_converter(operation_type="Relu", version=14)  # onnx2torch's own, kept
    assert original.__module__.startswith("onnx2torch")
