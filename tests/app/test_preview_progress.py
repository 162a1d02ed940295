"""The slow preview path (an iterative plan, previewed by pruning a real deep copy) says
how far it is, on the preview state the panel shows; it used to sit on one line."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.app.helpers import TIMEOUT, wait_preview  # noqa: E402


def test_slow_preview_progress_moves_to_100_percent(qtbot, demo_window) -> None:
    win = demo_window
    sp = win.settings_panel
    fractions: list[float] = []
    states: list[str] = []
    win.pruning.previews.progress.connect(lambda f, m: fractions.append(f) if "copy" in m else None)
    win.workbench.events.preview_state.connect(states.append)
    sp.ratio.setValue(0.4)
    sp.steps.setValue(3)
    qtbot.waitUntil(
        lambda: win.pruning.plan.iterative_steps == 3 and win.pruning.plan.pruning_ratio == 0.4,
        timeout=TIMEOUT,
    )
    preview = wait_preview(qtbot, win)
    assert preview.macs_after < preview.macs_before  # the plan really cuts
    assert fractions == sorted(fractions), fractions
    assert len(set(fractions)) >= 5 and fractions[-1] == 1.0 and fractions[0] < 0.5
    copy_states = [s for s in states if s.startswith("Pruning a copy for the exact preview")]
    assert any("step 3/3" in s for s in copy_states)
    assert copy_states[-1].startswith("Pruning a copy for the exact preview — 100%")
    assert win.preview_panel.state_label.text().endswith("ms")  # the result replaced it
