"""app/engine_api against the real engine loader (and the real summary when it exists)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import importlib  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from app import engine_api  # noqa: E402
from app.document import DEMO_SOURCE  # noqa: E402


def _has_summarize() -> bool:
    try:
        return hasattr(importlib.import_module("engine.graph"), "summarize")
    except ImportError:
        return False


needs_summary = pytest.mark.skipif(
    not _has_summarize(), reason="engine.graph.summarize is not importable yet (engine in progress)"
)


def test_parse_input_spec() -> None:
    x = engine_api.parse_input_spec("2,3,8,8")
    assert tuple(x.shape) == (2, 3, 8, 8)
    with pytest.raises(ValueError):
        engine_api.parse_input_spec("two,three")
    assert engine_api.describe_inputs(torch.zeros(1, 1, 8, 8)).startswith("1,1,8,8")


def test_display_names() -> None:
    assert engine_api.display_name(DEMO_SOURCE) == "Demo: DigitsNet"
    assert engine_api.display_name("torchvision:resnet18") == "resnet18"
    assert engine_api.display_name("/a/b/model.pt") == "model.pt"


def test_demo_loads_with_example_input() -> None:
    loaded = engine_api.load_model(DEMO_SOURCE)
    assert type(loaded.model).__name__ == "DigitsNet"
    assert tuple(loaded.example_inputs.shape) == (1, 1, 8, 8)
    assert not loaded.model.training


def test_corrupt_file_is_a_load_failure_not_a_trust_question(tmp_path) -> None:
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x00\x01 definitely not a checkpoint")
    with pytest.raises(engine_api.ModelLoadFailed) as err:
        engine_api.load_model(str(bad))
    assert not isinstance(err.value, engine_api.TrustRequired)
    assert "corrupt.pt" in str(err.value)


def test_pickled_module_needs_trust(tmp_path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save(nn.Sequential(nn.Linear(4, 3)), path)
    with pytest.raises(engine_api.TrustRequired) as err:
        engine_api.load_model(str(path))
    assert err.value.source == str(path)
    loaded = engine_api.load_model(str(path), trust=True)
    assert isinstance(loaded.model, nn.Sequential)


def test_cancel_between_stages_raises_cancelled() -> None:
    seen: list[str] = []
    with pytest.raises(engine_api.LoadCancelled):
        engine_api.load_and_trace(
            DEMO_SOURCE, progress=lambda f, m: seen.append(m), cancel=lambda: True
        )
    assert seen and seen[0].startswith("Loading")


@needs_summary
def test_demo_traces_to_a_summary_with_groups() -> None:
    doc = engine_api.load_and_trace(DEMO_SOURCE)
    names = {n.name for n in doc.summary.nodes}
    assert {"stem.0", "branch_a.0", "branch_b.0", "block.conv1", "block.conv2", "fc"} <= names
    assert doc.summary.groups
    assert doc.input_spec.startswith("1,1,8,8")


@needs_summary
def test_window_shows_the_real_demo(qtbot, tmp_path) -> None:
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow

    win = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), auto_open=False)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.documentChanged, timeout=60000):
        win.open_demo()
    assert len(win.scene.node_items) == len(win.document.summary.nodes)
    group = win.document.summary.groups[0]
    win.select_group(group.id)
    assert win.scene.highlighted == {win.view_id(i) for i in win.document.group_node_ids(group)}


@needs_summary
def test_window_node_and_group_counts_match_the_engine_for_resnet18(qtbot, tmp_path) -> None:
    import torchvision
    from PySide6.QtCore import QSettings

    import engine
    from app.main_window import MainWindow

    model = torchvision.models.resnet18(weights=None).eval()
    dg = engine.DependencyGraph().build_dependency(model, torch.randn(1, 3, 224, 224))
    expected_nodes = len(dg.nodes)
    expected_groups = len(list(dg.get_all_groups()))

    win = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), auto_open=False)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.documentChanged, timeout=120000):
        win.open_source("torchvision:resnet18")
    assert len(win.document.summary.nodes) == expected_nodes
    assert len(win.document.summary.groups) == expected_groups == 12
    assert len(win.scene.node_items) == expected_nodes


def test_latency_row_text() -> None:
    from types import SimpleNamespace

    from app.dialogs.prune_result import latency_text
    from engine.utils.latency import LatencyCheck

    lat = LatencyCheck("cpu", 0.0123, 0.0041, 9)
    r = SimpleNamespace(macs_before=350, macs_after=100, latency=lat)
    assert latency_text(r) == (
        "12.3 ms → 4.1 ms (3.00× faster; MACs 3.50× fewer), "
        "median of 9 interleaved runs on the example input"
    )  # 3.00 >= 0.8 * 3.50: no caveat
    r.macs_after = 50  # 7x fewer MACs, still 3x faster: the caveat is added
    assert latency_text(r).endswith("shrink less than the MACs do")
    assert "MACs 7.00× fewer" in latency_text(r)
    r.latency = LatencyCheck("cpu", None, None, 0, "cancelled")
    assert latency_text(r) == "not measured (cancelled)"
    r.latency = None
    assert latency_text(r) is None
