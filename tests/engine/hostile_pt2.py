"""Builders of hostile ``.pt2`` files: each one, opened with ``torch.export.load`` (and run),
creates ``marker``. Shared by the reader's tests and the CLI's.

Every builder takes a benign archive (from ``benign_pt2``) and rewrites members; the
payloads only ever touch ``marker`` (a path inside the test's tmp folder).
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


class _Touch:
    """Unpickling this opens (creates) the marker file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "a"))


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).relu().mean((2, 3)))


def benign_pt2(path: Path) -> Path:
    torch.manual_seed(0)
    program = torch.export.export(SmallNet().eval(), (torch.randn(1, 3, 8, 8),))
    torch.export.save(program, str(path))
    return path


def read_members(path: Path) -> tuple[str, dict[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        root = names[0].split("/", 1)[0]
        return root, {n[len(root) + 1 :]: archive.read(n) for n in names}


def write_members(path: Path, root: str, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(f"{root}/{name}" if not name.startswith("/") else name, data)
    return path


def torch_pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _json(members: dict[str, bytes], name: str) -> dict:
    return json.loads(members[name])


def _set_json(members: dict[str, bytes], name: str, value: dict) -> None:
    members[name] = json.dumps(value).encode()


PROGRAM = "models/model.json"
WEIGHTS = "data/weights/model_weights_config.json"
CONSTANTS = "data/constants/model_constants_config.json"


def pickled_weight(m: dict[str, bytes], marker: Path) -> None:
    config = _json(m, WEIGHTS)
    entry = config["config"]["conv.weight"]
    entry["use_pickle"] = True
    m[f"data/weights/{entry['path_name']}"] = torch_pickle(_Touch(marker))
    _set_json(m, WEIGHTS, config)


def pickled_constant(m: dict[str, bytes], marker: Path) -> None:
    weights = _json(m, WEIGHTS)["config"]
    config = _json(m, CONSTANTS)
    meta = dict(weights["fc.bias"]["tensor_meta"])
    config["config"]["evil"] = {
        "path_name": "tensor_0",
        "is_param": False,
        "use_pickle": True,
        "tensor_meta": meta,
    }
    m["data/constants/tensor_0"] = torch_pickle(_Touch(marker))
    _set_json(m, CONSTANTS, config)


def opaque_constant(m: dict[str, bytes], marker: Path) -> None:
    config = _json(m, CONSTANTS)
    config["config"]["evil"] = {
        "path_name": "opaque_obj_0",
        "is_param": False,
        "use_pickle": True,
        "tensor_meta": None,
    }
    m["data/constants/opaque_obj_0"] = pickle.dumps(_Touch(marker))
    _set_json(m, CONSTANTS, config)


def pickled_sample_inputs(m: dict[str, bytes], marker: Path) -> None:
    m["data/sample_inputs/model.pt"] = torch_pickle(((_Touch(marker),), {}))


def legacy_weights(m: dict[str, bytes], marker: Path) -> None:
    m["data/weights/model.pt"] = torch_pickle({"conv.weight": _Touch(marker)})


def sympy_expression(m: dict[str, bytes], marker: Path) -> None:
    program = _json(m, PROGRAM)
    values = program["graph_module"]["graph"]["tensor_values"]
    meta = values["relu"]
    code = f"__import__('builtins').open({str(marker)!r}, 'a') and 1"
    meta["sizes"][0] = {"as_expr": {"expr_str": code, "hint": {"as_int": 1}}}
    _set_json(m, PROGRAM, program)


def os_system_target(m: dict[str, bytes], marker: Path) -> None:
    """A node whose target resolves (torch.os is the os module) to a call that runs code."""
    program = _json(m, PROGRAM)
    nodes = program["graph_module"]["graph"]["nodes"]
    nodes.insert(
        0,
        {
            "target": "torch.os.system",
            "inputs": [{"name": "", "arg": {"as_string": f"touch {marker}"}, "kind": 1}],
            "outputs": [{"as_none": True}],
            "metadata": {},
            "is_hop_single_tensor_return": None,
            "name": None,
        },
    )
    _set_json(m, PROGRAM, program)


def name_injection(m: dict[str, bytes], marker: Path) -> None:
    """A node name that fx pastes into the generated forward() source."""
    program = _json(m, PROGRAM)
    graph = program["graph_module"]["graph"]
    evil = f"relu = open({str(marker)!r}, 'a'); relu"
    text = json.dumps(program).replace('"relu"', json.dumps(evil))
    program = json.loads(text)
    del graph
    _set_json(m, PROGRAM, program)


def guards_code(m: dict[str, bytes], marker: Path) -> None:
    program = _json(m, PROGRAM)
    program["guards_code"] = [f"open({str(marker)!r}, 'a') is not None"]
    _set_json(m, PROGRAM, program)


def aoti_library(m: dict[str, bytes], marker: Path) -> None:
    """A native library torch's AOTInductor loader extracts and dlopens."""
    m["data/aotinductor/model/model.wrapper.so"] = build_touch_library(marker)
    m["data/aotinductor/model/model.wrapper_metadata.json"] = b'{"AOTI_DEVICE_KEY": "cpu"}'


def zip_slip(m: dict[str, bytes], marker: Path) -> None:
    """A member that torch's AOTInductor loader extracts outside its temporary folder."""
    up = "../" * 12
    m[f"data/aotinductor/model/{up}{str(marker).lstrip('/')}"] = b"overwritten"
    m["data/aotinductor/model/model.wrapper_metadata.json"] = b'{"AOTI_DEVICE_KEY": "cpu"}'


def build_touch_library(marker: Path) -> bytes:
    """A shared library whose constructor creates ``marker`` (needs a C compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return b"\x7fELF not really a library"
    work = marker.parent / "lib_build"
    work.mkdir(exist_ok=True)
    src = work / "touch.c"
    src.write_text(
        "#include <stdio.h>\n__attribute__((constructor)) static void run(void) {"
        f' FILE *f = fopen("{marker}", "a"); if (f) fclose(f); }}\n'
    )
    out = work / "touch.so"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-o", str(out), str(src)], check=True, capture_output=True
    )
    return out.read_bytes()


VECTORS: dict[str, Callable[[dict[str, bytes], Path], None]] = {
    "pickled_weight": pickled_weight,
    "pickled_constant": pickled_constant,
    "opaque_constant": opaque_constant,
    "pickled_sample_inputs": pickled_sample_inputs,
    "legacy_weights": legacy_weights,
    "aoti_library": aoti_library,
    "sympy_expression": sympy_expression,
    "zip_slip": zip_slip,
    "os_system_target": os_system_target,
    "name_injection": name_injection,
    "guards_code": guards_code,
}


def build(kind: str, folder: Path) -> tuple[Path, Path]:
    """(hostile file, its marker) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"marker_{kind}"
    root, members = read_members(benign_pt2(folder / f"benign_{kind}.pt2"))
    VECTORS[kind](members, marker)
    return write_members(folder / f"{kind}.pt2", root, members), marker
