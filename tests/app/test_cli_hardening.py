"""Hostile or broken input to the command line: always exit 1 with one line (exit 2 for
usage), never a traceback, a GUI window, a network request or a half-written output."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.cli import json_text
from tests.app.test_cli import ROOT, assert_one_line_error, run_cli, sha256
from tests.engine import hostile_pt2

LONG = "a" * 5000


def run_app(*argv: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m app ...`` headless: no DISPLAY and no QT_QPA_PLATFORM, so a GUI start
    would show as Qt's abort or our no-display line, never as a window."""
    base = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    base["PYTHONPATH"] = str(ROOT)
    env = {**base, **(env or {})}
    command = [sys.executable, "-m", "app", *argv]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def one_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ dispatch


def test_json_without_a_command_is_a_usage_error_not_the_gui():
    one_line(run_app("--json"), 2, "--json is an option of the command line", "inspect, prune")


def test_unknown_command_words_and_options_are_usage_errors(tmp_path):
    one_line(run_app("evaluatex", "model.pt"), 2, "unknown command 'evaluatex'")
    one_line(run_app("--bogus"), 2, "unknown option --bogus")
    (tmp_path / "evaluatex").write_bytes(b"")  # an existing file of that name is opened
    one_line(run_app("evaluatex", cwd=tmp_path), 1, "no display to open the window on")


def test_the_dispatch_table_drives_parser_and_entry_point():
    from app.__main__ import cli_intent_without_command
    from app.cli.commands import COMMAND_NAMES, COMMANDS
    from app.cli.parser import build_parser

    assert {"inspect", "prune", "evaluate", "recover", "scan", "plan"} <= set(COMMAND_NAMES)
    choices = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001
    assert tuple(choices) == COMMAND_NAMES
    for cmd in COMMANDS:
        module = cmd.load()
        assert callable(module.run) and callable(module.format_report)
    assert cli_intent_without_command(["torchvision:resnet18"], COMMAND_NAMES) is None
    assert "unknown command 'frobnicate'" in cli_intent_without_command(["frobnicate"],
                                                                        COMMAND_NAMES)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("shape", "needle"),
    [
        ("1,1,100000,100000", "10,000,000,000 elements are over the limit"),
        ("99999999999999999999,1,8,8", "20-digit"),
        ("1,1,9223372036854775807,1", "19-digit"),
    ],
)
def test_huge_input_shapes_are_one_line_errors(capsys, shape, needle):
    code, _, err = run_cli(capsys, "inspect", "arborist:demo", "--input-shape", shape)
    assert code == 1
    assert_one_line_error(code, err, needle)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
        ('{"round_to": ' + "9" * 5000 + "}", "JSON integer of 5,000 digits"),
        ('{"importance_options": {"p": NaN}}', "NaN is not a number"),
        ('{"iterative_steps": 1000000000}', "must be at most 1000"),
    ],
)
def test_hostile_plans_are_one_line_errors(capsys, tmp_path, text, needle):
    plan = tmp_path / "plan.json"
    plan.write_text(text)
    code, _, err = run_cli(capsys, "prune", "arborist:demo", "--plan", str(plan), "--dry-run")
    assert code == 1
    assert_one_line_error(code, err, needle)


def test_a_huge_steps_flag_fails_at_once(capsys, tmp_path):
    code, _, err = run_cli(capsys, "prune", "arborist:demo", "--steps", "1000000000",
                           "-o", str(tmp_path / "out.onnx"))  # fmt: skip
    assert code == 1
    assert_one_line_error(code, err, "iterative_steps (--steps): must be at most 1000")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_device_plans_are_refused(capsys, device):
    code, _, err = run_cli(capsys, "prune", "arborist:demo", "--plan", device, "--dry-run")
    assert code == 1
    assert_one_line_error(code, err, "is a character device, not a regular file")


def test_five_thousand_character_names_are_one_line_errors(capsys, tmp_path):
    long_path = str(tmp_path / f"{LONG}.pt")
    code, _, err = run_cli(capsys, "inspect", long_path)
    assert_one_line_error(code, err, "File name too long")
    assert code == 1 and len(err) < 400
    code, _, err = run_cli(capsys, "prune", "arborist:demo", "-o", str(tmp_path / f"{LONG}.onnx"))
    assert code == 1
    assert_one_line_error(code, err, "(-o): File name too long")
    code, _, err = run_cli(capsys, "prune", "arborist:demo", "--dry-run", "--plan", long_path)
    assert code == 1
    assert_one_line_error(code, err, "File name too long")


def test_a_plan_input_is_never_overwritten(capsys, tmp_path):
    plan = tmp_path / "plan.pt2"  # named like an output, so only the input check stops it
    plan.write_text('{"pruning_ratio": 0.3}')
    before = sha256(plan)
    for flags in (["-o", str(plan)], ["-o", str(tmp_path / "m.onnx"), "--save-plan", str(plan)]):
        code, _, err = run_cli(capsys, "prune", "arborist:demo", "--plan", str(plan), *flags)
        assert code == 1
        assert_one_line_error(code, err, "refusing to overwrite the input file", "never overwrites")
    assert sha256(plan) == before
    assert not (tmp_path / "m.onnx").exists()


def test_hub_names_are_refused_without_any_network_request(capsys, tmp_path, monkeypatch):
    attempts: list[object] = []

    def no_network(self, address):  # noqa: ANN001
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    code, _, err = run_cli(capsys, "inspect", "timm:hf-hub:timm/resnet18.a1_in1k")
    assert code == 1
    assert_one_line_error(code, err, "never downloads anything")
    weights = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(2)}, weights)
    code, _, err = run_cli(capsys, "inspect", str(weights), "--arch", "timm:hf_hub:org/model")
    assert code == 1
    assert_one_line_error(code, err, "never downloads anything")
    from engine.io.checkpoint import SafeCheckpoint

    ckpt = tmp_path / "c.safe.pt"
    torch.save(SafeCheckpoint("timm:hf-hub:org/x", [], {"w": torch.zeros(1)}, None).to_dict(), ckpt)
    code, _, err = run_cli(capsys, "inspect", str(ckpt))
    assert code == 1
    assert_one_line_error(code, err, "never downloads anything")
    assert attempts == []


def test_memory_and_os_errors_are_user_errors(capsys, monkeypatch):
    import app.cli.inspect_cmd as inspect_cmd

    cases = [
        (MemoryError(), "not enough memory"),
        (OSError(28, "No space left on device", "/x/y"), "/x/y: No space left"),
    ]
    for exc, needle in cases:

        def boom(args, progress, exc=exc):  # noqa: ANN001
            raise exc

        monkeypatch.setattr(inspect_cmd, "run", boom)
        code, _, err = run_cli(capsys, "inspect", "arborist:demo")
        assert code == 1
        assert_one_line_error(code, err, needle)


def test_json_output_is_always_strict_json():
    text = json_text({"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -float("inf")}})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": {"d": None}}
    assert "NaN" not in text and "Infinity" not in text


# ------------------------------------------------------------------ .pt2


@pytest.mark.parametrize("kind", ["pickled_weight", "sympy_expression", "opaque_constant"])
def test_hostile_pt2_is_one_line_and_runs_nothing(kind, tmp_path):
    path, marker = hostile_pt2.build(kind, tmp_path)
    proc = run_app("inspect", str(path))
    one_line(proc, 1, path.name, "pass --trust")
    assert not marker.exists()


def test_unreadable_pt2_prints_one_line_not_torch_warnings(tmp_path):
    path = tmp_path / "broken.pt2"
    good = hostile_pt2.benign_pt2(tmp_path / "good.pt2")
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    one_line(run_app("inspect", str(path)), 1, "broken.pt2")
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"PK\x03\x04" + b"\x00" * 300)
    one_line(run_app("inspect", str(junk)), 1, "junk.pt2")


def test_exports_are_validated_without_unsafe_reloads(capsys, tmp_path, monkeypatch):
    """The written .pt2 is reread by Arborist's own reader, the .pt from our own bytes."""

    def forbidden(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("torch.export.load must not read the destination")

    monkeypatch.setattr(torch.export, "load", forbidden)
    out = tmp_path / "small.pt2"
    code, stdout, err = run_cli(capsys, "prune", "arborist:demo", "-o", str(out), "--json")
    assert code == 0, err
    assert json.loads(stdout)["validation"]["outputs_match"] is True
    real_load = torch.load
    paths: list[object] = []

    def spy(f, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        paths.append(f)
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    out = tmp_path / "small.pt"
    code, stdout, err = run_cli(capsys, "prune", "arborist:demo", "-o", str(out), "--json")
    assert code == 0, err
    assert json.loads(stdout)["validation"]["outputs_match"] is True
    assert not any(isinstance(p, (str, os.PathLike)) and Path(p) == out for p in paths)


# ------------------------------------------------------------------ full / read-only disks


@pytest.fixture
def small_mount(tmp_path):
    """A 64 KiB tmpfs, filled up (root only: CI and the dev machines run as root)."""
    point = tmp_path / "disk"
    point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)],
                      capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a tmpfs here")
    try:
        with open(point / "filler", "wb") as fh:
            try:
                fh.write(b"\0" * (128 * 1024))
            except OSError:
                pass
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.mark.parametrize("suffix", [".pt2", ".onnx", ".safe.pt", ".pt"])
def test_a_full_disk_is_one_line_and_leaves_no_file(small_mount, suffix):
    out = small_mount / f"small{suffix}"
    proc = run_app("prune", "arborist:demo", "-o", str(out))
    one_line(proc, 1, "No space left on device")
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in small_mount.iterdir()) == ["filler"]


def test_save_plan_onto_a_full_disk_fails_before_the_model_is_written(small_mount, tmp_path):
    out = tmp_path / "small.onnx"
    proc = run_app(
        "prune", "arborist:demo", "-o", str(out), "--save-plan", str(small_mount / "p.json")
    )
    one_line(proc, 1, "(--save-plan): No space left on device")
    assert not out.exists()


def test_save_plan_into_a_read_only_folder_fails_before_the_model_is_written(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(folder)], capture_output=True
        ).returncode
        == 0
    )
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root ignores folder permissions and cannot mount here")
        folder.chmod(0o555)
    try:
        out = tmp_path / "small.onnx"
        proc = run_app(
            "prune", "arborist:demo", "-o", str(out), "--save-plan", str(folder / "p.json")
        )
        one_line(proc, 1, "(--save-plan):")
        assert not out.exists()
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        else:
            folder.chmod(0o755)
