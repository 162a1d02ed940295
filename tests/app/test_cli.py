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
    if spec == "torchvision:resnet18":  # published figures: 1.82 GMACs, 12 coupled groups
        assert report["macs"] == 1822177768 and len(report["groups"]) == 12
        assert report["groups"][0]["root"] == "conv1"


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


def run_python(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter at the repository root; it must exit 0."""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_path_never_imports_qt():
    code = (
        "import sys; from app.cli import main; "
        "rc = main(['inspect', 'arborist:demo', '--json']); "
        "assert rc == 0; assert not any(m.startswith('PySide6') for m in sys.modules), 'Qt'"
    )
    proc = run_python(code)
    assert json.loads(proc.stdout)["params"] == 21690


def test_entry_point_freezes_import_time_objects_and_in_process_calls_do_not():
    """In a fresh process: `freeze_gc=True` (what `arborist` passes) moves torch's and the
    engine's objects out of the collector's reach; the default leaves the caller's process
    alone; the collector still reclaims cycles made afterwards."""
    code = (
        "import gc, sys; from app.cli import main\n"
        "assert main(['inspect', 'arborist:demo', '--json']) == 0\n"
        "plain = gc.get_freeze_count()\n"
        "assert main(['inspect', 'arborist:demo', '--json'], freeze_gc=True) == 0\n"
        "frozen = gc.get_freeze_count()\n"
        "a = []; a.append(a); del a\n"
        "print(plain, frozen, gc.collect(), file=sys.stderr)\n"
    )
    proc = run_python(code)
    plain, frozen, collected = map(int, proc.stderr.split()[-3:])
    assert plain == 0
    assert frozen > 100_000  # torch alone brings well over 100k tracked objects
    assert collected >= 1


# ------------------------------------------------------------------------------------- prune


def shapes_of(path: Path) -> dict[str, tuple[int, ...]]:
    model = torch.load(path, map_location="cpu", weights_only=False)  # written by the test
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--global"],
        ["--ratio", "0.3", "--round-to", "8"],
        ["--steps", "2", "--ratio", "0.6"],
        ["--global", "--isomorphic", "--ratio", "0.4", "--importance", "lamp"],
    ],
)
def test_dry_run_predicts_the_real_prune(capsys, tmp_path, flags):
    out = tmp_path / "pruned.pt"
    plan = tmp_path / "plan.json"
    dry = run_json(
        capsys,
        "prune",
        "arborist:demo",
        "-o",
        str(out),
        "--save-plan",
        str(plan),
        "--dry-run",
        *flags,
    )
    assert not out.exists() and not plan.exists()  # --dry-run writes nothing
    assert dry["dry_run"] is True and dry["output"] is None and dry["validation"] is None
    real = run_json(capsys, "prune", "arborist:demo", "-o", str(out), *flags)
    assert real["before"] == dry["before"] == {"macs": 483146, "params": 21690}
    assert real["after"] == dry["after"]
    assert real["layers"] == dry["layers"]  # every layer's predicted width, exactly
    assert real["after"]["params"] < real["before"]["params"]
    model = torch.load(out, weights_only=False)
    macs, params = count_ops_and_params(model, load_model("arborist:demo").example_inputs)
    assert real["after"] == {"macs": macs, "params": params}


def test_round_to_keeps_multiples(capsys, tmp_path):
    out = tmp_path / "r18.pt"
    report = run_json(
        capsys,
        "prune",
        "torchvision:resnet18",
        "--input-shape",
        "1,3,32,32",
        "--ratio",
        "0.3",
        "--round-to",
        "8",
        "-o",
        str(out),
    )
    model = torch.load(out, weights_only=False)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 for c in convs)
    assert any(c.out_channels not in (64, 128, 256, 512) for c in convs)
    assert model.fc.out_features == 1000  # the classifier is locked, not --ignored
    assert report["output_layers"] == ["fc"]
    macs, params = count_ops_and_params(model, torch.randn(1, 3, 32, 32))
    assert report["after"] == {"macs": macs, "params": params}


def test_saved_plan_reproduces_the_structure(capsys, tmp_path):
    first, second, plan = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "plan.json"
    flags = ["--global", "--ratio", "0.4", "--ignore", "stem.0", "--steps", "2"]
    a = run_json(
        capsys, "prune", "arborist:demo", "-o", str(first), "--save-plan", str(plan), *flags
    )
    saved = json.loads(plan.read_text())
    assert saved["global_pruning"] is True and saved["pruning_ratio"] == 0.4
    assert saved["ignored_layers"] == ["stem.0"] and saved["iterative_steps"] == 2
    assert saved["source"] == "arborist:demo" and saved["input_spec"] == "1,1,8,8"
    run_json(capsys, "prune", "arborist:demo", "--plan", str(plan), "-o", str(second))
    assert shapes_of(first) == shapes_of(second)
    original = {
        k: tuple(v.shape) for k, v in load_model("arborist:demo").model.state_dict().items()
    }
    assert shapes_of(first) != original
    assert shapes_of(first)["stem.0.weight"] == original["stem.0.weight"]  # ignored
    # an explicit flag overrides the plan's field
    smaller = run_json(
        capsys, "prune", "arborist:demo", "--plan", str(plan), "--ratio", "0.7", "--dry-run"
    )
    assert smaller["plan"]["pruning_ratio"] == 0.7 and smaller["plan"]["global_pruning"] is True
    assert smaller["after"]["params"] < a["after"]["params"]
    plan.write_text(json.dumps({**saved, "source": "elsewhere/demo.pt"}))
    other = run_json(capsys, "prune", "arborist:demo", "--plan", str(plan), "--dry-run")
    assert "the plan was made for elsewhere/demo.pt" in " ".join(other["warnings"])
    assert other["after"] == a["after"]


def test_bad_plan_files_are_one_line_errors(capsys, tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    code, _, err = run_cli(capsys, "prune", "arborist:demo", "--plan", str(bad_json), "--dry-run")
    assert_one_line_error(code, err, "bad.json", "JSON")
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"layer_ratios": {"block.conv9": 0.5}}))
    code, _, err = run_cli(capsys, "prune", "arborist:demo", "--plan", str(unknown), "--dry-run")
    assert_one_line_error(code, err, "block.conv9")
    code, _, err = run_cli(capsys, "prune", "arborist:demo", "--ratio", "1.5", "--dry-run")
    assert_one_line_error(code, err, "1.5", "--ratio")
    code, _, err = run_cli(capsys, "prune", "arborist:demo")
    assert_one_line_error(code, err, "-o OUT")
    code, _, err = run_cli(capsys, "prune", "arborist:demo", "-o", str(tmp_path / "x.h5"))
    assert_one_line_error(code, err, "output format", ".onnx")


@pytest.mark.parametrize("suffix", [".pt", ".safe.pt", ".pt2"])
def test_prune_writes_a_reloadable_file(capsys, tmp_path, suffix):
    out = tmp_path / f"demo{suffix}"
    report = run_json(capsys, "prune", "arborist:demo", "--ratio", "0.25", "-o", str(out))
    check = report["validation"]
    assert report["output"] == str(out) and out.exists()
    assert check["reloaded"] is True and check["outputs_match"] is True
    assert check["max_abs_diff"] < 1e-5
    if suffix == ".safe.pt":  # loads without --trust and replays the pruning
        again = run_json(capsys, "inspect", str(out))
        assert again["params"] == report["after"]["params"]
        assert again["macs"] == report["after"]["macs"]


def test_prune_latency_is_measured_only_on_request(capsys, tmp_path):
    plain = run_json(capsys, "prune", "arborist:demo", "-o", str(tmp_path / "a.safe.pt"))
    assert "latency" not in plain
    timed = run_json(
        capsys, "prune", "arborist:demo", "-o", str(tmp_path / "b.safe.pt"), "--latency"
    )
    lat = timed["latency"]
    assert lat["device"] == "cpu" and lat["error"] is None
    assert 3 <= lat["rounds"] <= 25 and lat["before_ms"] > 0 and lat["after_ms"] > 0
    assert timed["after"] == plain["after"]  # timing a copy of the original changes nothing
    code, out, _ = run_cli(
        capsys, "prune", "arborist:demo", "-o", str(tmp_path / "c.safe.pt"), "--latency"
    )
    assert code == 0
    assert "  latency (cpu) " in out and "interleaved runs on the example input" in out
    code, _, err = run_cli(capsys, "prune", "arborist:demo", "--dry-run", "--latency")
    assert_one_line_error(code, err, "--latency", "--dry-run")


def test_safe_checkpoint_needs_an_architecture(capsys, tmp_path, pickled_model):
    out = tmp_path / "net.safe.pt"
    code, _, err = run_cli(
        capsys, "prune", str(pickled_model), "--trust", "--input-shape", "1,3,8,8", "-o", str(out)
    )
    assert_one_line_error(code, err, ".safe.pt", "architecture")
    assert not out.exists()


def test_prune_to_onnx_is_validated(capsys, tmp_path):
    out = tmp_path / "r18.onnx"
    report = run_json(
        capsys, "prune", "torchvision:resnet18", "--input-shape", "1,3,64,64", "-o", str(out)
    )
    check = report["validation"]
    assert check["format"] == "onnx" and check["onnx_checker_ok"] is True
    assert check["outputs_match"] is True and check["max_abs_diff"] < 1e-4
    assert check["outputs"][0]["shape"] == ["batch", 1000]
    assert report["after"]["params"] < report["before"]["params"] / 2


def test_onnx_in_smaller_onnx_out(capsys, tmp_path):
    import onnxruntime as ort

    from engine.io import export_onnx

    source = tmp_path / "net.onnx"
    export_onnx(small_net(), torch.randn(1, 3, 8, 8), source)
    before_hash = sha256(source)
    out = tmp_path / "net.pruned.onnx"
    report = run_json(capsys, "prune", str(source), "--ratio", "0.5", "-o", str(out))
    assert sha256(source) == before_hash
    assert out.stat().st_size < source.stat().st_size
    assert report["validation"]["max_abs_diff"] < 1e-4
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 8, 8).numpy()
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    assert y.shape == (2, 5)
    widths = {layer["out_after"] for layer in report["layers"] if layer["out_after"] != 5}
    assert widths == {4, 8}  # 8 -> 4 and 16 -> 8 channels


def test_source_file_is_never_modified(capsys, tmp_path, pickled_model):
    before = sha256(pickled_model)
    out = tmp_path / "pruned.pt"
    base = ["prune", str(pickled_model), "--trust", "--input-shape", "1,3,8,8"]
    report = run_json(capsys, *base, "-o", str(out))
    assert report["after"]["params"] < report["before"]["params"]
    code, _, err = run_cli(capsys, *base, "-o", str(pickled_model))
    assert_one_line_error(code, err, "refusing to overwrite the source")
    assert sha256(pickled_model) == before


def test_progress_bars_go_to_stderr_only(capsys):
    from app.cli.progress import Progress

    progress = Progress(enabled=True)
    with progress.stage("tracing"):
        pass
    with progress.counter("pruning") as callback:
        callback(1, 2, "step 1")
        callback(2, 2, "step 2")
    out, err = capsys.readouterr()
    assert out == ""
    assert "tracing" in err and "pruning" in err and "2/2" in err
    assert Progress.for_terminal(json_mode=True).enabled is False


@pytest.mark.parametrize("suffix", [".onnx", ".pt", ".pt2"])
def test_pt2_in_prunes_like_the_original_model(capsys, tmp_path, pickled_model, suffix):
    from engine.io import export_pt2

    source = tmp_path / "net.pt2"
    export_pt2(small_net(), torch.randn(1, 3, 8, 8), source)
    report = run_json(capsys, "prune", str(source), "-o", str(tmp_path / f"out{suffix}"))
    eager = run_json(
        capsys, "prune", str(pickled_model), "--trust", "--input-shape", "1,3,8,8", "--dry-run"
    )
    assert report["before"] == eager["before"] and report["after"] == eager["after"]
    assert report["after"]["params"] < report["before"]["params"]
    assert report["layers"] == eager["layers"] != []
    assert not any("nothing is pruned" in w for w in report["warnings"])
    assert report["validation"]["max_abs_diff"] < 1e-4


def test_safe_checkpoint_pruned_twice_keeps_its_whole_history(capsys, tmp_path):
    first, second = tmp_path / "a.safe.pt", tmp_path / "b.safe.pt"
    a = run_json(capsys, "prune", "arborist:demo", "--ratio", "0.3", "-o", str(first))
    b = run_json(capsys, "prune", str(first), "--ratio", "0.3", "--global", "-o", str(second))
    assert b["before"] == a["after"]
    assert b["after"]["params"] < a["after"]["params"]
    assert b["validation"]["outputs_match"] is True
    again = run_json(capsys, "inspect", str(second))  # replays both runs' steps on a fresh demo
    assert (again["macs"], again["params"]) == (b["after"]["macs"], b["after"]["params"])


def test_keep_macs_solves_the_ratio_and_the_prune_matches(capsys, tmp_path):
    out, plan = tmp_path / "k.pt", tmp_path / "plan.json"
    dry = run_json(capsys, "prune", "arborist:demo", "--keep-macs", "0.5", "--dry-run")
    real = run_json(
        capsys,
        "prune",
        "arborist:demo",
        "--keep-macs",
        "0.5",
        "-o",
        str(out),
        "--save-plan",
        str(plan),
    )
    assert dry["solved"] == real["solved"] and dry["after"] == real["after"]
    kept = real["after"]["macs"] / real["before"]["macs"]
    assert kept <= 0.5 and kept == pytest.approx(real["solved"]["achieved"])
    assert json.loads(plan.read_text())["pruning_ratio"] == real["solved"]["ratio"] > 0
    code, _, err = run_cli(capsys, "prune", "arborist:demo", "--keep-params", "0", "--dry-run")
    assert_one_line_error(code, err, "--keep-params 0", "(0, 1]")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        ("torchvision:mobilenet_v3_small", "1,3,64,64"),
        ("torchvision:densenet121", "1,3,64,64"),
        ("torchvision:regnet_x_400mf", "1,3,64,64"),
        ("timm:vit_tiny_patch16_224", "1,3,224,224"),
    ],
)
def test_dry_run_predicts_the_real_prune_across_families(capsys, tmp_path, spec, shape):
    out = tmp_path / "m.onnx"
    flags = ["--input-shape", shape, "--global", "--ratio", "0.3", "--round-to", "8"]
    dry = run_json(capsys, "prune", spec, "--dry-run", *flags)
    real = run_json(capsys, "prune", spec, "-o", str(out), *flags)
    assert real["after"] == dry["after"] and real["layers"] == dry["layers"]
    assert real["after"]["macs"] < real["before"]["macs"]
    assert real["validation"]["outputs_match"] is True


def test_zoo_runs_are_reproducible_so_dry_run_predicts_global_pruning(capsys, tmp_path):
    # zoo weights are random: without the CLI's fixed seed, two runs rank channels differently
    flags = ["--input-shape", "1,3,32,32", "--global", "--ratio", "0.4"]
    dry = run_json(capsys, "prune", "torchvision:resnet18", "--dry-run", *flags)
    torch.manual_seed(1234)  # a different RNG state, as in a new process
    real = run_json(capsys, "prune", "torchvision:resnet18", "-o", str(tmp_path / "r.pt"), *flags)
    assert real["after"] == dry["after"] and real["layers"] == dry["layers"]
    widths = {layer["out_after"] for layer in real["layers"]}
    assert len(widths) > 4  # global pruning: uneven widths, so the match is not trivial
