"""`arborist prune --recover-*` and `arborist recover` on the real digits image folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL_ACC = 0.9944
FAST = ["--threads", "1", "--workers", "0"]  # the shared 2-core machine: see test_recover.py


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _arborist(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _in_process(capsys, *args: str) -> tuple[int, str, str]:
    from app.cli import main

    threads = torch.get_num_threads()
    try:
        code = main(list(args))
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr()
    return code, out.out, out.err


def _heldout_accuracy(path: str, heldout: Path) -> float:
    """The reloaded file, evaluated afresh on the held-out folder."""
    from engine.data import make_loader, open_data
    from engine.data.preprocessing import ModelFacts
    from engine.evaluate import evaluate
    from engine.io import load_model

    loaded = load_model(path)
    facts = ModelFacts.from_loaded(loaded)
    facts.example_inputs = loaded.example_inputs
    source = open_data(heldout, model_facts=facts)
    return evaluate(loaded.model, make_loader(source, 64, num_workers=0)).accuracy


def test_prune_and_recover_the_demo_to_the_original_minus_one_point(digit_folders, tmp_path):
    out = tmp_path / "demo.safe.pt"
    start = time.perf_counter()
    data = ["--data", str(digit_folders.train), "--eval-data", str(digit_folders.heldout)]
    result = _arborist("prune", "arborist:demo", "--keep-macs", "0.4", *data,
                       "--recover-epochs", "5", "--lr", "3e-3", *FAST, "-o", str(out), "--json")
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["after"]["macs"] <= 0.40 * report["before"]["macs"]
    metrics = report["metrics"]
    assert metrics["before"]["accuracy"] == pytest.approx(ORIGINAL_ACC, abs=1e-4)
    assert metrics["pruned"]["accuracy"] < 0.5
    assert metrics["recovered"]["accuracy"] >= ORIGINAL_ACC - 0.01
    assert seconds < 120  # the whole command: load, prune, recover, export, validate
    rec = report["recovery"]
    assert set(rec) >= {"steps", "epochs", "seconds", "samples_per_s", "curve", "resumed_from"}
    assert rec["epochs"] == 5.0 and rec["resumed_from"] is None and rec["samples_per_s"] > 0
    assert rec["curve_labels"][:2] == ["pruned", "bn-recalibrated"]
    assert rec["curve"][0][2] == pytest.approx(metrics["pruned"]["accuracy"], abs=1e-5)
    assert rec["curve"][-1][2] == pytest.approx(metrics["recovered"]["accuracy"], abs=1e-5)
    assert report["validation"]["outputs_match"]
    # the exported file is the recovered model: reloaded, it measures the same accuracy
    assert _heldout_accuracy(str(out), digit_folders.heldout) == pytest.approx(
        metrics["recovered"]["accuracy"], abs=1e-9)


def test_distillation_alone_on_an_unlabeled_folder(digit_folders, unlabeled_digit_folders,
                                                   tmp_path, capsys):
    code, out, err = _in_process(
        capsys, "prune", "arborist:demo", "--keep-macs", "0.4",
        "--data", str(unlabeled_digit_folders.train), "--eval-data", str(digit_folders.heldout),
        "--recover-epochs", "5", "--recover-loss", "distill", "--lr", "3e-3", *FAST,
        "-o", str(tmp_path / "d.safe.pt"), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["data"]["calibration"]["labeled"] is False
    assert report["recovery"]["loss_kind"] == "distill"
    assert report["metrics"]["recovered"]["accuracy"] >= ORIGINAL_ACC - 0.02


def test_recover_command_continues_a_pruned_file(digit_folders, tmp_path, capsys):
    pruned = tmp_path / "pruned.safe.pt"
    code, _, err = _in_process(capsys, "prune", "arborist:demo", "--keep-macs", "0.4",
                               "-o", str(pruned), "--json")
    assert code == 0, err
    before = pruned.read_bytes()
    out = tmp_path / "recovered.safe.pt"
    code, text, err = _in_process(
        capsys, "recover", str(pruned), "--teacher", "arborist:demo",
        "--data", str(digit_folders.train), "--eval-data", str(digit_folders.heldout),
        "--recover-steps", "30", "--eval-every", "15", "--lr", "3e-3", *FAST, "-o", str(out),
        "--json")
    assert code == 0, err
    report = json.loads(text)
    m = report["metrics"]
    assert m["teacher"]["accuracy"] == pytest.approx(ORIGINAL_ACC, abs=1e-4)
    assert m["recovered"]["accuracy"] > m["pruned"]["accuracy"] + 0.3
    assert report["recovery"]["steps"] == 30 and report["validation"]["outputs_match"]
    assert pruned.read_bytes() == before  # the user's file is never modified
    assert _heldout_accuracy(str(out), digit_folders.heldout) == pytest.approx(
        m["recovered"]["accuracy"], abs=1e-9)


@pytest.mark.parametrize("args, message", [
    (["--recover-steps", "5"], "give --data"),
    (["--data", "D", "--recover-steps", "5", "--resume"], "--checkpoint"),
    (["--resume", "--checkpoint", "c.pt"], "applies to recovery"),
    (["--data", "D", "--recover-steps", "5", "--dry-run"], "--dry-run"),
    (["--data", "D", "--recover-steps", "0"], "positive"),
])
def test_bad_recovery_flags_fail_in_one_line_before_any_work(args, message, tmp_path, capsys):
    code, _, err = _in_process(capsys, "prune", "arborist:demo", *args,
                               "-o", str(tmp_path / "x.safe.pt"))
    assert code == 1
    assert message in err and len(err.strip().splitlines()) == 1


def test_labels_loss_on_unlabeled_data_is_a_clear_error(unlabeled_digit_folders, tmp_path, capsys):
    code, _, err = _in_process(capsys, "prune", "arborist:demo", "--ratio", "0.3",
                               "--data", str(unlabeled_digit_folders.train), "--recover-steps",
                               "2", "--recover-loss", "labels", *FAST,
                               "-o", str(tmp_path / "x.safe.pt"))
    assert code == 1 and "needs labels" in err
    assert not (tmp_path / "x.safe.pt").exists()


def test_iterative_steps_recover_between_steps(digit_folders, tmp_path, capsys):
    code, out, err = _in_process(
        capsys, "prune", "arborist:demo", "--ratio", "0.5", "--steps", "2",
        "--data", str(digit_folders.train), "--eval-data", str(digit_folders.heldout),
        "--recover-steps", "10", "--eval-every", "5", "--lr", "3e-3", *FAST,
        "-o", str(tmp_path / "i.safe.pt"), "--json")
    assert code == 0, err
    rec = json.loads(out)["recovery"]
    assert len(rec["per_step"]) == 2 and rec["steps"] == 20
    for run in rec["per_step"]:
        assert run["curve"][-1][2] > run["curve"][0][2]


# -- processes: torchrun, kill -9 -------------------------------------------------------
@pytest.mark.slow  # two processes each load torch and the engine: ~40 s here
def test_torchrun_two_gloo_processes_recover_within_two_points(digit_folders, tmp_path):
    out = tmp_path / "ddp.safe.pt"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "app", "prune", "arborist:demo", "--keep-macs", "0.4",
         "--data", str(digit_folders.train), "--eval-data", str(digit_folders.heldout),
         "--recover-epochs", "5", "--lr", "3e-3", *FAST, "-o", str(out), "--json"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # rank 0 alone prints
    report = json.loads(lines[0])
    assert report["recovery"]["processes"] == 2
    assert report["metrics"]["recovered"]["accuracy"] >= ORIGINAL_ACC - 0.02
    assert _heldout_accuracy(str(out), digit_folders.heldout) == pytest.approx(
        report["metrics"]["recovered"]["accuracy"], abs=1e-9)


@pytest.mark.slow  # three runs of the CLI: ~60 s here
def test_kill_9_then_resume_ends_where_an_uninterrupted_run_ends(digit_folders, tmp_path):
    common = ["prune", "arborist:demo", "--keep-macs", "0.4", "--data", str(digit_folders.train),
              "--eval-data", str(digit_folders.heldout), "--recover-steps", "120",
              "--eval-every", "10", "--lr", "3e-3", "--seed", "5", *FAST, "--json"]
    full = _arborist(*common, "-o", str(tmp_path / "full.safe.pt"),
                     "--checkpoint", str(tmp_path / "full.ckpt"))
    assert full.returncode == 0, full.stderr
    ckpt = tmp_path / "killed.ckpt"
    proc = subprocess.Popen([sys.executable, "-m", "app", *common, "-o",
                             str(tmp_path / "killed.safe.pt"), "--checkpoint", str(ckpt)],
                            cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert ckpt.exists() and proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    saved = torch.load(ckpt, weights_only=True)["step"]
    assert 0 < saved < 120
    resumed = _arborist(*common, "-o", str(tmp_path / "resumed.safe.pt"),
                        "--checkpoint", str(ckpt), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads(full.stdout), json.loads(resumed.stdout)
    assert b["recovery"]["resumed_from"] == saved and b["recovery"]["steps"] == 120
    assert b["metrics"]["recovered"]["accuracy"] == pytest.approx(
        a["metrics"]["recovered"]["accuracy"], abs=1e-9)
    assert b["metrics"]["recovered"]["kl"] == pytest.approx(a["metrics"]["recovered"]["kl"],
                                                           rel=1e-4)
    assert [r[1] for r in b["recovery"]["curve"][2:]] == pytest.approx(
        [r[1] for r in a["recovery"]["curve"][2:]], rel=1e-4)
