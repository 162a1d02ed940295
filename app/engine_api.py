"""The one place the GUI calls the engine: load a model, trace it, summarize the graph.

Everything here runs on a worker thread and returns plain data (`Document`).
The engine is being written in parallel, so imports are lazy and defensive:
a missing piece becomes a clear `EngineUnavailable` message, never a crash.
Cancellation is cooperative: `cancel()` is polled between stages.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.document import DEMO_SOURCE, Document
from engine.graph.summary import GraphSummary
from engine.utils.latency import LatencyCheck, check_latency

Progress = Callable[[float, str], None]
CancelFlag = Callable[[], bool]


class LoadCancelled(Exception):
    """The user cancelled; not an error."""


class ModelLoadFailed(Exception):
    """The source could not be loaded or traced; the message is shown to the user."""


class EngineUnavailable(ModelLoadFailed):
    """A needed engine function is not importable (yet)."""


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


@dataclass
class LoadedModel:
    model: Any  # nn.Module
    example_inputs: Any  # tensor / tuple / dict, or None if unknown
    description: str = ""
    arch: str | None = None
    pruning_history: list = field(default_factory=list)


def is_zoo_spec(source: str) -> bool:
    prefix, sep, name = source.partition(":")
    return bool(sep) and prefix.lower() in ("arborist", "torchvision", "timm") and bool(name)


def display_name(source: str) -> str:
    if source == DEMO_SOURCE:
        return "Demo: DigitsNet"
    if is_zoo_spec(source):
        return source.partition(":")[2]
    return os.path.basename(source) or source


def _optional(module: str, attr: str) -> Any | None:
    """engine.<module>.<attr> or None when that part of the engine is not there yet."""
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


# ----------------------------------------------------------------------------- input specs


def parse_input_spec(text: str) -> Any:
    """Example inputs for a spec like "1,3,224,224" (or "a=1,8;b=1,8:int64" via the engine)."""
    parse = _optional("engine.io.input_spec", "InputSpec")
    if parse is not None:
        try:
            return parse.parse(text).make()
        except Exception as exc:  # InputSpecError
            raise ValueError(str(exc)) from None
    import torch

    try:
        dims = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"not a shape: {text!r}; expected e.g. 1,3,224,224") from None
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"not a shape: {text!r}; expected positive sizes like 1,3,224,224")
    return torch.randn(*dims)


def describe_inputs(inputs: Any) -> str:
    spec = _optional("engine.io.input_spec", "InputSpec")
    if spec is not None:
        try:
            return spec.from_inputs(inputs).to_string()
        except Exception:
            pass
    shape = getattr(inputs, "shape", None)
    if shape is not None:
        return ",".join(str(d) for d in shape)
    if isinstance(inputs, (tuple, list)):
        return ";".join(describe_inputs(t) for t in inputs)
    return type(inputs).__name__


# ----------------------------------------------------------------------------- loading


def _unpack(result: Any) -> LoadedModel:
    """Accept the shapes a loader may return: module, (module, inputs), or an object."""
    import torch.nn as nn

    if isinstance(result, nn.Module):
        return LoadedModel(result, None, type(result).__name__)
    if isinstance(result, tuple) and result and isinstance(result[0], nn.Module):
        return LoadedModel(
            result[0], result[1] if len(result) > 1 else None, type(result[0]).__name__
        )
    model = getattr(result, "model", None)
    if isinstance(model, nn.Module):
        inputs = getattr(result, "example_inputs", None)
        spec = getattr(result, "input_spec", None)
        if inputs is None and spec is not None:
            inputs = parse_input_spec(str(spec))
        desc = getattr(result, "description", "") or type(model).__name__
        history = list(getattr(result, "pruning_history", None) or [])
        return LoadedModel(model, inputs, desc, getattr(result, "arch", None), history)
    raise ModelLoadFailed(f"the loader returned {type(result).__name__}, not a model")


def load_model(
    source: str, trust: bool = False, arch: str | None = None, code: str | None = None
) -> LoadedModel:
    """Load through engine.io.load (trust gate, formats); fall back to the zoo/demo.

    ``arch`` fills a weights-only file; ``code`` is the user's model code for a trusted
    pickle of their own classes (imported only after trust).
    """
    untrusted = _optional("engine.io.errors", "UntrustedPickleError") or ()
    load_error = _optional("engine.io.errors", "ModelLoadError") or ()
    arch_needed = _optional("engine.io.errors", "ArchRequiredError") or ()
    code_needed = _optional("engine.io.errors", "MissingCodeError") or ()
    loader = _optional("engine.io.load", "load_model")
    extra = {k: v for k, v in (("arch", arch), ("code", code)) if v}
    try:
        if loader is not None:
            return _unpack(loader(source, trust=trust, **extra))
        return _fallback_load(source, trust)
    except untrusted as exc:  # type: ignore[misc]
        raise TrustRequired(source, str(exc)) from None
    except arch_needed as exc:  # type: ignore[misc]
        raise ArchRequired(source, str(exc), list(exc.candidates)) from None
    except code_needed as exc:  # type: ignore[misc]
        raise CodeRequired(source, str(exc), exc.module) from None
    except load_error as exc:  # type: ignore[misc]
        raise ModelLoadFailed(str(exc)) from None


def _fallback_load(source: str, trust: bool) -> LoadedModel:
    """Used only while engine.io.load does not exist: zoo specs and plain torch files."""
    if is_zoo_spec(source):
        build = _optional("engine.io.zoo", "build_zoo_model")
        if build is None:
            raise EngineUnavailable("engine.io.zoo is not available yet")
        z = build(source)
        return LoadedModel(z.model, z.input_spec.make(), z.description)
    reader = _optional("engine.io.torch_files", "read_torch_file")
    if reader is None:
        raise EngineUnavailable("engine.io.load is not available yet")
    from pathlib import Path

    return _unpack(reader(Path(source), trust=trust))


def trace(model: Any, example_inputs: Any) -> Any:
    """Build the engine's DependencyGraph for a model."""
    dg_cls = _optional("engine", "DependencyGraph") or _optional("engine.graph", "DependencyGraph")
    if dg_cls is None:
        raise EngineUnavailable(
            "the dependency-graph engine (engine.DependencyGraph) is not available yet"
        )
    return dg_cls().build_dependency(model, example_inputs=example_inputs)


def summarize(graph: Any) -> GraphSummary:
    fn = _optional("engine.graph", "summarize")
    if fn is None:
        raise EngineUnavailable("engine.graph.summarize is not available yet")
    return fn(graph)


def _check(cancel: CancelFlag) -> None:
    if cancel():
        raise LoadCancelled()


def load_and_trace(
    source: str,
    input_spec: str | None = None,
    trust: bool = False,
    progress: Progress = lambda f, m: None,
    cancel: CancelFlag = lambda: False,
    arch: str | None = None,
    code: str | None = None,
) -> Document:
    """Source -> nn.Module -> example inputs -> DependencyGraph -> Document (plain data)."""
    name = display_name(source)
    progress(0.02, f"Loading {name}…")
    loaded = load_model(source, trust=trust, arch=arch, code=code)
    _check(cancel)
    guessed = False
    if input_spec:
        progress(0.3, "Preparing inputs…")
        inputs = parse_input_spec(input_spec)
    elif loaded.example_inputs is not None:
        inputs = loaded.example_inputs
    else:
        progress(0.3, "Guessing the input shape…")
        guess = _optional("engine.io.guess", "guess_example_inputs")
        inputs = guess(loaded.model) if guess is not None else None
        if inputs is None:
            raise InputShapeRequired(source, f"Arborist could not infer an input shape for {name}.")
        guessed = True
    _check(cancel)
    progress(0.4, f"Tracing {name}…")
    try:
        graph = trace(loaded.model, inputs)
    except EngineUnavailable:
        raise
    except Exception as exc:
        if guessed or input_spec:
            raise InputShapeRequired(
                source,
                f"Tracing {name} with input {describe_inputs(inputs)} failed: {exc}",
                suggestion=describe_inputs(inputs),
            ) from None
        raise ModelLoadFailed(f"Tracing {name} failed: {exc}") from exc
    _check(cancel)
    progress(0.8, "Finding coupled channel groups…")
    summary = summarize(graph)
    _check(cancel)
    return Document(
        source=source,
        title=name,
        summary=summary,
        input_spec=describe_inputs(inputs),
        description=loaded.description,
        model=loaded.model,
        graph=graph,
        example_inputs=inputs,
        arch=loaded.arch,
        pruning_history=loaded.pruning_history,
    )


# ----------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Criterion:
    name: str  # plan name ("magnitude", "taylor", ...)
    needs_data: bool  # reads gradients from a calibration pass
    options: tuple[str, ...]  # accepted importance_options keys


def criteria() -> list[Criterion]:
    """Every importance criterion the engine's plan layer knows, in its order."""
    from engine.plan import criteria as crit

    return [
        Criterion(n, n in crit.GRADIENT_CRITERIA, tuple(crit.accepted_options(n)))
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
    from engine.plan import PlanError

    try:
        plan.validate(doc.model)
    except PlanError as exc:
        return list(exc.problems)
    return []


# ----------------------------------------------------------------------------- calibration


DEMO_CALIBRATION = 64  # digits used for gradient criteria on the demo


def _demo_digits() -> tuple[Any, Any]:
    """Held-out digits shipped with the demo (x: N,1,8,8 float32 in [0,1]; y: labels)."""
    import numpy as np
    import torch

    from engine.models.digits_net import DEMO_DIR

    data = np.load(DEMO_DIR / "digits_heldout.npz")
    return torch.from_numpy(data["x"]), torch.from_numpy(data["y"])


def _demo_training_digits(n: int) -> tuple[Any, Any]:
    """The first `n` digits of the demo's TRAINING split, so calibration never touches the
    held-out digits that measure accuracy; falls back to none when sklearn is missing."""
    import numpy as np
    import torch

    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ModelLoadFailed(
            "calibrating on the demo digits needs scikit-learn; pick random inputs instead"
        ) from None
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_tr, _, y_tr, _ = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    return torch.from_numpy(x_tr[:n]), torch.from_numpy(y_tr[:n])


def _first_tensor(out: Any) -> Any:
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    logits = getattr(out, "logits", None)
    return logits if isinstance(logits, torch.Tensor) else None


def _pseudo_label_loss(out: Any) -> Any:
    """Cross-entropy against the model's own predictions (images without labels)."""
    import torch.nn.functional as F

    t = _first_tensor(out)
    if t is None:
        raise ModelLoadFailed("the model returned no tensor to compute a calibration loss on")
    if t.dim() >= 2 and t.shape[1] > 1:
        return F.cross_entropy(t, t.detach().argmax(1))
    return t.float().pow(2).mean()


def load_image_folder(folder: str, example: Any, limit: int = 32) -> Any:
    """Up to `limit` images from a folder as a batch shaped like the example input."""
    import torch
    from PIL import Image

    if not hasattr(example, "shape") or example.dim() != 4:
        raise ModelLoadFailed("an image folder can only calibrate models with one N,C,H,W input")
    _, c, h, w = example.shape
    exts = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(exts))[
        :limit
    ]
    if not files:
        raise ModelLoadFailed(f"no images (png, jpg, bmp, …) in {folder}")
    batch = []
    for path in files:
        with Image.open(path) as im:
            im = im.convert("L" if c == 1 else "RGB").resize((w, h))
            t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).float() / 255.0
        t = t.view(h, w, -1).permute(2, 0, 1)
        if c == 3:
            mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
            std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
            t = (t - mean) / std
        batch.append(t[:c] if t.shape[0] >= c else t.expand(c, h, w))
    return torch.stack(batch).to(example.dtype)


def make_calibration(doc: Document, kind: str, folder: str = "") -> Callable[[Any], Any] | None:
    """A `(model) -> loss` for gradient criteria; None means the engine's random inputs."""
    import torch.nn.functional as F

    if kind == "demo":
        x, y = _demo_training_digits(DEMO_CALIBRATION)
        return lambda model: F.cross_entropy(model(x), y)
    if kind == "folder":
        images = load_image_folder(folder, doc.example_inputs)
        return lambda model: _pseudo_label_loss(model(images))
    return None


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
    from engine.plan import Previewer

    return Previewer(
        doc.model, doc.example_inputs, dependency_graph=doc.graph, calibration=calibration
    )


def preview(previewer: Any, plan: Any) -> Any:
    """Exact before/after MACs, params and per-layer widths for a plan (engine.plan.Preview)."""
    return previewer.preview(plan)


def solve(previewer: Any, plan: Any, target: str, keep: float) -> Any:
    """Default ratio that keeps `keep` of MACs or params (engine.plan.SolveResult)."""
    from engine.plan import solve_ratio

    return solve_ratio(previewer, plan, target=target, keep=keep)


# ----------------------------------------------------------------------------- pruning


class PruneCancelled(Exception):
    """The user cancelled pruning; the original model was never touched."""


@dataclass(frozen=True)
class LayerChange:
    name: str
    kind: str
    in_before: int | None
    in_after: int | None
    out_before: int | None
    out_after: int | None
    params_before: int
    params_after: int


@dataclass
class PruneResult:
    """A pruned copy and everything the result view shows; the original is not in here."""

    document: Document  # the pruned copy, traced, ready to become the open document
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    steps_done: int
    layers: list[LayerChange]
    output_shape_before: tuple[int, ...] | None
    output_shape_after: tuple[int, ...] | None
    max_abs_diff: float | None  # pruned vs original output on the example input
    accuracy_before: float | None = None  # demo only: held-out digits
    accuracy_after: float | None = None
    calibration_note: str = ""
    latency: LatencyCheck | None = None  # None: not measured (prune_copy always measures)


def _width(module: Any, which: str) -> int | None:
    names = (
        ("in_channels", "in_features", "num_features", "embed_dim", "normalized_shape")
        if which == "in"
        else ("out_channels", "out_features", "num_features", "embed_dim", "normalized_shape")
    )
    for n in names:
        v = getattr(module, n, None)
        if isinstance(v, int):
            return v
        if isinstance(v, (tuple, list)) and v and isinstance(v[-1], int):
            return v[-1]
    return None


def layer_table(model: Any) -> dict[str, tuple[str, int | None, int | None, int]]:
    """name -> (type, in width, out width, own params) for every module with parameters."""
    rows = {}
    for name, m in model.named_modules():
        own = sum(p.numel() for p in m.parameters(recurse=False))
        if own:
            rows[name] = (type(m).__name__, _width(m, "in"), _width(m, "out"), own)
    return rows


def demo_accuracy(model: Any) -> float:
    """Top-1 accuracy on the demo's 360 held-out digits."""
    import torch

    x, y = _demo_digits()
    was = model.training
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    model.train(was)
    return acc


def _run(model: Any, inputs: Any) -> Any:
    import torch

    from engine.io.input_spec import call_with

    with torch.no_grad():
        return _first_tensor(call_with(model, inputs))


def copy_model(model: Any) -> Any:
    """A deep copy to prune, so the open model stays untouched until the user accepts."""
    import copy

    return copy.deepcopy(model)


def prune_copy(
    doc: Document,
    plan: Any,
    model_copy: Any,
    calibration: Callable[[Any], Any] | None,
    progress: Progress = lambda f, m: None,
    cancel: CancelFlag = lambda: False,
) -> PruneResult:
    """Prune `model_copy` (a copy of doc.model) by the plan, then measure and re-trace it."""
    from engine.plan import Cancelled, apply_plan

    _check_prune(cancel)
    before = layer_table(doc.model)
    progress(0.02, "Pruning…")

    def on_step(done: int, total: int, message: str) -> None:
        progress(0.05 + 0.7 * done / max(total, 1), message or f"step {done}/{total}")

    try:
        outcome = apply_plan(
            model_copy,
            doc.example_inputs,
            plan,
            progress=on_step,
            cancel=cancel,
            calibration=calibration,
        )
    except Cancelled:
        raise PruneCancelled() from None
    _check_prune(cancel)
    progress(0.8, "Checking outputs…")
    model_copy.eval()
    ref = _run(doc.model, doc.example_inputs)
    out = _run(model_copy, doc.example_inputs)
    diff = None
    if ref is not None and out is not None and ref.shape == out.shape:
        diff = float((ref.float() - out.float()).abs().max())
    after = layer_table(model_copy)
    layers = [
        LayerChange(
            name,
            kind,
            cin,
            after.get(name, (kind, None, None, 0))[1],
            cout,
            after.get(name, (kind, None, None, 0))[2],
            params,
            after.get(name, (kind, None, None, 0))[3],
        )
        for name, (kind, cin, cout, params) in before.items()
    ]
    _check_prune(cancel)
    progress(0.82, "Timing the original and the pruned model…")
    # the output check has just run both models on these inputs: that was the warm-up
    latency = check_latency(
        doc.model, model_copy, doc.example_inputs, warmup_rounds=0, cancel=cancel
    )
    acc_before = acc_after = None
    if doc.source == DEMO_SOURCE:
        progress(0.85, "Measuring digits accuracy…")
        acc_before, acc_after = demo_accuracy(doc.model), demo_accuracy(model_copy)
    _check_prune(cancel)
    progress(0.9, "Tracing the pruned model…")
    graph = trace(model_copy, doc.example_inputs)
    pruned_doc = dataclasses.replace(
        doc,
        title=f"{doc.title} (pruned)",
        summary=summarize(graph),
        notes=[],
        model=model_copy,
        graph=graph,
        pruned=True,
        pruning_history=list(doc.pruning_history) + list(outcome.history),
    )
    return PruneResult(
        document=pruned_doc,
        macs_before=outcome.macs_before,
        macs_after=outcome.macs_after,
        params_before=outcome.params_before,
        params_after=outcome.params_after,
        steps_done=outcome.steps_done,
        layers=layers,
        output_shape_before=tuple(ref.shape) if ref is not None else None,
        output_shape_after=tuple(out.shape) if out is not None else None,
        max_abs_diff=diff,
        accuracy_before=acc_before,
        accuracy_after=acc_after,
        latency=latency,
    )


def _check_prune(cancel: CancelFlag) -> None:
    if cancel():
        raise PruneCancelled()


# ----------------------------------------------------------------------------- export


class ExportCancelled(Exception):
    """The user cancelled an export; nothing was written."""


class ExportFailed(Exception):
    """An export could not be written or validated; the message is shown to the user."""


@dataclass
class ExportResult:
    path: str
    format: str  # "onnx" | "pytorch" | "checkpoint"
    report: Any = None  # engine.io.ValidationReport for ONNX


def _source_path(doc: Document) -> str | None:
    return None if is_zoo_spec(doc.source) else doc.source


def export_model(
    doc: Document,
    path: str,
    fmt: str,
    opset: int = 17,
    dynamic_batch: bool = True,
    progress: Progress = lambda f, m: None,
    cancel: CancelFlag = lambda: False,
) -> ExportResult:
    """Write the document's model to `path`: ONNX (validated with ONNX Runtime), a full
    PyTorch pickle, or a weights-only checkpoint.

    The engine writes into a private folder next to `path`; only when the export (and its
    validation) finished without a cancel is the file moved onto `path`, so a cancel or a
    failure never leaves a partial file and never replaces an existing one. The model's
    source file is refused outright.
    """
    import shutil
    import tempfile

    source = _source_path(doc)
    if source and same_file_path(path, source):
        raise ExportFailed(f"{path} is the model's source file; choose another name")
    if fmt == "checkpoint" and not doc.arch:
        raise ExportFailed(
            "a weights-only checkpoint needs a known architecture (a zoo or demo model); "
            "save a full PyTorch model instead"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ExportFailed(f"the folder {folder} does not exist")
    if cancel():
        raise ExportCancelled()
    progress(0.1, f"Writing {os.path.basename(path)}…")
    try:
        staging = tempfile.mkdtemp(prefix=".arborist-export-", dir=folder)
    except OSError as exc:
        raise ExportFailed(f"cannot write to {folder}: {exc.strerror or exc}") from None
    try:
        staged = os.path.join(staging, os.path.basename(path))
        result = _export_to(doc, staged, fmt, opset, dynamic_batch, source)
        if cancel():
            raise ExportCancelled()
        progress(0.95, "Moving the file into place…")
        os.replace(staged, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.path = path
    if result.report is not None:
        result.report.path = path
    progress(1.0, "Exported")
    return result


def same_file_path(a: str, b: str) -> bool:
    from engine.io.atomic import same_file

    return same_file(a, b)


def _export_to(
    doc: Document, path: str, fmt: str, opset: int, dynamic_batch: bool, source: str | None
) -> ExportResult:
    from engine.io import ExportError, export_onnx, export_pytorch, export_safe_checkpoint

    try:
        if fmt == "onnx":
            report = export_onnx(
                doc.model,
                doc.example_inputs,
                path,
                opset=opset,
                dynamic_batch=dynamic_batch,
                source=source,
            )
            return ExportResult(path, fmt, report)
        if fmt == "checkpoint":
            export_safe_checkpoint(
                doc.model,
                path,
                arch=doc.arch,
                pruning_history=doc.pruning_history,
                example_input_spec=doc.input_spec,
                source=source,
            )
            return ExportResult(path, fmt)
        export_pytorch(doc.model, path, source=source)
        return ExportResult(path, fmt)
    except ExportError as exc:
        raise ExportFailed(str(exc)) from None
