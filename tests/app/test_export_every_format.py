"""The GUI validates every export format now (it used to check ONNX only), through the
same engine.workflow.export the CLI uses."""

from __future__ import annotations

import os

import pytest

from app import engine_api
from app.dialogs.export import report_text
from app.document import DEMO_SOURCE


@pytest.fixture(scope="module")
def demo_doc():
    return engine_api.load_and_trace(DEMO_SOURCE)


@pytest.mark.parametrize(("fmt", "name"), [("pytorch", "m.pt"), ("pt2", "m.pt2"),
                                           ("checkpoint", "m.safe.pt")])
def test_each_gui_format_is_reloaded_and_compared(demo_doc, tmp_path, fmt, name) -> None:
    path = tmp_path / name
    result = engine_api.export_model(demo_doc, str(path), fmt)
    rep = result.report
    assert rep.reloaded and rep.outputs_match and rep.ok, rep.errors
    assert rep.max_abs_diff is not None and rep.max_abs_diff <= rep.tolerance
    text = report_text(result)
    assert "Validation: OK" in text and "reloaded file vs PyTorch: match" in text
    assert os.listdir(tmp_path) == [name]


def test_a_file_that_does_not_reload_is_reported_not_hidden(demo_doc, tmp_path, monkeypatch):
    import engine.workflow.export as export

    def broken(fmt, path, written):
        raise ValueError("simulated unreadable file")

    monkeypatch.setattr(export, "_reload", broken)
    result = engine_api.export_model(demo_doc, str(tmp_path / "m.pt"), "pytorch")
    assert not result.report.ok and not result.report.reloaded
    assert "simulated unreadable file" in result.report.problem
    assert "Validation: PROBLEM" in report_text(result)
