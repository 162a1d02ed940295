"""The ``arborist inspect|prune`` command line, run in-process through ``app.cli.main``.

Each test checks exit codes, the exact one-line error, or exact numbers
(params equal to sum(p.numel()), predicted == real MACs/params, ONNX diffs).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from app.cli import main
from engine.io import load_model
from engine.utils import count_ops_and_params

ROOT = Path(__file__).resolve().parents[2]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)  # exactly one JSON object, nothing else on stdout


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("arborist: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def small_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    )
    with torch.no_grad():  # non-trivial BN statistics
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture
def pickled_model(tmp_path) -> Path:
    path = tmp_path / "net.pt"
    torch.save(small_net(), path)
    return path


class WritesAFile:
    """A hostile payload: unpickling it creates ``marker`` (via builtins.open)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# ----------------------------------------------------------------------- trust gate / bad input


def test_pickled_model_needs_trust(capsys, pickled_model):
    code, out, err = run_cli(capsys, "inspect", str(pickled_model), "--input-shape", "1,3,8,8")
    assert_one_line_error(code, err, "net.pt", "run code", "--trust")
    assert out == ""
    report = run_json(capsys, "inspect", str(pickled_model), "--input-shape", "1,3,8,8", "--trust")
    assert report["params"] == sum(p.numel() for p in small_net().parameters())


@pytest.mark.parametrize("writer", ["pickle", "torch"])
def test_hostile_pickle_runs_nothing_without_trust(capsys, tmp_path, writer):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(WritesAFile(marker), protocol=4))
    else:
        torch.save(WritesAFile(marker), path)
    code, _, err = run_cli(capsys, "inspect", str(path))
    assert_one_line_error(code, err, "evil.pt", "--trust")
    assert not marker.exists()
    # --trust really does run the file's code (that is what the flag means): documented.
    code, _, err = run_cli(capsys, "inspect", str(path), "--trust")
    assert marker.exists()
    assert_one_line_error(code, err, "not a model")


def test_truncated_file_is_a_clear_error(capsys, tmp_path, pickled_model):
    data = pickled_model.read_bytes()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(data[: len(data) // 2])
    code, _, err = run_cli(capsys, "inspect", str(broken), "--trust")
    assert_one_line_error(code, err, "broken.pt", "corrupt")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    code, _, err = run_cli(capsys, "inspect", str(empty))
    assert_one_line_error(code, err, "empty.pt", "empty")


@pytest.mark.parametrize(
    ("obj", "needle"),
    [({"a": 1, "b": 2}, "dict with 2 keys"), ([1, 2, 3], "list of 3 items")],
)
def test_non_model_pickle_is_a_clear_error(capsys, tmp_path, obj, needle):
    path = tmp_path / "data.pt"
    torch.save(obj, path)
    code, _, err = run_cli(capsys, "inspect", str(path))
    assert_one_line_error(code, err, "data.pt", needle, "not a model")


def test_state_dict_needs_arch_then_loads(capsys, tmp_path):
    from torchvision.models import resnet18

    path = tmp_path / "weights.pth"
    torch.save(resnet18().state_dict(), path)
    code, _, err = run_cli(capsys, "inspect", str(path))
    assert_one_line_error(code, err, "weights.pth", "--arch")
    report = run_json(capsys, "inspect", str(path), "--arch", "torchvision:resnet18")
    assert report["params"] == 11689512


@pytest.mark.parametrize(
    ("shape", "needle"),
    [
        ("1,1,8,8", "expected input[1, 1, 8, 8] to have 3 channels"),
        ("1,3,a", "'a' is not a positive integer"),
    ],
)
def test_wrong_input_shape_is_a_clear_error(capsys, shape, needle):
    code, out, err = run_cli(
        capsys, "inspect", "torchvision:resnet18", "--input-shape", shape, "--json"
    )
    assert_one_line_error(code, err, needle)
    assert out == ""


def test_missing_file_and_unknown_zoo_model(capsys, tmp_path):
    code, _, err = run_cli(capsys, "inspect", str(tmp_path / "nope.pt"))
    assert_one_line_error(code, err, "not found", "nope.pt")
    code, _, err = run_cli(capsys, "inspect", "torchvision:no_such_net")
    assert_one_line_error(code, err, "no_such_net")


def test_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prune", "arborist:demo", "--ratio", "half"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ratio" in err[0] and "--help" in err[0]


# ----------------------------------------------------------------------------------- inspect


@pytest.mark.parametrize("spec", ["arborist:demo", "torchvision:resnet18"])
def test_inspect_json_exact_counts(capsys, spec):
    report = run_json(capsys, "inspect", spec)
    fresh = load_model(spec)
    assert report["params"] == sum(p.numel() for p in fresh.model.parameters())
    macs, params = count_ops_and_params(fresh.model, fresh.example_inputs)
    assert (report["macs"], report["params"]) == (macs, params)
    names = [layer["name"] for layer in report["layers"]]
    assert "fc" in names and len(names) == len(set(names))
    assert sum(layer["params"] for layer in report["layers"]) == report["params"]
    # the classifier is locked by the engine (lock_outputs=True): no --ignore needed
    assert report["output_layers"] == ["fc"]
    assert all(g["root"] != "fc" for g in report["groups"])
    assert all(g["channels"] > 0 and g["members"] for g in report["groups"])


def test_inspect_demo_groups_and_text(capsys):
    report = run_json(capsys, "inspect", "arborist:demo")
    assert [g["root"] for g in report["groups"]] == [
        "stem.0",
        "branch_a.0",
        "branch_b.0",
        "block.conv1",
    ]
    assert report["input_spec"] == "1,1,8,8"
    code, out, err = run_cli(capsys, "inspect", "arborist:demo")
    assert code == 0 and err == ""
    assert "4 prunable groups" in out and "fc (no need to --ignore" in out


def test_inspect_resnet18_group_count(capsys):
    report = run_json(capsys, "inspect", "torchvision:resnet18")
    assert report["macs"] == 1822177768
    assert len(report["groups"]) == 12
    assert report["groups"][0]["root"] == "conv1"


# ------------------------------------------------------------------------------ subprocess


def test_python_m_app_exit_code_and_one_line_error(tmp_path):
    path = tmp_path / "data.pt"
    torch.save([1, 2, 3], path)
    proc = subprocess.run(
        [sys.executable, "-m", "app", "inspect", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "arborist: error: data.pt holds a list of 3 items, not a model or a state dict"
    ]


def test_cli_path_never_imports_qt():
    code = (
        "import sys; from app.cli import main; "
        "rc = main(['inspect', 'arborist:demo', '--json']); "
        "assert rc == 0; assert not any(m.startswith('PySide6') for m in sys.modules), 'Qt'"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["params"] == 21690
