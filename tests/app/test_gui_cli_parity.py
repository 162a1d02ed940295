"""The GUI and the CLI give identical numbers for the same model, plan and data, because
they run one code path (engine.workflow.Session + engine.data.prepare_data).

The GUI side is the real window: the data panel reads the digit folders, the settings
pick a data-driven criterion, Prune runs in the worker. The CLI side is `arborist prune
--plan <the GUI's plan> --data <same folder> --json`, in-process.
"""

from __future__ import annotations

import json

import pytest

from app.cli import main
from tests.app.helpers import TIMEOUT, wait_preview


@pytest.mark.parametrize("criterion", ["taylor", "magnitude"])
def test_gui_and_cli_prune_the_demo_on_the_same_data_to_the_same_numbers(
    qtbot, demo_window, digit_folders, tmp_path, capsys, criterion
) -> None:
    win = demo_window
    folder = str(digit_folders.heldout)
    with qtbot.waitSignal(win.data_panel.dataChanged, timeout=TIMEOUT):
        win.data_panel.open_path(folder)
    sp = win.settings_panel
    assert sp.calibration_source() == ("data", folder)  # the panel's data calibrates
    sp.criterion.setCurrentIndex(sp.criterion.findData(criterion))
    sp.ratio.setValue(0.4)
    wait_preview(qtbot, win)
    with qtbot.waitSignal(win.pruning.pruneFinished, timeout=TIMEOUT) as done:
        win.act_prune.trigger()
    gui, _view = done.args[0]
    plan_path = tmp_path / "plan.json"
    win.pruning.plan.save(str(plan_path))

    code = main([
        "prune", "arborist:demo", "--plan", str(plan_path), "--data", folder,
        "-o", str(tmp_path / "pruned.pt"), "--json",
    ])
    out, err = capsys.readouterr()
    assert code == 0, err
    cli = json.loads(out)

    assert cli["plan"]["importance"] == criterion
    assert (cli["before"]["macs"], cli["after"]["macs"]) == (gui.macs_before, gui.macs_after)
    assert (cli["before"]["params"], cli["after"]["params"]) == (
        gui.params_before, gui.params_after,
    )
    assert cli["layers"] == [c.widths_dict() for c in gui.report.changed_layers]
    assert cli["metrics"]["before"] == gui.metrics_before.as_dict()
    assert cli["metrics"]["pruned"] == gui.metrics_after.as_dict()
    assert gui.metrics_before.samples == 70  # the seeded, stratified 20 % evaluation split
    assert gui.metrics_after.agreement is not None
    assert win.result_dialog.rows["Accuracy"] == (
        f"{100 * gui.metrics_before.accuracy:.2f} % → {100 * gui.metrics_after.accuracy:.2f} %"
    )
    assert cli["validation"]["outputs_match"] is True
