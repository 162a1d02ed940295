"""Bounds on what a file or a flag may make engine.io allocate, and integrity checks."""

from __future__ import annotations

import os
import zipfile

import pytest
import torch
from torch import nn

from engine.io import InputSpec, InputSpecError, ModelLoadError, load_model
from engine.io.bounded import BoundedInputError, loads_json, read_regular_file
from engine.io.limits import MAX_INPUT_ELEMENTS


def _data_offset(raw: bytes, info: zipfile.ZipInfo) -> int:
    h = info.header_offset
    name_len = int.from_bytes(raw[h + 26 : h + 28], "little")
    extra_len = int.from_bytes(raw[h + 28 : h + 30], "little")
    return h + 30 + name_len + extra_len


def test_flipped_bytes_in_a_pt_weight_are_caught_by_the_crc(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.arange(64, dtype=torch.float32)}, path)
    assert torch.load(path, weights_only=True)["w"][3] == 3.0
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data/0"))
    raw[_data_offset(bytes(raw), info) + 12] ^= 0x40  # element 3
    path.write_bytes(bytes(raw))
    assert torch.load(path, weights_only=True)["w"][3] != 3.0  # torch alone: silently wrong
    with pytest.raises(ModelLoadError, match=r"weights.pt is corrupt: member .*data/0.* fails"):
        load_model(path, arch="torchvision:resnet18")


def test_a_pt_decompression_bomb_is_refused_before_torch_inflates_it(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.zeros(4)}, good)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data/0"):
                data = b"\0" * (200 * 2**20)
            dst.writestr(info.filename, data)
    assert bomb.stat().st_size < 2**20
    with pytest.raises(ModelLoadError, match="decompression bomb"):
        load_model(bomb, arch="torchvision:resnet18")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1,1,100000,100000", r"10,000,000,000 elements .* dimension 3 = 100,000"),
        ("99999999999999999999,1,8,8", r"dimension 20-digit 999999999999\.\.\. is over the limit"),
        ("1,1,9223372036854775807,1", r"dimension 19-digit 922337203685\.\.\. is over the limit"),
        ("1," + "9" * 5000, r"5000-digit"),
        ("1,3,20000000", r"input #1 dimension 3 is 20,000,000, over the limit"),
        ("a=1,4096,4096;b=1,4096,4097", r"33,558,528 elements.*input #2 dimension 3 = 4,097"),
    ],
)
def test_huge_input_specs_are_refused_naming_the_dimension(text, match):
    with pytest.raises(InputSpecError, match=match):
        InputSpec.parse(text)


def test_the_input_limit_admits_real_inputs():
    for text in ("1,3,224,224", "1,3,16,224,224", "2,3,1333,800", "ids=1,8192:int64"):
        assert InputSpec.parse(text).to_string()
    assert MAX_INPUT_ELEMENTS >= 3 * 2048 * 2048 * 2


def test_declared_onnx_inputs_over_the_limit_are_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 12000, 12000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 12000, 12000])],
    )  # fmt: skip
    path = tmp_path / "big.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelLoadError, match=r"big.onnx: its declared inputs .*dimension 3"):
        load_model(path)
    loaded = load_model(path, input_spec="1,1,8,8")
    assert tuple(loaded.example_inputs.shape) == (1, 1, 8, 8)


def test_a_safe_checkpoint_with_a_huge_input_spec_is_refused(tmp_path):
    from engine.io.checkpoint import SafeCheckpoint

    model = nn.Linear(3, 2)
    ckpt = SafeCheckpoint("torchvision:resnet18", [], model.state_dict(), "1,3,12000,12000")
    path = tmp_path / "m.safe.pt"
    torch.save(ckpt.to_dict(), path)
    with pytest.raises(ModelLoadError, match=r"bad example_input_spec.*432,000,000 elements"):
        load_model(path)


# ------------------------------------------------------------- bounded reading


def test_read_regular_file_refuses_devices_and_fifos_without_blocking(tmp_path):
    for device in ("/dev/zero", "/dev/urandom"):
        with pytest.raises(BoundedInputError, match="character device, not a regular file"):
            read_regular_file(device, max_bytes=100, what="plan file")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(BoundedInputError, match=r"named pipe \(FIFO\)"):
        read_regular_file(fifo, max_bytes=100, what="plan file")
    with pytest.raises(BoundedInputError, match="is a directory"):
        read_regular_file(tmp_path, max_bytes=100, what="plan file")


def test_read_regular_file_caps_the_size(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 101)
    with pytest.raises(BoundedInputError, match="101 bytes; the limit is 100"):
        read_regular_file(path, max_bytes=100, what="plan file")
    assert read_regular_file(path, max_bytes=101, what="plan file") == b" " * 101


def test_loads_json_bounds_depth_and_integers_and_refuses_nan():
    with pytest.raises(BoundedInputError, match="nested deeper than 32"):
        loads_json("[" * 100_000 + "]" * 100_000, max_depth=32, max_int_digits=40)
    with pytest.raises(BoundedInputError, match="5,000 digits"):
        loads_json('{"a": ' + "7" * 5000 + "}", max_depth=32, max_int_digits=40)
    for bad in ("[NaN]", "[Infinity]", "[-Infinity]", "[1e400]"):
        with pytest.raises(BoundedInputError):
            loads_json(bad, max_depth=32, max_int_digits=40)
    text = '{"a": [1, {"b": "x]}\\"{["}], "c": -2.5}'
    assert loads_json(text, max_depth=3, max_int_digits=40) == {
        "a": [1, {"b": 'x]}"{['}],
        "c": -2.5,
    }
    with pytest.raises(BoundedInputError):
        loads_json(text, max_depth=2, max_int_digits=40)
    assert loads_json("[-Infinity]", max_depth=2, max_int_digits=4, allow_non_finite=True) == [
        float("-inf")
    ]


def test_sym_grammar_accepts_torch_expressions_and_refuses_code():
    from engine.io.sym_grammar import SymExprError, check_sym_expr

    for ok in (
        "Add(Mul(Integer(2), Symbol('s27', positive=True, integer=True)), Integer(3))",
        "Mul(Float('1.5', precision=53), Symbol('s0', positive=True, integer=True))",
        "Pow(Symbol('s0', positive=True, integer=True), Integer(2))",
        "2*s0 + 1", "(s0//2)", "-int_oo", "Max(2, s0) >= 3", "Eq(s0, 2) & (s1 < 4)",
    ):  # fmt: skip
        check_sym_expr(ok)
    for bad in (
        "__import__('os').system('x')", "s0.__class__", "lambda: 1", "open('x')",
        "Symbol('__import__(\"os\")')", "2**2**99", "Pow(Integer(9), Integer(99999))",
        "((((9**64)**64)**64)**64)", "S", "x" * 3000, "(" * 100 + "1" + ")" * 100,
    ):  # fmt: skip
        with pytest.raises(SymExprError):
            check_sym_expr(bad)


# ------------------------------------------------------------------ safetensors


def test_safetensors_state_dicts_load_with_arch_and_never_need_trust(tmp_path):
    from safetensors.torch import save_file

    from engine.io.zoo import build_zoo_model

    original = build_zoo_model("arborist:demo").model
    with torch.no_grad():
        for p in original.parameters():
            p.add_(0.5)
    path = tmp_path / "demo.safetensors"
    save_file({k: v.contiguous() for k, v in original.state_dict().items()}, str(path))
    with pytest.raises(ModelLoadError, match="holds only weights .* pass arch="):
        load_model(path)
    loaded = load_model(path, arch="arborist:demo")
    assert loaded.source_kind == "safetensors"
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)


def test_corrupt_safetensors_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    with pytest.raises(ModelLoadError, match="not a safetensors file or corrupt: bad.safetensors"):
        load_model(path, arch="arborist:demo")
