"""`arborist prune ultralytics:yolov8n.yaml -o x.onnx` writes an ONNX file that ONNX Runtime
runs with PyTorch's outputs (the CLI's validation), at under half the parameters."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from app.cli import main

pytest.importorskip("ultralytics")


def test_yolo_prunes_to_a_validated_onnx_file(capsys, tmp_path):
    out = tmp_path / "x.onnx"
    code = main(["prune", "ultralytics:yolov8n.yaml", "--ratio", "0.5",
                 "--input-shape", "1,3,64,64", "-o", str(out), "--json"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(stdout)
    assert report["after"]["params"] <= 0.5 * report["before"]["params"]
    check = report["validation"]
    assert check["format"] == "onnx" and check["onnx_checker_ok"] is True
    assert check["outputs_match"] is True and check["max_abs_diff"] < 1e-3
    assert check["inputs"][0]["shape"] == ["batch", 3, 64, 64]
    onnx_params = sum(int(np.prod(t.dims)) for t in onnx.load(str(out)).graph.initializer)
    assert onnx_params <= 0.5 * report["before"]["params"]  # the file holds the pruned weights
