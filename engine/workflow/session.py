"""The workflow both front ends call: open -> trace -> preview -> prune a copy ->
evaluate -> export + validate.

A `Session` is one opened model with inputs it provably runs on. Nothing here
modifies that model: `prune` works on a deep copy and returns it as a new Session.
Every long step takes the shared progress/cancel callbacks (engine.utils.progress)
and returns plain reports (engine.workflow.reports). The GUI (app/engine_api.py)
and the CLI (app/cli) are thin adapters over this class, so they give the same
numbers by construction.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

from ..io.errors import ModelLoadError
from ..utils.progress import (
    CancelFn,
    Cancelled,
    ProgressFn,
    check_cancel,
    never_cancel,
    no_progress,
    step_progress,
    sub_progress,
)
from .errors import InputsDoNotRun, InputsUnknown
from .export import export_validated
from .reports import ExportReport, LayerChange, LayerWidth, PruneReport, PruneResult

Calibration = Callable[[Any], Any]  # (model) -> loss, for gradient criteria


class Session:
    """One opened model and everything the workflow does with it."""

    def __init__(
        self,
        model: Any,
        example_inputs: Any,
        *,
        source: str = "",
        input_spec: str = "",
        description: str = "",
        arch: str | None = None,
        source_kind: str = "",
        pruning_history: list[Any] | None = None,
        graph: Any = None,
        reference_output: Any = None,
        guessed_inputs: bool = False,
    ) -> None:
        self.model = model
        self.example_inputs = example_inputs
        self.source = source
        self.input_spec = input_spec or describe_inputs(example_inputs)
        self.description = description or type(model).__name__
        self.arch = arch
        self.source_kind = source_kind
        self.pruning_history = list(pruning_history or [])
        self.reference_output = reference_output
        self.guessed_inputs = guessed_inputs
        self._graph = graph
        self._summary: Any = None

    # ------------------------------------------------------------------ open

    @classmethod
    def open(
        cls,
        source: str,
        *,
        trust: bool = False,
        arch: str | None = None,
        input_spec: str | None = None,
        guess_inputs: bool = False,
        progress: ProgressFn = no_progress,
        cancel: CancelFn = never_cancel,
        code: str | None = None,
    ) -> Session:
        """Load `source` (a file or zoo spec) behind the trust gate and run it once.

        A pickle that needs code execution raises engine.io UntrustedPickleError until
        `trust=True`; `code` (a .py file or folder) is the user's model code it may need.
        Without example inputs, `guess_inputs` asks engine.io.guess;
        otherwise (or when that fails) InputsUnknown. A model that does not run on its
        inputs raises InputsDoNotRun (the front end asks for another shape).
        """
        from ..io import load_model

        progress(0.02, f"Loading {source}…")
        loaded = load_model(source, trust=trust, arch=arch, input_spec=input_spec, code=code)
        check_cancel(cancel)
        inputs, guessed = loaded.example_inputs, False
        if inputs is None and guess_inputs:
            from ..io.guess import guess_example_inputs

            progress(0.3, "Guessing the input shape…")
            inputs, guessed = guess_example_inputs(loaded.model), True
        if inputs is None:
            raise InputsUnknown(
                f"cannot tell what inputs {source} takes; give an input shape, e.g. 1,3,224,224"
            )
        known = loaded.input_spec is not None and not guessed
        spec = loaded.input_spec.to_string() if known else describe_inputs(inputs)
        progress(0.35, "Running the model once…")
        output = _run_once(loaded.model, inputs, spec, guessed)
        check_cancel(cancel)
        return cls(
            loaded.model,
            inputs,
            source=str(source),
            input_spec=spec,
            description=loaded.description,
            arch=loaded.arch,
            source_kind=loaded.source_kind,
            pruning_history=loaded.pruning_history,
            reference_output=output,
            guessed_inputs=guessed,
        )

    # ------------------------------------------------------------------ graph

    @property
    def graph(self) -> Any:
        """The DependencyGraph of this session's model (traced on first use)."""
        if self._graph is None:
            self.trace()
        return self._graph

    def trace(self, progress: ProgressFn = no_progress, cancel: CancelFn = never_cancel) -> Any:
        from ..graph import DependencyGraph

        check_cancel(cancel)
        progress(0.4, "Tracing the dependency graph…")
        self._graph = DependencyGraph().build_dependency(self.model, self.example_inputs)
        self._summary = None
        check_cancel(cancel)
        return self._graph

    def summary(self) -> Any:
        """engine.graph.GraphSummary: nodes, edges and prunable groups as plain data."""
        if self._summary is None:
            from ..graph import summarize

            self._summary = summarize(self.graph)
        return self._summary

    def counts(self) -> tuple[int, int]:
        """(MACs, params) with the engine's counter (Torch-Pruning's conventions)."""
        from ..utils import count_ops_and_params

        macs, params = count_ops_and_params(self.model, self.example_inputs)
        return int(macs), int(params)

    def layer_widths(self, graph: Any = None) -> dict[str, LayerWidth]:
        """Every layer with parameters (or in the graph): widths as the engine's pruners
        count them (nn.Embedding, nn.LSTM, attention included), not guessed from names."""
        return layer_widths(self.model, graph if graph is not None else self.graph)

    # ------------------------------------------------------------------ preview

    def previewer(self, calibration: Calibration | None = None) -> Any:
        """engine.plan.Previewer for this model (scores cached; preview() is then cheap)."""
        from ..plan import Previewer

        return Previewer(
            self.model, self.example_inputs, dependency_graph=self.graph, calibration=calibration
        )

    def preview(self, plan: Any, calibration: Calibration | None = None) -> Any:
        """Exact before/after MACs, params and widths for `plan` (engine.plan.Preview)."""
        return self.previewer(calibration).preview(plan)

    def check_plan(self, plan: Any) -> list[str]:
        """Every problem the engine finds with `plan` on this model (empty: fine)."""
        from ..plan import PlanError

        try:
            plan.validate(self.model)
        except PlanError as exc:
            return list(exc.problems)
        return []

    # ------------------------------------------------------------------ prune

    def prune(
        self,
        plan: Any,
        *,
        calibration: Calibration | None = None,
        eval_data: Any = None,
        latency: bool = True,
        progress: ProgressFn = no_progress,
        cancel: CancelFn = never_cancel,
        after_step: Callable[[int, Any], None] | None = None,
    ) -> PruneResult:
        """Prune a deep copy by `plan`; measure it against this (untouched) model.

        `eval_data` (an iterable of batches, e.g. engine.data's loader) gives metrics
        before and after. Cancelled (engine.utils.progress) when `cancel()` turns True.
        `after_step(step, copy)` runs after each iterative step: where recovery goes.
        """
        from ..plan import apply_plan
        from ..pruner.serialization import HISTORY_ATTR

        check_cancel(cancel)
        progress(0.01, "Copying the model…")
        pruned = copy.deepcopy(self.model)
        earlier = [(n, bool(o), list(i)) for n, o, i in self.pruning_history]
        if earlier and not getattr(pruned, HISTORY_ATTR, None):  # reopened checkpoints
            pruned.__dict__[HISTORY_ATTR] = earlier
        before = self.layer_widths()
        check_cancel(cancel)
        # with evaluation data, its two passes take a share of the bar (per batch)
        prune_end = 0.6 if eval_data is not None else 0.7
        progress(0.04, "Pruning…")  # apply_plan reports from 0.05 on
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = apply_plan(
                pruned,
                self.example_inputs,
                plan,
                progress=step_progress(progress, 0.05, prune_end),
                cancel=cancel,
                calibration=calibration,
                after_step=None if after_step is None else lambda step: after_step(step, pruned),
            )
        for w in caught:  # recorded for the report, and still shown to Python callers
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        check_cancel(cancel)
        progress(prune_end + 0.02, "Checking outputs…")
        pruned.eval()
        child = Session(
            pruned,
            self.example_inputs,
            source=self.source,
            input_spec=self.input_spec,
            description=self.description,
            arch=self.arch,
            source_kind=self.source_kind,
            pruning_history=[
                [n, bool(o), list(i)] for n, o, i in getattr(pruned, HISTORY_ATTR, [])
            ],
        )
        from ..evaluate import logits_of

        ref, out = logits_of(self._output()), logits_of(child._output())
        diff = None
        if ref is not None and out is not None and ref.shape == out.shape:
            diff = float((ref.float() - out.float()).abs().max())
        after = child.layer_widths()
        layers = [
            LayerChange(
                name, w.kind, w.in_channels, after.get(name, w).in_channels, w.out_channels,
                after.get(name, w).out_channels, w.params, after.get(name, w).params,
            )
            for name, w in before.items()
        ]
        report = PruneReport(
            macs_before=outcome.macs_before,
            macs_after=outcome.macs_after,
            params_before=outcome.params_before,
            params_after=outcome.params_after,
            steps_done=outcome.steps_done,
            layers=layers,
            output_shape_before=tuple(ref.shape) if ref is not None else None,
            output_shape_after=tuple(out.shape) if out is not None else None,
            max_abs_diff=diff,
            output_scale=float(ref.float().abs().max()) if ref is not None else None,
            history=child.pruning_history,
            warnings=sorted({str(w.message) for w in caught}),
            attention=outcome.attention,
        )
        if latency:
            from ..utils.latency import check_latency

            check_cancel(cancel)
            progress(prune_end + 0.05, "Timing the original and the pruned model…")
            # the output check has just run both models on these inputs: the warm-up
            report.latency = check_latency(
                self.model, pruned, self.example_inputs, warmup_rounds=0, cancel=cancel
            )
        if eval_data is not None:
            check_cancel(cancel)
            progress(0.7, "Evaluating the original model…")
            report.metrics_before = self.evaluate(
                eval_data, cancel=cancel,
                progress=_stage(progress, 0.7, 0.81, "evaluating the original model"))
            progress(0.82, "Evaluating the pruned model…")
            report.metrics_after = child.evaluate(
                eval_data, reference=self.model, cancel=cancel,
                progress=_stage(progress, 0.82, 0.93, "evaluating the pruned model"))
        check_cancel(cancel)
        progress(0.95, "Pruned")
        return PruneResult(report, child)

    # ------------------------------------------------------------------ data

    def model_facts(self) -> Any:
        """What engine.data needs to know to preprocess images for this model."""
        from ..data import ModelFacts

        return ModelFacts(source=self.source or None, arch=self.arch, model=self.model,
                          example_inputs=self.example_inputs)

    def open_data(self, path: str, **options: Any) -> Any:
        """engine.data.open_data with this model's facts (its preprocessing by default);
        `options` are open_data's (preprocessing=, overrides=, tokenizer=, seq_len=)."""
        from ..data import open_data

        return open_data(path, model_facts=self.model_facts(), **options)

    def prepare_data(self, options: Any) -> Any:
        """engine.data.prepare_data: the user's DataOptions -> RunData (calibration and
        evaluation sets), preprocessed for this model; the same split in every front end."""
        from ..data import prepare_data

        return prepare_data(options, self.model_facts())

    @staticmethod
    def calibration(run_data: Any) -> Calibration | None:
        """The data calibration (engine.plan.calibration) over the run's calibration set."""
        if run_data is None or run_data.calibration is None:
            return None
        from ..plan.calibration import data_calibration

        return data_calibration(run_data.calibration_loader(),
                                description=run_data.calibration.path)

    # ------------------------------------------------------------------ evaluate

    def evaluate(
        self,
        data: Any,
        *,
        reference: Any = None,
        progress: ProgressFn = no_progress,
        cancel: CancelFn = never_cancel,
    ) -> Any:
        """Metrics of this model on `data` (batches); `reference`: agreement/KL to it."""
        from .evaluation import evaluate_model

        return evaluate_model(
            self.model, data, reference=reference, progress=progress, cancel=cancel
        )

    # ------------------------------------------------------------------ export

    def export(
        self,
        path: str,
        fmt: str | None = None,
        *,
        opset: int = 17,
        dynamic_batch: bool = True,
        progress: ProgressFn = no_progress,
        cancel: CancelFn = never_cancel,
    ) -> ExportReport:
        """Write this model to `path` and validate the file, whatever the format."""
        return export_validated(
            self.model,
            self.example_inputs,
            path,
            fmt,
            source=self.source,
            arch=self.arch,
            history=self.pruning_history,
            input_spec=self.input_spec,
            opset=opset,
            dynamic_batch=dynamic_batch,
            progress=progress,
            cancel=cancel,
        )

    # ------------------------------------------------------------------ helpers

    def _output(self) -> Any:
        import torch

        from ..io import call_with

        with torch.no_grad():
            return call_with(self.model, self.example_inputs)




def layer_widths(model: Any, graph: Any) -> dict[str, LayerWidth]:
    """name -> LayerWidth for every module with own parameters or a node in `graph`.

    Widths come from the graph's pruning functions (the engine's function registry),
    so every layer family the engine can prune reports its real channel count.
    """
    from torch import nn

    in_graph = {id(n.module) for n in graph.nodes if isinstance(n.module, nn.Module)}
    rows: dict[str, LayerWidth] = {}
    for name, m in model.named_modules():
        own = sum(p.numel() for p in m.parameters(recurse=False))
        if not own and id(m) not in in_graph:
            continue
        known = id(m) in in_graph
        rows[name] = LayerWidth(
            type(m).__name__,
            graph.get_in_channels(m) if known else None,
            graph.get_out_channels(m) if known else None,
            own,
        )
    return rows


def _stage(progress: ProgressFn, start: float, end: float, what: str) -> ProgressFn:
    """A per-batch stage on (start, end] of the bar, its messages led by `what`: the
    first batch lands above `start`, so the stage's opening message stays below it."""
    scaled = sub_progress(progress, start, end)

    def report(fraction: float, message: str) -> None:
        scaled(fraction, f"{what}: {message}" if message else what)

    return report


def _run_once(model: Any, inputs: Any, spec: str, guessed: bool) -> Any:
    import torch

    from ..io import call_with
    from ..io.errors import short_reason

    try:
        with torch.no_grad():
            return call_with(model, inputs)
    except Exception as exc:
        raise InputsDoNotRun(
            f"the model does not run on example inputs {spec}: {type(exc).__name__}: "
            f"{short_reason(exc)}; give the input shape it expects",
            spec,
            guessed,
        ) from None


def describe_inputs(inputs: Any) -> str:
    """An input spec string for example inputs ("1,3,224,224"), or a best-effort label."""
    from ..io.input_spec import InputSpec

    try:
        return InputSpec.from_inputs(inputs).to_string()
    except Exception:
        shape = getattr(inputs, "shape", None)
        return ",".join(str(d) for d in shape) if shape is not None else type(inputs).__name__


__all__ = ["Session", "Cancelled", "ModelLoadError", "layer_widths"]
