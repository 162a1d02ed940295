"""``arborist evaluate`` and ``arborist prune --data/--eval-data``, in-process via app.cli.main.

The numbers are checked against the engine's own evaluate() and a direct forward pass on
the same pixels; prune's "before" metrics must be exactly what `arborist evaluate` says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from app.__main__ import main as entry_point
from app.cli import main
from engine.data.digits import load_split
from engine.models.digits_net import load_demo

ROOT = Path(__file__).resolve().parents[2]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def heldout_accuracy() -> float:
    model, _ = load_demo()
    from engine.data.digits import to_uint8

    x, y = load_split("heldout")
    pixels = torch.from_numpy(to_uint8(x).astype(np.float32) / 255.0)  # what the PNGs hold
    with torch.no_grad():
        return float((model(pixels).argmax(1) == torch.from_numpy(y)).double().mean())


def test_evaluate_json_on_the_heldout_folder(capsys, digit_folders):
    report = run_json(capsys, "evaluate", "arborist:demo", "--data", str(digit_folders.heldout),
                      "--workers", "0")
    assert {"samples", "skipped", "accuracy", "top5"} <= set(report)
    assert not {"agreement", "kl", "perplexity"} & set(report)
    assert report["samples"] == 360 and report["skipped"] == 0
    assert report["accuracy"] == heldout_accuracy()
    assert round(report["accuracy"], 4) == 0.9944
    assert report["preprocessing"]["source"] == "demo metadata"


def test_evaluate_unlabeled_against_reference_and_text_report(capsys, unlabeled_digit_folders):
    report = run_json(capsys, "evaluate", "arborist:demo", "--data",
                      str(unlabeled_digit_folders.heldout), "--reference", "arborist:demo",
                      "--samples", "100", "--batch-size", "25", "--workers", "0")
    assert report["samples"] == 100
    assert report["agreement"] == 1.0 and report["kl"] == 0.0
    assert "accuracy" not in report
    code, out, err = run_cli(capsys, "evaluate", "arborist:demo", "--data",
                             str(unlabeled_digit_folders.heldout), "--reference", "arborist:demo",
                             "--samples", "50")
    assert code == 0, err
    assert "top-1 agreement with the reference" in out and "100.00%" in out


def test_evaluate_tensor_file_and_overrides(capsys, tmp_path):
    x, y = load_split("heldout")
    np.savez(tmp_path / "held.npz", x=x, y=y)
    report = run_json(capsys, "evaluate", "arborist:demo", "--data", str(tmp_path / "held.npz"))
    model, _ = load_demo()
    with torch.no_grad():
        want = float((model(torch.from_numpy(x)).argmax(1) == torch.from_numpy(y)).double().mean())
    assert report["accuracy"] == want and report["kind"] == "tensors"
    np.save(tmp_path / "bad.npy", x[:, :, :5])
    code, out, err = run_cli(capsys, "evaluate", "arborist:demo", "--data",
                             str(tmp_path / "bad.npy"))
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "(1, 8, 8)" in err


def test_evaluate_errors_are_one_line_exit_1(capsys, tmp_path, digit_folders):
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(capsys, "evaluate", "arborist:demo", "--data", str(tmp_path / "empty"))
    assert code == 1 and out == ""
    assert err.startswith("arborist: error: ") and len(err.strip().splitlines()) == 1
    assert "is empty" in err
    with pytest.raises(SystemExit) as usage:  # argparse: a usage error
        main(["evaluate", "arborist:demo", "--data", str(digit_folders.heldout), "--resize", "0"])
    assert usage.value.code == 2 and "--resize" in capsys.readouterr().err
    code, _, err = run_cli(capsys, "evaluate", "arborist:demo", "--data",
                           str(digit_folders.heldout), "--no-grayscale", "--workers", "0")
    assert code == 1 and "3-channel" in err


def test_unknown_subcommands_are_usage_errors(capsys):
    assert entry_point(["evaluatex", "arborist:demo"]) == 2
    assert "unknown command 'evaluatex'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # known command, missing MODEL/--data
        entry_point(["evaluate"])
    assert usage.value.code == 2
    err = capsys.readouterr().err
    assert "required" in err and len(err.strip().splitlines()) == 1


def test_prune_with_data_reports_metrics_before_and_after(capsys, tmp_path, digit_folders):
    evaluated = run_json(capsys, "evaluate", "arborist:demo", "--data",
                         str(digit_folders.heldout), "--workers", "0")
    out = tmp_path / "pruned.safe.pt"
    report = run_json(capsys, "prune", "arborist:demo", "--ratio", "0.25", "--importance",
                      "taylor", "--data", str(digit_folders.train), "--eval-data",
                      str(digit_folders.heldout), "--samples", "360", "--workers", "0",
                      "-o", str(out))
    before, pruned = report["metrics"]["before"], report["metrics"]["pruned"]
    metric_keys = {"samples", "skipped", "accuracy", "top5"}
    assert {k: before[k] for k in metric_keys} == {k: evaluated[k] for k in metric_keys}
    assert {"agreement", "kl", "accuracy"} <= set(pruned)
    assert pruned["samples"] == 360 and 0 <= pruned["agreement"] <= 1 and pruned["kl"] > 0
    assert not any("random batch" in w for w in report["warnings"])
    assert report["data"]["calibration"]["samples"] == 360
    reloaded = run_json(capsys, "evaluate", str(out), "--data", str(digit_folders.heldout),
                        "--workers", "0", "--reference", "arborist:demo")
    assert reloaded["accuracy"] == pruned["accuracy"]
    assert reloaded["agreement"] == pruned["agreement"]
    assert reloaded["kl"] == pytest.approx(pruned["kl"], rel=1e-9)


def test_prune_eval_data_alone_evaluates_without_calibrating(capsys, digit_folders):
    code, out, err = run_cli(capsys, "prune", "arborist:demo", "--ratio", "0.25", "--importance",
                             "taylor", "--eval-data", str(digit_folders.heldout), "--dry-run",
                             "--samples", "60", "--workers", "0")
    assert code == 0, err
    assert "on 60 evaluation samples" in out and "accuracy" in out
    assert "random batch" in out and "--data PATH" in out  # the warning names the fix


def test_subprocess_evaluate_runs_headless(digit_folders):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    done = subprocess.run([sys.executable, "-m", "app", "evaluate", "arborist:demo", "--data",
                           str(digit_folders.heldout), "--json", "--samples", "40"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["samples"] == 40
