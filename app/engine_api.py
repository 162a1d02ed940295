"""The GUI's thin adapter over engine.workflow.Session (the workflow the CLI runs too).

It turns Sessions into the GUI's plain `Document`, engine errors into the messages
and dialogs the window shows (trust, input shape), and engine reports into what the
result and export dialogs read. No workflow logic lives here: opening, tracing,
previewing, pruning a copy, evaluating, exporting and validating are the Session's.
Everything runs on worker threads; cancellation is the shared engine.utils.progress
contract (`Cancelled`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.document import DEMO_SOURCE, Document
from engine.utils.progress import CancelFn, Cancelled, ProgressFn
from engine.workflow import ExportReport, LayerChange, PruneReport, Session

Progress = ProgressFn
CancelFlag = CancelFn

# One cancel exception for every job (load, prune, export); the old names stay readable.
LoadCancelled = PruneCancelled = ExportCancelled = Cancelled


class ModelLoadFailed(Exception):
    """The source could not be loaded or traced; the message is shown to the user."""


class TrustRequired(ModelLoadFailed):
    """Loading would execute code stored in the file; ask the user first."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source


class ArchRequired(ModelLoadFailed):
    """A weights-only file: ask which architecture it fills (``candidates`` best first)."""

    def __init__(self, source: str, message: str, candidates: list[Any]) -> None:
        super().__init__(message)
        self.source = source
        self.candidates = candidates


class CodeRequired(ModelLoadFailed):
    """A trusted pickle needs the user's own model code (``module`` is what is missing)."""

    def __init__(self, source: str, message: str, module: str | None) -> None:
        super().__init__(message)
        self.source = source
        self.module = module


class InputShapeRequired(ModelLoadFailed):
    """No example input could be inferred (or the guess did not run); ask for a shape."""

    def __init__(self, source: str, message: str, suggestion: str = "") -> None:
        super().__init__(message)
        self.source = source
        self.suggestion = suggestion


def is_zoo_spec(source: str) -> bool:
    from engine.io.zoo import is_zoo_spec as engine_is_zoo_spec

    return engine_is_zoo_spec(source)


def display_name(source: str) -> str:
    if source == DEMO_SOURCE:
        return "Demo: DigitsNet"
    if is_zoo_spec(source):
        return source.partition(":")[2]
    return os.path.basename(source) or source


# ----------------------------------------------------------------------------- input specs


def parse_input_spec(text: str) -> Any:
    """Example inputs for a spec like "1,3,224,224" or "a=1,8;b=1,8:int64"."""
    from engine.io.input_spec import InputSpec

    try:
        return InputSpec.parse(text).make()
    except Exception as exc:  # InputSpecError
        raise ValueError(str(exc)) from None


def describe_inputs(inputs: Any) -> str:
    from engine.workflow.session import describe_inputs as describe

    return describe(inputs)


# ----------------------------------------------------------------------------- loading


def load_model(
    source: str, trust: bool = False, arch: str | None = None, code: str | None = None
) -> Any:
    """engine.io.load_model with the GUI's error types (TrustRequired for the dialog).

    ``arch`` fills a weights-only file; ``code`` is the user's model code for a trusted
    pickle of their own classes (imported only after trust).
    """
    from engine.io import load_model as engine_load
    from engine.io.errors import InputSpecError, ModelLoadError, UntrustedPickleError

    try:
        return engine_load(source, trust=trust, arch=arch, code=code)
    except UntrustedPickleError as exc:
        raise TrustRequired(source, str(exc)) from None
    except ModelLoadError as exc:
        raise _needs_answer(source, exc) or ModelLoadFailed(str(exc)) from None
    except InputSpecError as exc:
        raise ModelLoadFailed(str(exc)) from None


def _needs_answer(source: str, exc: Exception) -> ModelLoadFailed | None:
    """The question a load failure asks the user (which architecture, where the code is)."""
    from engine.io.errors import ArchRequiredError, MissingCodeError

    if isinstance(exc, ArchRequiredError):
        return ArchRequired(source, str(exc), list(exc.candidates))
    if isinstance(exc, MissingCodeError):
        return CodeRequired(source, str(exc), exc.module)
    return None


def open_session(
    source: str,
    input_spec: str | None = None,
    trust: bool = False,
    progress: Progress = lambda f, m: None,
    cancel: CancelFlag = lambda: False,
    arch: str | None = None,
    code: str | None = None,
) -> Session:
    """Session.open with the GUI's error types; guessed inputs are offered for editing."""
    from engine.io.errors import InputSpecError, ModelLoadError, UntrustedPickleError
    from engine.workflow import InputsDoNotRun, InputsUnknown

    name = display_name(source)
    try:
        return Session.open(
            source, trust=trust, input_spec=input_spec or None, guess_inputs=True,
            progress=progress, cancel=cancel, arch=arch, code=code,
        )
    except UntrustedPickleError as exc:
        raise TrustRequired(source, str(exc)) from None
    except InputsUnknown:
        raise InputShapeRequired(
            source, f"Arborist could not infer an input shape for {name}."
        ) from None
    except InputsDoNotRun as exc:
        if exc.guessed or input_spec:
            raise InputShapeRequired(source, f"{name}: {exc}", suggestion=exc.inputs) from None
        raise ModelLoadFailed(f"{name}: {exc}") from None
    except InputSpecError as exc:
        raise InputShapeRequired(source, str(exc), suggestion=input_spec or "") from None
    except ModelLoadError as exc:
        raise _needs_answer(source, exc) or ModelLoadFailed(str(exc)) from None


def session_of(doc: Document) -> Session:
    """The Session for a document's model (cheap: its graph is reused, nothing re-run);
    built from the document's fields so it always says what the document says."""
    return Session(
        doc.model, doc.example_inputs, source=doc.source, input_spec=doc.input_spec,
        description=doc.description, arch=doc.arch, pruning_history=doc.pruning_history,
        graph=doc.graph,
    )


def document_of(session: Session, source: str, title: str, **changes: Any) -> Document:
    """The plain Document the window shows for a (traced) Session."""
    return Document(
        source=source,
        title=title,
        summary=session.summary(),
        input_spec=session.input_spec,
        description=session.description,
        model=session.model,
        graph=session.graph,
        example_inputs=session.example_inputs,
        arch=session.arch,
        pruning_history=list(session.pruning_history),
        **changes,
    )


def load_and_trace(
    source: str,
    input_spec: str | None = None,
    trust: bool = False,
    progress: Progress = lambda f, m: None,
    cancel: CancelFlag = lambda: False,
    arch: str | None = None,
    code: str | None = None,
) -> Document:
    """Source -> Session (loaded, run once, traced) -> Document (plain data)."""
    name = display_name(source)
    session = open_session(source, input_spec, trust, progress, cancel, arch=arch, code=code)
    progress(0.4, f"Tracing {name}…")
    try:
        session.trace(cancel=cancel)
    except Cancelled:
        raise
    except Exception as exc:
        if session.guessed_inputs or input_spec:
            raise InputShapeRequired(
                source,
                f"Tracing {name} with input {session.input_spec} failed: {exc}",
                suggestion=session.input_spec,
            ) from None
        raise ModelLoadFailed(f"Tracing {name} failed: {exc}") from exc
    progress(0.8, "Finding coupled channel groups…")
    doc = document_of(session, source, name)
    if cancel():
        raise Cancelled()
    return doc


# ----------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Criterion:
    name: str  # plan name ("magnitude", "taylor", ...)
    needs_data: bool  # reads calibration data (gradients or activation statistics)
    options: tuple[str, ...]  # accepted importance_options keys


def criteria() -> list[Criterion]:
    """Every importance criterion the engine's plan layer knows, in its order."""
    from engine.plan import criteria as crit

    return [
        Criterion(n, n in crit.DATA_CRITERIA, tuple(crit.accepted_options(n)))
        for n in crit.CRITERIA
    ]


def preferred_round_to() -> int:
    """The channel multiple this CPU's kernels fill whole (16 with AVX-512, else 8)."""
    from engine.utils.hardware import preferred_channel_multiple

    return preferred_channel_multiple()


def new_plan(doc: Document) -> Any:
    """A default plan for a document: its source and input spec recorded for replay."""
    from engine.plan import PruningPlan

    return PruningPlan(source=doc.source, input_spec=doc.input_spec)


class PlanFileError(Exception):
    """A plan file that cannot be read; `.problems` lists each precise problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_plan(path: str) -> Any:
    from engine.plan import PlanError, PruningPlan

    try:
        return PruningPlan.load(path)
    except PlanError as exc:
        raise PlanFileError(list(exc.problems)) from None


def plan_problems(plan: Any, doc: Document) -> list[str]:
    """Every problem the engine finds with a plan on this document's model (empty: fine)."""
    return session_of(doc).check_plan(plan)


# ----------------------------------------------------------------------------- data


DEMO_CALIBRATION = 64  # demo training digits used for gradient criteria
FOLDER_CALIBRATION = 256  # samples of a settings-chosen folder (engine.data's default cap)


def data_options(path: str, **fields: Any) -> Any:
    """engine.data.DataOptions: what the data panel (and the CLI's --data flags) choose."""
    from engine.data import DataOptions

    return DataOptions(data=path, **fields)


def data_key(options: Any) -> str:
    """A hashable key for DataOptions (they hold a dict), for caches of previewers."""
    import json

    return "" if options is None else json.dumps(options.to_dict(), sort_keys=True, default=str)


def open_data(doc: Document, options: Any) -> Any:
    """engine.data.DataSource of `options.data`, preprocessed for this document's model."""
    return session_of(doc).open_data(options.data, overrides=options.preprocessing or None)


def prepare_data(doc: Document, options: Any) -> Any:
    """engine.data.RunData (calibration + evaluation sets): the CLI's split, exactly."""
    return session_of(doc).prepare_data(options)


def _loader_of(source: Any, n: int) -> Any:
    from engine.data import make_loader, subset

    return make_loader(subset(source, n), batch_size=32)


def _demo_data(split: str) -> Any:
    """The demo's own digits (train: calibration, heldout: evaluation) as a DataSource."""
    from engine.data import open_data as engine_open_data
    from engine.models.digits_net import DEMO_DIR

    return engine_open_data(DEMO_DIR / f"digits_{split}.npz")


def _demo_digits() -> tuple[Any, Any]:
    """Held-out digits shipped with the demo (x: N,1,8,8 float32 in [0,1]; y: labels)."""
    import torch

    from engine.data.digits import load_split

    x, y = load_split("heldout")
    return torch.from_numpy(x), torch.from_numpy(y)


def make_calibration(
    doc: Document, kind: str, folder: str = "", data: Any = None
) -> Callable[[Any], Any] | None:
    """A calibration for gradient/activation criteria; None means the engine's random inputs.

    "data": the calibration set of the data panel's DataOptions (engine.data.prepare_data,
    as `arborist prune --data`); "folder": a folder chosen in the settings; "demo": 64 demo
    training digits. All go through engine.plan.calibration.data_calibration.
    """
    from engine.plan.calibration import data_calibration

    if kind == "data" and data is not None:
        return Session.calibration(prepare_data(doc, data))
    if kind == "folder" and folder:
        source = session_of(doc).open_data(folder)
        return data_calibration(_loader_of(source, FOLDER_CALIBRATION), description=folder)
    if kind == "demo":
        loader = _loader_of(_demo_data("train"), DEMO_CALIBRATION)
        return data_calibration(loader, description="demo training digits")
    return None


def evaluation_data(doc: Document, data: Any) -> tuple[Any, str]:
    """(batches to measure before -> after on, their description), or (None, "")."""
    from engine.data import make_loader

    if data is not None:
        run = prepare_data(doc, data)
        if run.evaluation is not None:
            how = run.evaluation.notes[-1] if run.evaluation.notes else "all of it"
            return run.evaluation_loader(), f"{run.evaluation.path}, {how}"
    if doc.source == DEMO_SOURCE:
        return make_loader(_demo_data("heldout"), batch_size=128), "360 held-out demo digits"
    return None, ""


@dataclass(frozen=True)
class AttentionSummary:
    """How many attention blocks the model has and how many use rotary embeddings."""

    blocks: int
    rope_blocks: int

    @property
    def text(self) -> str:
        if not self.blocks:
            return "no attention layers in this model"
        rope = f", {self.rope_blocks} with rotary embeddings" if self.rope_blocks else ""
        return f"{self.blocks} attention block{'s' if self.blocks != 1 else ''}{rope}"


def attention_summary(model: Any) -> AttentionSummary:
    """Attention blocks the engine recognises (heads options only matter for these)."""
    from torch import nn

    from engine.families import find_attention

    if not isinstance(model, nn.Module):  # e.g. a document without a live model
        return AttentionSummary(0, 0)
    infos = find_attention(model)
    return AttentionSummary(len(infos), sum(1 for i in infos if i.rope))


# ----------------------------------------------------------------------------- preview


def make_previewer(doc: Document, calibration: Callable[[Any], Any] | None = None) -> Any:
    """The engine's Previewer for the document (scores cached; preview() is then cheap)."""
    return session_of(doc).previewer(calibration)


def preview(
    previewer: Any,
    plan: Any,
    on_batch: Callable[[int, int], None] | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> Any:
    """Exact before/after MACs, params and per-layer widths for a plan (engine.plan.Preview);
    `on_batch(done, total)` hears of each batch of a first gradient/activation pass;
    `on_progress(done, total, message)` of each step of the slow path (a real pruned copy)."""
    return previewer.preview(plan, on_batch=on_batch, on_progress=on_progress)


def solve(previewer: Any, plan: Any, target: str, keep: float) -> Any:
    """Default ratio that keeps `keep` of MACs or params (engine.plan.SolveResult)."""
    from engine.plan import solve_ratio

    return solve_ratio(previewer, plan, target=target, keep=keep)


# ----------------------------------------------------------------------------- pruning


@dataclass
class PruneResult:
    """The engine's PruneReport plus the pruned copy as a Document (the original is not
    in here); report fields (macs_before, layers, latency, ...) read through."""

    document: Document  # the pruned copy, traced, ready to become the open document
    report: PruneReport
    calibration_note: str = ""
    evaluation_note: str = ""  # what the metrics were measured on ("" : not measured)

    def __getattr__(self, name: str) -> Any:
        if name in {f.name for f in dataclasses.fields(PruneReport)}:
            return getattr(self.report, name)
        raise AttributeError(name)

    @property
    def accuracy_before(self) -> float | None:
        m = self.report.metrics_before
        return None if m is None else m.accuracy

    @property
    def accuracy_after(self) -> float | None:
        m = self.report.metrics_after
        return None if m is None else m.accuracy


def layer_table(
    model: Any, example_inputs: Any
) -> dict[str, tuple[str, int | None, int | None, int]]:
    """name -> (type, in width, out width, own params), widths from the engine's graph."""
    widths = Session(model, example_inputs).layer_widths()
    return {n: (w.kind, w.in_channels, w.out_channels, w.params) for n, w in widths.items()}


def layer_widths(doc: Document) -> dict[str, tuple[int | None, int | None]]:
    """name -> (in, out) channels as the engine counts them (Embedding, LSTM included)."""
    return {
        n: (w.in_channels, w.out_channels) for n, w in session_of(doc).layer_widths().items()
    }


def prune_copy(
    doc: Document,
    plan: Any,
    calibration: Callable[[Any], Any] | None = None,
    progress: Progress = lambda f, m: None,
    cancel: CancelFlag = lambda: False,
    eval_data: Any = None,
    evaluation_note: str = "",
) -> PruneResult:
    """Session.prune (a copy; the open model is untouched), then trace the pruned copy."""
    result = session_of(doc).prune(
        plan, calibration=calibration, eval_data=eval_data, latency=True,
        progress=progress, cancel=cancel,
    )
    progress(0.96, "Tracing the pruned model…")
    pruned = result.session
    pruned.trace(cancel=cancel)
    pruned_doc = document_of(pruned, doc.source, f"{doc.title} (pruned)", pruned=True)
    return PruneResult(
        pruned_doc, result.report,
        evaluation_note=evaluation_note if eval_data is not None else "",
    )


# ----------------------------------------------------------------------------- export


class ExportFailed(Exception):
    """An export could not be written; the message is shown to the user."""


@dataclass
class ExportResult:
    path: str
    format: str  # "onnx" | "pytorch" | "checkpoint" | "pt2"
    report: ExportReport  # every format is read back and validated


def export_model(
    doc: Document,
    path: str,
    fmt: str,
    opset: int = 17,
    dynamic_batch: bool = True,
    progress: Progress = lambda f, m: None,
    cancel: CancelFlag = lambda: False,
) -> ExportResult:
    """Session.export: staged beside `path`, validated (every format), moved into place;
    a cancel or failure never leaves a partial file; the source file is refused."""
    from engine.io.errors import ExportError

    try:
        report = session_of(doc).export(
            path, fmt, opset=opset, dynamic_batch=dynamic_batch, progress=progress, cancel=cancel
        )
    except ExportError as exc:
        raise ExportFailed(str(exc)) from None
    return ExportResult(path, fmt, report)


def same_file_path(a: str, b: str) -> bool:
    from engine.io.atomic import same_file

    return same_file(a, b)


__all__ = [
    "Cancelled", "LoadCancelled", "PruneCancelled", "ExportCancelled", "ModelLoadFailed",
    "TrustRequired", "InputShapeRequired", "LayerChange", "PruneResult", "ExportResult",
    "ExportFailed",
]
