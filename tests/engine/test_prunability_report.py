"""The torchvision prunability report (benchmarks/prunability.py): helpers fast, sweep slow."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from benchmarks import prunability as pr
from benchmarks.measure import write_json


def test_every_torchvision_family_is_listed():
    pairs = pr.all_models()
    families = {f for f, _ in pairs}
    assert families == set(pr.FAMILIES)
    names = [m for _, m in pairs]
    assert len(names) == len(set(names))
    assert "fasterrcnn_resnet50_fpn" in names and "raft_small" in names
    assert len(pr.classification_models()) == 80
    assert pr.family_of("deeplabv3_resnet50") == "segmentation"
    with pytest.raises(ValueError, match="not a torchvision model"):
        pr.family_of("resnet_51")


def test_cases_use_small_inputs_and_no_weights():
    det = pr.case_for("retinanet_resnet50_fpn")
    assert det.kwargs == {"weights": None, "weights_backbone": None, "min_size": 128,
                          "max_size": 128}
    assert det.data_dependent_dim0
    assert [tuple(x.shape) for x in det.inputs("meta")] == [(1, 3, 128, 128)]
    flow = pr.case_for("raft_small")
    assert [tuple(x.shape) for x in flow.inputs("meta")] == [(1, 3, 128, 128)] * 2
    assert tuple(pr.case_for("r3d_18").inputs("meta")[0].shape) == (1, 3, 8, 112, 112)
    assert pr.case_for("quantized_resnet18").kwargs["quantize"] is False
    assert tuple(pr.case_for("inception_v3").inputs("meta")[0].shape) == (1, 3, 299, 299)


def test_compare_outputs_checks_structure_and_shapes():
    a = [{"boxes": torch.zeros(5, 4), "labels": torch.zeros(5)}]
    same_but_fewer = [{"boxes": torch.zeros(2, 4), "labels": torch.zeros(2)}]
    assert pr.compare_outputs(a, same_but_fewer, drop_dim0=True) == ""
    assert pr.compare_outputs(a, same_but_fewer) == "output 0: shape (5, 4) -> (2, 4)"
    wider = [{"boxes": torch.zeros(5, 3), "labels": torch.zeros(5)}]
    assert pr.compare_outputs(a, wider, drop_dim0=True) == "output 0: shape (4,) -> (3,)"
    renamed = [{"box": torch.zeros(5, 4), "labels": torch.zeros(5)}]
    assert pr.compare_outputs(a, renamed) == "output structure changed"
    assert pr.compare_outputs(torch.zeros(1, 10), torch.zeros(1, 10)) == ""


def test_head_layers_are_the_final_classifiers():
    seq = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(), nn.Linear(4, 2))
    assert pr.head_layers(seq, "classification") == [seq[2]]
    model = pr.build("fcn_resnet50", "meta")
    assert pr.head_layers(model, "segmentation") == [model.classifier[4]]
    model = pr.build("lraspp_mobilenet_v3_large", "meta")
    heads = pr.head_layers(model, "segmentation")
    assert heads == [model.classifier.low_classifier, model.classifier.high_classifier]
    model = pr.build("fasterrcnn_mobilenet_v3_large_320_fpn", "meta")
    predictor = model.roi_heads.box_predictor
    rpn = model.rpn.head
    expected = [rpn.cls_logits, rpn.bbox_pred, predictor.cls_score, predictor.bbox_pred]
    assert pr.head_layers(model, "detection") == expected


def test_markdown_and_json_reports(tmp_path):
    results = [
        pr.Result("a", True, 3, 2_000_000, 500_000, 0.1, family="classification", input="1x3"),
        pr.Result("b", False, 0, 0, 0, 0.2, reason="boom | x", family="detection",
                  device="cpu"),
    ]
    md = tmp_path / "p.md"
    pr.write_markdown(results, str(md))
    text = md.read_text()
    assert "**1 of 2 models pass.**" in text
    assert "| classification | 1 | 1 |" in text and "| detection | 0 | 1 |" in text
    assert "| a | yes | 3 | 2.00 | 0.50 | 1x3 | meta | 0.10 |  |" in text
    assert "| b | NO | 0 | 0.00 | 0.00 |  | cpu | 0.20 | boom / x |" in text  # no stray pipe
    out = tmp_path / "p.json"
    write_json(str(out), [r.__dict__ for r in results])
    assert json.loads(out.read_text())[1]["reason"] == "boom | x"


def test_halve_group_takes_whole_units_up_to_the_ratio():
    import engine as tp

    model = nn.Sequential(nn.Conv2d(3, 10, 1), nn.ReLU(), nn.Conv2d(10, 4, 1)).eval()
    x = torch.randn(1, 3, 4, 4)
    dg = tp.DependencyGraph().build_dependency(model, x)
    (group,) = list(dg.get_all_groups())
    assert pr.halve_group(group, 0.5)
    assert model[0].out_channels == 5 and model[2].in_channels == 5


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "raft_small", "r3d_18"])
def test_other_families_prune_and_run(name):
    r = pr.check_model(name)
    assert r.ok, r.reason
    assert r.params_after < r.params_before


@pytest.mark.slow
def test_every_torchvision_model_of_every_family_prunes():
    failures = [
        r for f, m in pr.all_models() if not (r := pr.check_model(m, family=f)).ok
    ]
    assert not failures, [(r.model, r.reason) for r in failures]


def test_benchmark_doc_states_every_target_from_the_json(tmp_path):
    from benchmarks.report import render

    stage = {"build": 1.0, "groups": 0.1, "pruner": 1.0, "step": 1.0, "total": 2.0}
    speed = {
        "machine_before": {"loadavg_1_5_15": [1.5, 1, 1], "cpu_count": 2, "utc": "t0"},
        "rows": [
            {
                "model": "densenet201",
                "params": 20_000_000,
                "ours": {**stage, "n_groups": 200, "memory": {"peak_extra_mb": 80.0}},
                "torch_pruning": {**{k: 2 * v for k, v in stage.items()},
                                  "memory": {"peak_extra_mb": 300.0}},
                "ratio": {k: 0.5 for k in stage},
            },
            {
                "model": "swin_t",
                "params": 28_000_000,
                "ours": stage,
                "torch_pruning": {k: None for k in stage} | {"error": "MemoryError: "},
                "ratio": {k: None for k in stage},
            },
        ],
    }
    lat = {"batch": 16, "round_to": 8, "threads": 1, "rows": [
        {"model": "m", "ratio": 0.0, "macs": 4e9, "params": 1e6, "latency_s": 1.0,
         "measured_speedup": 1.0, "macs_speedup": 1.0, "speedup_over_macs": 1.0,
         "within_20pct": True},
        {"model": "m", "ratio": 0.5, "macs": 1e9, "params": 3e5, "latency_s": 0.5,
         "measured_speedup": 2.0, "macs_speedup": 4.0, "speedup_over_macs": 0.5,
         "within_20pct": False},
    ]}
    write_json(str(tmp_path / "engine_speed.json"), speed)
    write_json(str(tmp_path / "latency.json"), lat)
    no_mmap = dict(lat, allocator="glibc, no mmap, no trim")
    no_mmap["rows"] = [dict(lat["rows"][1], speedup_over_macs_90pct=[0.79, 0.83],
                            verdict="within noise", faulted_mb_per_forward=0.0)]
    write_json(str(tmp_path / "latency_no_mmap.json"), no_mmap)
    text = render(str(tmp_path))
    assert "| densenet201: trace + step <= 0.5 x Torch-Pruning | 0.50 x | yes |" in text
    assert "| densenet201: peak memory <= Torch-Pruning | 80 vs 300 MB | yes |" in text
    assert "| densenet201 under 5 s in all (pruner + step) | 2.00 s | yes |" in text
    assert "Torch-Pruning failed (MemoryError); ours 2.00 s | n/a |" in text
    assert "| m @ 0.5: speedup within 20% of MACs speedup | 2.00 vs 4.00 (0.500) | NO |" in text
    assert ("| m @ 0.5 (no-mmap): speedup within 20% of MACs speedup | 2.00 vs 4.00 "
            "(0.500, 90 % 0.79-0.83: within noise) | NO |") in text
    assert "## Latency of pruned models (CPU) (no-mmap)" in text
    assert "allocator: glibc, no mmap, no trim" in text
    assert "no GPU was available" in text
    assert "70B" not in text  # no meta-trace JSON, no invented row
