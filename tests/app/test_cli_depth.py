"""``arborist depth`` ranks removable blocks on real data; ``prune --drop-blocks`` removes
them, with an exact dry run and a one-line error for a block that cannot go."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from app.cli import main
from engine.data.digits import load_split, to_uint8
from engine.models.digits_net import load_demo


def run_json(capsys, *argv: str) -> dict:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_depth_importance_equals_one_minus_cos_on_the_folder(capsys, digit_folders):
    report = run_json(capsys, "depth", "arborist:demo", "--data", str(digit_folders.heldout),
                      "--workers", "0")
    assert [b["name"] for b in report["blocks"]] == ["block"]
    model, _ = load_demo()
    x, _ = load_split("heldout")
    pixels = torch.from_numpy(to_uint8(x).astype(np.float32) / 255.0)  # what the PNGs hold
    seen = {}
    model.block.register_forward_hook(lambda m, a, out: seen.update(i=a[0], o=out))
    with torch.no_grad():
        model(pixels)
    cos = F.cosine_similarity(seen["i"].flatten(1), seen["o"].flatten(1), dim=1)
    assert abs(report["blocks"][0]["importance"] - float((1 - cos).mean())) < 1e-5


def test_prune_drop_blocks_dry_run_exact_and_bad_name(capsys, tmp_path):
    report = run_json(capsys, "prune", "arborist:demo", "--ratio", "0", "--drop-blocks", "block",
                      "--dry-run")
    model, x = load_demo()
    before = sum(p.numel() for p in model.parameters())
    block = sum(p.numel() for p in model.block.parameters())
    assert report["plan"]["drop_blocks"] == ["block"]
    assert report["after"]["params"] == before - block
    code = main(["prune", "arborist:demo", "--drop-blocks", "stem", "--dry-run"])
    err = capsys.readouterr().err
    assert code != 0
    assert "drop_blocks[0]: 'stem' is not a removable block" in err and "block" in err
    assert len(err.strip().splitlines()) == 1


def test_plan_allow_drop_blocks_removes_the_block_when_width_alone_cannot(
        capsys, tmp_path, digit_folders, monkeypatch):
    import pytest

    monkeypatch.setenv("ARBORIST_CACHE", str(tmp_path / "cache"))
    data = ["--data", str(digit_folders.train), "--samples", "128", "--workers", "0"]
    scan = tmp_path / "scan.json"
    run_json(capsys, "scan", "arborist:demo", *data, "--ratios", "0.3", "-o", str(scan),
             "--no-cache")
    code = main(["plan", "arborist:demo", "--scan", str(scan), "--allow-drop-blocks",
                 "--keep-macs", "0.3", "-o", str(tmp_path / "p.json")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "give --data" in err
    # units capped at 0.3 cannot reach 30 % of the MACs by width: the residual block must go
    width = main(["plan", "arborist:demo", "--scan", str(scan), "--keep-macs", "0.3",
                  "--max-unit-ratio", "0.3", "-o", str(tmp_path / "w.json")])
    assert width == 1 and "cannot be reached" in capsys.readouterr().err
    plan_path = tmp_path / "plan.json"
    report = run_json(capsys, "plan", "arborist:demo", *data, "--ratios", "0.3",
                      "--allow-drop-blocks", "--keep-macs", "0.3", "--max-unit-ratio", "0.3",
                      "-o", str(plan_path))
    assert list(report["block_costs"]) == ["block"] and report["block_costs"]["block"]["kl"] > 0
    assert report["plan"]["drop_blocks"] == ["block"] and report["macs_ratio"] <= 0.3
    assert json.loads(plan_path.read_text())["drop_blocks"] == ["block"]
    pruned = run_json(capsys, "prune", "arborist:demo", "--plan", str(plan_path),
                      "-o", str(tmp_path / "pruned.pt"))  # counted on the pruned model
    assert pruned["after"]["macs"] == report["macs_after"]
    assert report["macs_after"] == pytest.approx(report["macs_before"] * report["macs_ratio"])
