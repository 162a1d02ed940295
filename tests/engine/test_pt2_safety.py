"""Opening a .pt2 runs nothing from it and writes nothing (engine/io/pt2_reader.py).

Each hostile file of tests/engine/hostile_pt2.py creates a marker file when torch's own
loader opens it; the first test proves that in a fresh interpreter (so each file is
really hostile), the others that Arborist's loader never lets the marker appear.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch

from engine.io import ModelLoadError, UntrustedPickleError, load_model
from engine.io.pt2_reader import read_pt2
from tests.engine import hostile_pt2 as hostile

#: Vectors that run code under torch.export.load (+ .module() and one forward).
RUN_BY_TORCH = [
    "pickled_weight",
    "pickled_constant",
    "opaque_constant",
    "pickled_sample_inputs",
    "legacy_weights",
    "aoti_library",
    "sympy_expression",
    "zip_slip",
    "guards_code",
]
#: Refused by rule although torch 2.14's verifier or fx happen to stop them today.
REFUSED_BY_RULE = ["os_system_target", "name_injection"]
#: Loaded safely: the dangerous part is skipped, with a warning saying so.
LOADED_WITHOUT_IT = {"pickled_sample_inputs", "aoti_library", "guards_code"}


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("hostile")
    return {kind: hostile.build(kind, base / kind) for kind in hostile.VECTORS}


_PROOF = """
import json, sys, torch
for path in json.loads(sys.argv[1]).values():
    try:
        torch.export.load(path).module()(torch.randn(1, 3, 8, 8))
    except Exception:
        pass
"""


def test_torch_export_load_runs_every_payload(hostile_files, tmp_path):
    """The oracle is meaningful: torch's loader creates each marker (and leaves temp folders)."""
    if hostile.build_touch_library(tmp_path / "probe").startswith(b"\x7fELF not"):
        pytest.skip("no C compiler for the AOTInductor library")
    paths = {k: str(hostile_files[k][0]) for k in RUN_BY_TORCH}
    scratch = tmp_path / "torch_tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    subprocess.run([sys.executable, "-c", _PROOF, json.dumps(paths)], env=env,
                   capture_output=True, timeout=300, check=False)  # fmt: skip
    ran = [k for k in RUN_BY_TORCH if hostile_files[k][1].exists()]
    assert ran == RUN_BY_TORCH
    assert any(p.name.startswith("aotinductor_") for p in scratch.iterdir())
    for kind in RUN_BY_TORCH:  # the next tests need the markers gone
        hostile_files[kind][1].unlink()


@pytest.mark.parametrize("kind", RUN_BY_TORCH + REFUSED_BY_RULE)
def test_arborist_runs_nothing_and_writes_nothing(kind, hostile_files, tmp_path, monkeypatch):
    path, marker = hostile_files[kind]
    marker.unlink(missing_ok=True)
    before = sorted(p.name for p in path.parent.iterdir())
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    if kind in LOADED_WITHOUT_IT:
        with pytest.warns(UserWarning, match="not loaded"):
            loaded = load_model(path)
        with torch.no_grad():
            out = loaded.model(loaded.example_inputs)
        assert out.shape == (1, 4)
    else:
        error = UntrustedPickleError if kind != "zip_slip" else ModelLoadError
        with pytest.raises(error) as info:
            load_model(path)
        message = str(info.value)
        assert "\n" not in message and path.name in message
        if error is UntrustedPickleError:
            assert "trust" in message
        else:
            assert "outside the archive" in message
    assert not marker.exists()
    assert list(scratch.iterdir()) == []  # nothing extracted, no aotinductor_* folder
    assert sorted(p.name for p in path.parent.iterdir()) == before


def test_trust_is_what_lets_a_pickled_member_run(hostile_files):
    """--trust means 'run code from the file': then the opaque constant is unpickled."""
    path, marker = hostile_files["opaque_constant"]
    marker.unlink(missing_ok=True)
    with pytest.raises(ModelLoadError) as info:  # the payload is not a valid constant
        load_model(path, trust=True)
    assert marker.exists()
    assert "\n" not in str(info.value)
    marker.unlink()


def test_a_benign_program_loads_exactly_like_torch_export(tmp_path):
    path = hostile.benign_pt2(tmp_path / "net.pt2")
    contents = read_pt2(path)
    ours, theirs = contents.program, torch.export.load(str(path))
    assert contents.notes == []
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(ours.module()(x), theirs.module()(x))
    assert ours.state_dict.keys() == theirs.state_dict.keys()
    for key, value in theirs.state_dict.items():
        assert torch.equal(ours.state_dict[key], value)
        assert type(ours.state_dict[key]) is type(value)


def test_a_pickled_plain_tensor_member_loads_weights_only(tmp_path):
    """use_pickle records holding only tensors need no trust (weights_only=True reads them)."""
    root, members = hostile.read_members(hostile.benign_pt2(tmp_path / "net.pt2"))
    config = json.loads(members[hostile.WEIGHTS])
    entry = config["config"]["fc.bias"]
    entry["use_pickle"] = True
    plain = torch.arange(4, dtype=torch.float32)
    members[f"data/weights/{entry['path_name']}"] = hostile.torch_pickle(torch.nn.Parameter(plain))
    members[hostile.WEIGHTS] = json.dumps(config).encode()
    program = read_pt2(hostile.write_members(tmp_path / "p.pt2", root, members)).program
    assert torch.equal(program.state_dict["fc.bias"], plain)


def _rewrite_weight(tmp_path: Path, data: bytes, sizes: list[int] | None = None) -> Path:
    root, members = hostile.read_members(hostile.benign_pt2(tmp_path / "net.pt2"))
    config = json.loads(members[hostile.WEIGHTS])
    entry = config["config"]["conv.weight"]
    if sizes is not None:
        entry["tensor_meta"]["sizes"] = [{"as_int": s} for s in sizes]
        strides, step = [], 1
        for s in reversed(sizes):
            strides.insert(0, {"as_int": step})
            step *= s
        entry["tensor_meta"]["strides"] = strides
    members[f"data/weights/{entry['path_name']}"] = data
    members[hostile.WEIGHTS] = json.dumps(config).encode()
    return hostile.write_members(tmp_path / "edited.pt2", root, members)


def test_an_emptied_record_is_refused_not_read_as_zeros(tmp_path):
    with pytest.raises(ModelLoadError, match=r"'data/weights/weight_0' is empty but tensor "
                       r"'conv.weight' of shape \(8, 3, 3, 3\) needs 864"):  # fmt: skip
        load_model(_rewrite_weight(tmp_path, b""))


def test_a_record_declaring_8_gib_is_refused_before_allocating(tmp_path):
    path = _rewrite_weight(tmp_path, b"", sizes=[2**31, 4])
    with pytest.raises(ModelLoadError, match="needs 34,359,738,368"):
        load_model(path)


def test_a_short_record_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="holds 16 bytes but tensor 'conv.weight'"):
        load_model(_rewrite_weight(tmp_path, b"\0" * 16))


def test_flipped_bytes_in_a_weight_fail_the_crc_check(tmp_path):
    path = hostile.benign_pt2(tmp_path / "net.pt2")
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("weights/weight_0"))
    raw = bytearray(path.read_bytes())
    header = info.header_offset  # the local header's own name/extra lengths locate the data
    start = header + 30 + int.from_bytes(raw[header + 26 : header + 28], "little")
    start += int.from_bytes(raw[header + 28 : header + 30], "little")
    raw[start + 5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelLoadError, match="fails its check"):
        load_model(path)


def test_a_decompression_bomb_is_refused_before_inflating(tmp_path):
    root, members = hostile.read_members(hostile.benign_pt2(tmp_path / "net.pt2"))
    path = tmp_path / "bomb.pt2"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(f"{root}/{name}", data)
        archive.writestr(f"{root}/extra/padding", b"\0" * (64 * 2**20))
    assert path.stat().st_size < 2**20
    with pytest.raises(ModelLoadError, match="decompression bomb"):
        load_model(path)


def test_unreadable_pt2_gives_one_line_and_prints_nothing(tmp_path, capfd):
    path = tmp_path / "junk.pt2"
    path.write_bytes(b"PK\x03\x04" + os.urandom(200))
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert "junk.pt2" in str(info.value) and "\n" not in str(info.value)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_example_input_metadata_cannot_force_a_huge_allocation(tmp_path):
    """Placeholder shapes become the example inputs when no sample inputs are saved."""
    root, members = hostile.read_members(hostile.benign_pt2(tmp_path / "net.pt2"))
    program = json.loads(members[hostile.PROGRAM])
    meta = program["graph_module"]["graph"]["tensor_values"]["x"]
    meta["sizes"] = [{"as_int": s} for s in (1, 3, 12000, 12000)]
    meta["strides"] = [{"as_int": s} for s in (3 * 12000 * 12000, 12000 * 12000, 12000, 1)]
    members[hostile.PROGRAM] = json.dumps(program).encode()
    del members["data/sample_inputs/model.pt"]
    path = hostile.write_members(tmp_path / "big.pt2", root, members)
    with pytest.raises(ModelLoadError, match=r"432,000,000 elements.*dimension 3 = 12,000"):
        load_model(path)
    loaded = load_model(path, input_spec="1,3,8,8")  # the user's own shape is used instead
    assert tuple(loaded.example_inputs.shape) == (1, 3, 8, 8)
