"""Plain-data reports of the workflow: what a front end shows or prints as JSON.

No torch objects inside (except `PruneResult.session`, the pruned copy to keep):
reports cross threads and become JSON as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerWidth:
    """A layer's channel widths as the engine's pruners see them (None: not prunable there)."""

    kind: str  # module class name
    in_channels: int | None
    out_channels: int | None
    params: int  # own parameters (not its children's)


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

    @property
    def changed(self) -> bool:
        return (self.in_before, self.out_before, self.params_before) != (
            self.in_after,
            self.out_after,
            self.params_after,
        )

    def widths_dict(self) -> dict[str, Any]:
        """The CLI's JSON row: name and in/out widths before and after."""
        return {
            "name": self.name,
            "in_before": self.in_before,
            "in_after": self.in_after,
            "out_before": self.out_before,
            "out_after": self.out_after,
        }


@dataclass
class PruneReport:
    """Everything a prune measured: counts, widths, the output check, metrics, latency."""

    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    steps_done: int
    layers: list[LayerChange]  # every layer with parameters, changed or not
    output_shape_before: tuple[int, ...] | None
    output_shape_after: tuple[int, ...] | None
    max_abs_diff: float | None  # pruned vs original output on the example input
    output_scale: float | None = None  # max |original output|: the scale of max_abs_diff
    metrics_before: Any = None  # engine.evaluate Metrics on the evaluation data, or None
    metrics_after: Any = None
    latency: Any = None  # engine.utils.latency.LatencyCheck, or None (not asked for)
    history: list[Any] = field(default_factory=list)  # pruning history, plain lists
    warnings: list[str] = field(default_factory=list)  # engine warnings during the run
    # engine.families.report.AttentionReport: attention layers pruned / total and the lock
    # reasons of the rest (None: the model has no recognised attention)
    attention: Any = None

    @property
    def changed_layers(self) -> list[LayerChange]:
        """Layers whose in/out width changed (what the CLI lists)."""
        return [
            c for c in self.layers if (c.in_before, c.out_before) != (c.in_after, c.out_after)
        ]


@dataclass
class PruneResult:
    """A prune's report and the pruned copy (a Session) the user may keep or export."""

    report: PruneReport
    session: Any  # engine.workflow.Session of the pruned copy


@dataclass
class ExportReport:
    """A written file read back the way a user would, outputs compared to the model's.

    Every format is validated: ONNX through ONNX Runtime (with onnx.checker), .pt/.pt2/
    safe checkpoints by reloading them with safe readers and running them.
    """

    format: str  # "onnx" | "pt2" | "pytorch" | "safe"
    path: str
    file_size: int
    reloaded: bool
    outputs_match: bool
    max_abs_diff: float | None
    tolerance: float
    errors: list[str] = field(default_factory=list)
    onnx: Any = None  # engine.io.ValidationReport for ONNX (exporter, opset, tensors)

    @property
    def ok(self) -> bool:
        return self.reloaded and self.outputs_match and not self.errors

    @property
    def problem(self) -> str | None:
        """One line saying why the written file is not usable, or None when it is."""
        if self.ok:
            return None
        what = "ONNX file" if self.format == "onnx" else "file"
        problems = "; ".join(self.errors) or f"max abs diff {self.max_abs_diff}"
        return f"{what} written but failed validation: {problems}"

    def to_dict(self) -> dict[str, Any]:
        """The CLI's `validation` JSON object (ONNX: the full ValidationReport)."""
        if self.onnx is not None:
            data = self.onnx.to_dict()
            data["path"] = self.path
            data["format"] = "onnx"
        else:
            data = {k: v for k, v in asdict(self).items() if k != "onnx"}
        if self.problem:
            data["problem"] = self.problem
        return data
