"""GUI timings: layout speed, scene build, paint time per frame at several zoom levels.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_gui.py [--nodes 5000]
     ... benchmarks/bench_gui.py --models resnet50,densenet201,efficientnet_v2_l [--prune]
     (open -> first paint, edit -> preview, the GUI thread's longest stall during a prune)
Targets (from the workbench issue): layout of a 3,000-node DAG < 2 s; panning and
zooming a 5,000-node graph stays smooth (paint well under a 33 ms frame budget).
Not part of the test suite: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_layout() -> list[tuple[str, int, int, float]]:
    from app.canvas.layout import layered_layout
    from app.canvas.synthetic import random_dag, resnet_like, transformer_like

    rows = []
    cases = [
        ("resnet-like (4x8 blocks)", resnet_like(4, 8)),
        ("transformer-like 3000", transformer_like(3000)),
        ("random DAG 3000", random_dag(3000, seed=0)),
        ("random DAG 5000", random_dag(5000, seed=0)),
    ]
    for name, s in cases:
        ids = [n.id for n in s.nodes]
        secs, _ = timed(lambda ids=ids, s=s: layered_layout(ids, s.edges), repeat=3)
        rows.append((name, len(s.nodes), len(s.edges), secs))
    return rows


def bench_canvas(n_nodes: int) -> dict[str, float]:
    from app.runtime import guard_none_refcount

    guard_none_refcount()  # before any Qt call (see app.runtime)
    from PySide6.QtWidgets import QApplication

    from app.canvas.prepare import prepare_view
    from app.canvas.scene import GraphScene
    from app.canvas.synthetic import random_dag
    from app.canvas.view import GraphView

    app = QApplication.instance() or QApplication([])
    summary = random_dag(n_nodes, seed=0)
    out: dict[str, float] = {}
    out["prepare (collapse+layout) s"], prepared = timed(lambda: prepare_view(summary))
    scene = GraphScene()
    view = GraphView(scene)
    view.resize(1280, 800)
    view.show()
    app.processEvents()
    out["scene build s"], _ = timed(lambda: scene.show_graph(prepared.graph, prepared.layout))
    vp = view.viewport()

    def frame_ms(frames: int = 20, step=None) -> float:
        times = []
        for i in range(frames):
            if step:
                step(i)
            t = time.perf_counter()
            vp.repaint()  # synchronous paint through the real paint-event path
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times)

    vp.repaint()  # warm caches (BSP index, static text)
    view.fit_to_view()
    out["fit scale"] = view.current_scale()
    out[f"frame ms: fit (all {n_nodes} nodes visible)"] = frame_ms()
    for scale in (0.23, 0.5, 1.0):  # 0.23: just above the overview switch, most items drawn
        view.set_scale(scale)
        view.centerOn(scene.content_rect.center())
        vp.repaint()
        out[f"frame ms: pan at {int(scale * 100)}%"] = frame_ms(
            step=lambda i: view.translate(0, -40 / view.current_scale())
        )
    view.fit_to_view()
    base = view.current_scale()
    out["frame ms: zoom steps around cursor"] = frame_ms(
        step=lambda i: view.set_scale(base * 1.15 ** (i % 10), vp.rect().center())
    )
    out["highlight 200 nodes s"], _ = timed(lambda: scene.highlight(range(0, 2000, 10)))
    out["frame ms: fit with highlight"] = (view.fit_to_view(), frame_ms())[1]
    out["minimap render s"], _ = timed(view.minimap.rerender)
    return out


class StallMeter:
    """The GUI thread's longest gap between 5 ms timer ticks: how long the window froze."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.longest = 0.0
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last)
        self._last = now

    def start(self) -> None:
        self.longest, self._last = 0.0, time.perf_counter()
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return self.longest


def _wait(app, done, timeout: float) -> float:
    start = time.perf_counter()
    while not done():
        app.processEvents()
        time.sleep(0.002)
        if time.perf_counter() - start > timeout:
            raise TimeoutError("timed out")
    return time.perf_counter() - start


def _bench_one(app, MainWindow, model: str, prune: bool, timeout: float) -> dict:  # noqa: N803
    import tempfile

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QMessageBox

    settings = QSettings(os.path.join(tempfile.mkdtemp(), "b.ini"), QSettings.IniFormat)
    win = MainWindow(settings, auto_open=False)
    win.ask = lambda *a: QMessageBox.Discard
    win.resize(1400, 900)
    win.show()
    app.processEvents()
    row: dict = {"model": model}
    opened = []
    win.documentChanged.connect(lambda: opened.append(time.perf_counter()))
    stall = StallMeter()
    stall.start()
    t0 = time.perf_counter()
    win.open_source(f"torchvision:{model}")
    _wait(app, lambda: bool(opened), timeout)
    win.view.viewport().repaint()  # the first frame of the new graph
    row["open -> first paint s"] = time.perf_counter() - t0
    row["GUI stall while opening s"] = stall.stop()
    row["nodes"] = len(win.document.summary.nodes)
    row["shown nodes"] = len(win.scene.node_items)
    pv = win.pruning
    _wait(app, lambda: pv.last_preview is not None and pv.last_preview.plan == pv.plan, timeout)
    row["first preview s"] = time.perf_counter() - t0
    root = win.document.summary.groups[len(win.document.summary.groups) // 2].root
    t1 = time.perf_counter()
    win.workbench.plans.set_group_ratio(root, 0.3)
    _wait(app, lambda: pv.last_preview is not None and pv.last_preview.plan == pv.plan, timeout)
    row["edit -> preview s"] = time.perf_counter() - t1
    if prune:
        fractions: list[float] = []
        pv.pruneProgress.connect(lambda f, m: fractions.append(f))
        finished = []
        pv.pruneFinished.connect(lambda payload: finished.append(payload))
        stall.start()
        t2 = time.perf_counter()
        win.prune()
        _wait(app, lambda: bool(finished) or not pv.busy, timeout)
        row["prune s"] = time.perf_counter() - t2
        row["GUI longest stall during prune s"] = stall.stop()
        row["progress reports"] = len(fractions)
        row["distinct progress values 5-75 %"] = len({round(f, 3) for f in fractions
                                                      if 0.05 < f < 0.75})
        if win.result_dialog is not None:
            win.result_dialog.close()
    win.workbench.close_document()
    win.close()
    win.deleteLater()
    app.processEvents()
    return row


def bench_workbench(models: list[str], prune: bool, timeout: float = 600.0) -> list[dict]:
    """Open -> first paint, edit -> preview and (optionally) the longest GUI stall during a
    prune, through the real window and engine, for zoo models (weights=None)."""
    from app.runtime import guard_none_refcount

    guard_none_refcount()
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    rows = []
    for model in models:
        row = _bench_one(app, MainWindow, model, prune, timeout)
        rows.append(row)
        print(f"  {model}:")
        for key, value in row.items():
            if key != "model":
                print(f"    {key:36s} {value:10.3f}" if isinstance(value, float) else
                      f"    {key:36s} {value:>10}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--models", default="",
                        help="zoo models for the workbench timings, e.g. "
                             "resnet50,densenet201,efficientnet_v2_l")
    parser.add_argument("--prune", action="store_true", help="also prune and meter GUI stalls")
    args = parser.parse_args()
    if args.models:
        print("Workbench (real window + engine; timings on a shared machine are noisy)")
        bench_workbench([m for m in args.models.split(",") if m], args.prune)
        return
    print("Layout (best of 3)")
    print(f"  {'graph':28s} {'nodes':>6s} {'edges':>6s} {'seconds':>8s}")
    for name, n, e, secs in bench_layout():
        flag = "" if secs < 2.0 or n < 3000 else "  <-- over the 2 s target"
        print(f"  {name:28s} {n:6d} {e:6d} {secs:8.3f}{flag}")
    print(f"Canvas, random DAG with {args.nodes} nodes, 1280x800 viewport (median of 20 frames)")
    for key, value in bench_canvas(args.nodes).items():
        print(f"  {key:42s} {value:8.3f}")


if __name__ == "__main__":
    main()
