"""The workbench model the panels observe (the napari pattern).

Why: the window used to relay every change to every panel, and the open document was
held twice (window and pruning controller). Here one object owns the document, the plan
and its undo history (app.plan_model), the selection, the version history and the
running jobs; each change is announced once on `workbench.events.<name>`, and
each panel connects the events it shows to its own `_on_<name>_change`. Panels can be
built in a test with a Workbench and no window.

The events are plain Python (no Qt): `Event.connect(callback)`, `Event.emit(value)`,
and `with workbench.events.blocker("plan_changed"): ...` to suppress feedback while a
panel writes a value it has just been sent.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.depth_model import DepthState, depth_state_of
from app.document import Document
from app.plan_model import PlanModel

EVENT_NAMES = (
    "document_changed",  # Document | None: a new model (or version) is open
    "plan_changed",  # PruningPlan: edited, undone, redone, replaced
    "preview_changed",  # PreviewDone | None: the preview for the current plan
    "preview_state",  # str: "Updating preview…", "⚠ failed: …"
    "selection_changed",  # Selection
    "versions_changed",  # list[Version], current index
    "job_changed",  # JobState (started, progress, finished)
    "input_spec_changed",  # str: the example input shape the numbers are computed at
    "view_changed",  # frozenset[str]: the collapsed module paths after a relayout
    "reveal_requested",  # str: a node or module path to bring into view (module tree)
    "status",  # str: a one-line message for the status bar ("Not applied: …")
    "depth_changed",  # DepthState: removable blocks, measured block importance
    "solved",  # SolveDone: the solver's ratio for a target, just applied to the plan
    "data_changed",  # DataOptions | None: the Data panel's dataset (calibration, metrics)
)


class Event:
    """A list of callbacks with a block count; emit() calls them in connection order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []
        self._blocked = 0

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any] | None = None) -> None:
        if callback is None:
            self._callbacks.clear()
        elif callback in self._callbacks:
            self._callbacks.remove(callback)

    @property
    def blocked(self) -> bool:
        return self._blocked > 0

    def emit(self, *args: Any) -> None:
        if self._blocked:
            return
        for cb in list(self._callbacks):
            cb(*args)

    def __len__(self) -> int:
        return len(self._callbacks)


class Events:
    """The workbench's events, one attribute each (see EVENT_NAMES)."""

    def __init__(self) -> None:
        for name in EVENT_NAMES:
            setattr(self, name, Event(name))

    def __getattr__(self, name: str) -> Event:  # only reached for unknown names
        raise AttributeError(f"no workbench event {name!r}; known: {', '.join(EVENT_NAMES)}")

    def all(self) -> list[Event]:
        return [getattr(self, n) for n in EVENT_NAMES]

    @contextlib.contextmanager
    def blocker(self, *names: str) -> Iterator[None]:
        """Suppress the named events (all if none named) inside the block."""
        events = [getattr(self, n) for n in names] if names else self.all()
        for e in events:
            e._blocked += 1
        try:
            yield
        finally:
            for e in events:
                e._blocked -= 1

    def disconnect_owner(self, owner: object) -> None:
        """Drop every callback bound to `owner` (a panel being closed)."""
        for e in self.all():
            for cb in list(e._callbacks):
                if getattr(cb, "__self__", None) is owner:
                    e.disconnect(cb)


@dataclass(frozen=True)
class Selection:
    """What the user is looking at: a layer/op/block by name and (or) a group id."""

    node: str | None = None
    group: int | None = None
    view_node: Any = None  # the canvas ViewNode (a layer, op or collapsed block), plain data


@dataclass
class JobState:
    """One long job as the status bar shows it; the ETA comes from the rate so far."""

    kind: str  # "load", "prune", "export", "score", "evaluate", "recover"
    label: str
    fraction: float = 0.0
    message: str = ""
    started: float = field(default_factory=time.monotonic)
    running: bool = True
    cancel: Callable[[], None] | None = None

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Seconds left at the rate so far; None until there is a rate to go by."""
        elapsed = (now if now is not None else time.monotonic()) - self.started
        if not self.running or self.fraction <= 0.02 or elapsed < 0.5:
            return None
        return max(0.0, elapsed * (1.0 - self.fraction) / self.fraction)

    def text(self) -> str:
        pct = f"{100 * self.fraction:.0f}%"
        eta = self.eta_seconds()
        tail = f" · about {_fmt_seconds(eta)} left" if eta is not None else ""
        return f"{self.message or self.label} — {pct}{tail}"


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min"


@dataclass
class Version:
    """One model in the history: the original, a pruned copy, a recovered one.

    `metrics` holds plain numbers (macs, params, accuracy, latency_ms, …) for comparing;
    `plan` is the plan the user left this version with (restored on switching back).
    """

    name: str
    document: Document
    metrics: dict[str, float] = field(default_factory=dict)
    parent: str | None = None
    plan: Any = None
    view: Any = None  # PreparedView, built once

    def widths(self) -> dict[str, tuple[int | None, int | None]]:
        return {
            n.name: (n.in_channels, n.out_channels)
            for n in self.document.summary.nodes
            if n.is_layer
        }


@dataclass(frozen=True)
class WidthChange:
    layer: str
    before: tuple[int | None, int | None]
    after: tuple[int | None, int | None]


@dataclass
class VersionDiff:
    """Before/after of two versions: changed layer widths and every shared metric."""

    before: str
    after: str
    widths: list[WidthChange]
    metrics: dict[str, tuple[float | None, float | None]]

    def lines(self) -> list[str]:
        out = [f"{self.before} → {self.after}"]
        for key, (a, b) in self.metrics.items():
            out.append(f"{key}: {_fmt_metric(a)} → {_fmt_metric(b)}{_pct(a, b)}")
        out.append(f"{len(self.widths)} layers change width")
        return out


def _fmt_metric(v: float | None) -> str:
    if v is None:
        return "–"
    if abs(v) >= 1e9:
        return f"{v / 1e9:.3g} G"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.3g} M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.3g} k"
    return f"{v:.4g}"


def _pct(a: float | None, b: float | None) -> str:
    if a in (None, 0) or b is None:
        return ""
    return f" ({100 * (b - a) / a:+.1f} %)"


def document_metrics(doc: Document) -> dict[str, float]:
    """What every version can report without running anything: parameters."""
    return {"params": float(sum(n.params for n in doc.summary.nodes if n.is_layer))}


class Workbench:
    """Owns document, plan, selection, versions and jobs; announces changes as events.

    `plans` holds the plan and its undo stack; `controller` is the PruningController (Qt:
    timers, worker pool) that runs preview/solve/prune jobs on that plan. The workbench
    forwards both as events so panels depend on the workbench only.
    """

    def __init__(self, controller: Any = None, prefs: Any = None) -> None:
        self.events = Events()
        self.prefs = prefs
        self.versions: list[Version] = []
        self.current: int = -1
        self.selection = Selection()
        self.jobs: dict[str, JobState] = {}
        self.collapsed: frozenset[str] = frozenset()
        self.depth = DepthState()  # removable blocks of the open version, see set_depth
        self.freeze_heap = True  # see _freeze_heap
        self.plans = PlanModel()
        self.plans.on_change.append(self._on_plan_edited)
        self.pruning = controller
        if controller is not None:
            self._bridge(controller)

    # ------------------------------------------------------------------ controller bridge

    def _bridge(self, c: Any) -> None:
        c.follow(self.plans)
        c.solved.connect(self._on_solved)
        c.previewReady.connect(self._on_preview_ready)
        c.previewFailed.connect(self._on_preview_failed)
        c.previews.progress.connect(lambda f, m: self.events.preview_state.emit(m))

    def _on_plan_edited(self, plan: Any) -> None:
        self.events.plan_changed.emit(plan)
        if self.pruning is not None:
            self.events.preview_state.emit("Updating preview…")

    def _on_solved(self, done: Any) -> None:
        self.plans.apply_solved(
            done.plan, done.result.ratio, f"Keep {100 * done.keep:.0f}% of {done.target}"
        )
        self.events.solved.emit(done)

    def _on_preview_ready(self, done: Any) -> None:
        if self.version is not None:  # the version's MACs, for comparing versions
            self.version.metrics.setdefault("macs", float(done.preview.macs_before))
        self.events.preview_changed.emit(done)

    def _on_preview_failed(self, message: str) -> None:
        self.events.preview_state.emit(f"⚠ Preview failed: {message}")
        self.events.preview_changed.emit(None)

    # ------------------------------------------------------------------ document & plan

    @property
    def document(self) -> Document | None:
        return self.versions[self.current].document if self.versions else None

    @property
    def version(self) -> Version | None:
        return self.versions[self.current] if self.versions else None

    @property
    def plan(self) -> Any:
        return self.plans.plan

    @property
    def last_preview(self) -> Any:
        return self.pruning.last_preview if self.pruning is not None else None

    @property
    def unsaved_edits(self) -> bool:
        """True when the plan was edited since it was opened or saved."""
        return self.document is not None and not self.plans.stack.isClean()

    def mark_saved(self) -> None:
        self.plans.stack.setClean()

    def open_document(self, doc: Document, view: Any = None, plan: Any = None) -> None:
        """A newly loaded model: the history restarts with it as "original"."""
        old = self.versions
        self.versions = [Version("original", doc, document_metrics(doc), view=view)]
        self.current = 0
        self._activate(plan)
        self.events.versions_changed.emit(self.versions, self.current)
        self._release(old)

    def close_document(self) -> None:
        old = self.versions
        self.versions, self.current = [], -1
        self.selection = Selection()
        self.depth = DepthState()
        self.events.document_changed.emit(None)
        self.events.depth_changed.emit(self.depth)
        self.events.versions_changed.emit(self.versions, self.current)
        self._release(old)

    def _release(self, old: list[Version]) -> None:
        """Drop every reference to closed models now (big models hold gigabytes)."""
        keep = {id(v) for v in self.versions}
        if all(id(v) in keep for v in old):  # nothing closed: no full collection to pay for
            self._freeze_heap()
            return
        for v in old:
            if id(v) not in keep:
                v.document = None  # type: ignore[assignment]
                v.view = None
        old.clear()
        gc.unfreeze()  # the closed model was frozen with the rest: make it collectable
        gc.collect()
        _trim_heap()
        self._freeze_heap()

    def _freeze_heap(self) -> None:
        """Move the open model's millions of objects out of the cyclic collector's view.

        Why: a full collection walks every tracked object while holding the GIL; with a
        densenet201 open, the ones triggered by a prune's allocations froze the GUI for
        0.7-0.9 s at a time (bench_gui). Frozen objects are unfrozen when a model closes.
        """
        if self.freeze_heap:
            gc.freeze()

    def _activate(self, plan: Any = None) -> None:
        v = self.versions[self.current]
        self.selection = Selection()
        self.collapsed = v.view.graph.collapsed if v.view is not None else frozenset()
        if self.pruning is not None:
            self.pruning.set_document(v.document)
        plan = plan if plan is not None else v.plan
        with self.events.blocker("plan_changed", "preview_state"):
            self.plans.reset(plan if plan is not None else _new_plan(v.document))
        self.mark_saved()
        self.depth = depth_state_of(v.document)
        self.events.document_changed.emit(v.document)
        self.events.depth_changed.emit(self.depth)
        self.events.plan_changed.emit(self.plan)
        if self.pruning is not None:
            self.events.preview_state.emit("Computing the preview…")
        self.events.selection_changed.emit(self.selection)
        self.events.input_spec_changed.emit(v.document.input_spec)

    # ------------------------------------------------------------------ versions

    def add_version(
        self,
        name: str,
        model: Any = None,
        metrics: dict[str, float] | None = None,
        *,
        document: Document | None = None,
        view: Any = None,
        switch: bool = True,
    ) -> Version:
        """Add a model to the history (a pruned or recovered copy) and, by default, show it
        with a fresh plan at ratio 0. Give `document` when it is already traced; a bare
        `model` is traced here with the current version's example inputs."""
        base = self.version
        if document is None:
            if base is None or model is None:
                raise ValueError("add_version needs a model (and an open document) or a document")
            document = _document_for(base.document, model, name)
        merged = document_metrics(document) | dict(metrics or {})
        version = Version(
            _unique(name, [v.name for v in self.versions]),
            document,
            merged,
            parent=base.name if base else None,
            plan=None,
            view=view,
        )
        if base is not None:
            base.plan = self.plan
        self.versions.append(version)
        if switch:
            self.current = len(self.versions) - 1
            self._activate(fresh_plan(self.plan) if self.plan is not None else None)
        self.events.versions_changed.emit(self.versions, self.current)
        self._freeze_heap()
        return version

    def keep_pruned(self, result: Any, view: Any = None) -> Version:
        """Keep a PruneResult as a new version; the original stays in the history."""
        metrics = {
            "macs": float(result.macs_after),
            "params": float(result.params_after),
        }
        if result.accuracy_after is not None:
            metrics["accuracy"] = float(result.accuracy_after)
        if self.version is not None:
            self.version.metrics.setdefault("macs", float(result.macs_before))
            self.version.metrics["params"] = float(result.params_before)
            if result.accuracy_before is not None:
                self.version.metrics.setdefault("accuracy", float(result.accuracy_before))
        n = sum(1 for v in self.versions if v.name.startswith("pruned"))
        return self.add_version(
            f"pruned {n + 1}", metrics=metrics, document=result.document, view=view
        )

    def switch_version(self, index: int) -> None:
        if not 0 <= index < len(self.versions) or index == self.current:
            return
        if self.version is not None:
            self.version.plan = self.plan
        self.current = index
        self._activate()
        self.events.versions_changed.emit(self.versions, self.current)

    def version_named(self, name: str) -> Version | None:
        return next((v for v in self.versions if v.name == name), None)

    def compare(self, before: str, after: str) -> VersionDiff:
        a, b = self.version_named(before), self.version_named(after)
        if a is None or b is None:
            raise ValueError(f"no version named {before if a is None else after!r}")
        wa, wb = a.widths(), b.widths()
        widths = [WidthChange(n, wa[n], wb[n]) for n in wa if n in wb and wa[n] != wb[n]]
        keys = list(dict.fromkeys([*a.metrics, *b.metrics]))
        return VersionDiff(
            a.name, b.name, widths, {k: (a.metrics.get(k), b.metrics.get(k)) for k in keys}
        )

    def note_metrics(self, **metrics: float) -> None:
        """Numbers learned later (the first preview's MACs) for the current version."""
        if self.version is not None:
            changed = any(self.version.metrics.get(k) != v for k, v in metrics.items())
            self.version.metrics.update(metrics)
            if changed:
                self.events.versions_changed.emit(self.versions, self.current)

    # ------------------------------------------------------------------ selection

    def select(
        self, node: str | None = None, group: int | None = None, view_node: Any = None
    ) -> None:
        sel = Selection(node, group, view_node)
        if sel != self.selection:
            self.selection = sel
            self.events.selection_changed.emit(sel)

    # ------------------------------------------------------------------ plan edits

    def try_edit(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run a controller edit; a bad value is explained on the status event, never raised."""
        try:
            fn(*args)
        except (ValueError, AttributeError) as exc:
            self.events.status.emit(f"Not applied: {exc}")
            return False
        return True

    def set_layer_ratio(self, name: str, ratio: float | None) -> bool:
        return self.try_edit(self.plans.set_layer_ratio, name, ratio)

    def set_ignored(self, names: list[str], ignored: bool) -> bool:
        return self.try_edit(self.plans.set_ignored, names, ignored)

    def set_block_ratio(self, path: str, ratio: float | None) -> bool:
        """One ratio for every group rooted inside a module block, as one undoable edit."""
        doc = self.document
        if doc is None:
            return False
        roots = [
            g.root for g in doc.summary.groups if g.root == path or g.root.startswith(path + ".")
        ]
        if not roots:
            self.events.status.emit(f"Not applied: {path} holds no prunable group")
            return False

        what = f"{ratio:.3g}" if ratio is not None else "cleared"
        return self.try_edit(
            self.plans.set_groups_ratio,
            f"Block {path} ratio {what} ({len(roots)} groups)",
            roots,
            ratio,
        )

    def set_block_dropped(self, block: str, dropped: bool) -> bool:
        """Remove (or keep) a whole residual block: one undoable edit of drop_blocks."""
        return self.try_edit(self.plans.set_block_dropped, block, dropped)

    def set_depth(self, state: DepthState) -> None:
        """New depth facts (block importance measured on data) for the open version."""
        self.depth = state
        self.events.depth_changed.emit(state)

    def block_ratio(self, path: str) -> float | None:
        """The ratio every group of the block shares, or None when they differ / unset."""
        doc, plan = self.document, self.plan
        if doc is None or plan is None:
            return None
        values = {
            plan.group_ratios.get(g.root)
            for g in doc.summary.groups
            if g.root == path or g.root.startswith(path + ".")
        }
        return values.pop() if len(values) == 1 else None

    # ------------------------------------------------------------------ jobs

    def job_started(
        self, kind: str, label: str, cancel: Callable[[], None] | None = None
    ) -> JobState:
        job = JobState(kind, label, cancel=cancel)
        self.jobs[kind] = job
        self.events.job_changed.emit(job)
        return job

    def job_progress(self, kind: str, fraction: float, message: str = "") -> None:
        job = self.jobs.get(kind)
        if job is None:
            return
        job.fraction = max(job.fraction, min(1.0, fraction))  # honest: never backwards
        job.message = message or job.message
        self.events.job_changed.emit(job)

    def job_ended(self, kind: str) -> None:
        job = self.jobs.pop(kind, None)
        if job is not None:
            job.running = False
            self.events.job_changed.emit(job)

    def cancel_jobs(self) -> None:
        for job in list(self.jobs.values()):
            if job.cancel is not None:
                job.cancel()

    @property
    def busy(self) -> bool:
        return any(j.running for j in self.jobs.values())

    def running(self, kind: str) -> bool:
        job = self.jobs.get(kind)
        return job is not None and job.running

    # ------------------------------------------------------------------ data

    def set_data(self, choice: Any) -> None:
        """The Data panel's dataset (or None): calibration and evaluation use it."""
        if self.pruning is not None:
            self.pruning.set_data(choice)
        self.events.data_changed.emit(choice)

    # ------------------------------------------------------------------ input shape

    opener: Callable[..., None] | None = None  # set by the window: open_source(src, spec)

    def set_input_spec(self, spec: str) -> bool:
        """Re-trace the open model at another input shape (remembered for its file); the
        preview, MACs and latency are then computed at the shape the user deploys at."""
        from app import engine_api

        doc = self.document
        if doc is None:
            return False
        try:
            engine_api.parse_input_spec(spec)
        except ValueError as exc:
            self.events.status.emit(f"Input shape not applied: {exc}")
            return False
        if spec.replace(" ", "") == doc.input_spec.replace(" ", ""):
            return False
        self.remember_input_spec(self.versions[0].document.source, spec)
        if self.opener is not None:
            self.opener(self.versions[0].document.source, spec)
        return True

    def remembered_input_spec(self, source: str) -> str | None:
        return self.prefs.input_spec(source) if self.prefs is not None else None

    def remember_input_spec(self, source: str, spec: str) -> None:
        if self.prefs is not None:
            self.prefs.set_input_spec(source, spec)


def fresh_plan(plan: Any) -> Any:
    """The same options (criterion, round_to, steps) at ratio 0 with no per-layer edits:
    what a kept version starts from, so nothing proposes pruning it again at once."""
    return plan.replace(
        pruning_ratio=0.0,
        layer_ratios={},
        group_ratios={},
        scopes=[],
        head_pruning_ratio=0.0,
        head_pruning_ratio_dict={},
        drop_blocks=[],  # removed blocks are gone from the kept version: nothing to name
    )


def _new_plan(doc: Document) -> Any:
    from app import engine_api

    return engine_api.new_plan(doc)


def _unique(name: str, taken: list[str]) -> str:
    if name not in taken:
        return name
    i = 2
    while f"{name} ({i})" in taken:
        i += 1
    return f"{name} ({i})"


def _document_for(base: Document, model: Any, name: str) -> Document:
    """Trace `model` with the base document's inputs into a new Document."""
    from app import engine_api
    from engine.workflow import Session

    session = Session(
        model, base.example_inputs, source=base.source, input_spec=base.input_spec,
        description=base.description, arch=base.arch, pruning_history=base.pruning_history,
    )
    session.trace()
    root = base.title.split(" (")[0]
    return engine_api.document_of(session, base.source, f"{root} ({name})", pruned=True)


def _trim_heap() -> None:
    """Give freed memory back to the OS (glibc keeps it otherwise; RSS stays high)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
