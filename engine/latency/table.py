"""Per-layer latency lookup table (NetAdapt / HALP style), measured on the device.

Every leaf module the model's forward runs is timed ALONE, rebuilt at a few widths
(input and output channels at 25/50/75/100 %), on inputs shaped like the ones it
sees in the model. A pruned model's latency is then predicted from the widths its
layers end up with (bilinear interpolation in the table), corrected by an affine
fit of whole-model measurements against table sums (the unpruned model, uniformly
pruned copies at 25/50/75 % kept width and two seeded mixed-width copies, `calibrate`):
the fit carries what layers timed alone cannot see (functional adds/cats, dispatch
overhead, cache effects, page faults of large activations); its intercept is what a
pure scale factor got wrong (narrow models were under-predicted by 7-20 %,
docs/benchmarks.md).

Why per leaf and not per group: one table serves every plan (any ratio of any
group), and layers of identical shape are timed once (ResNet blocks repeat).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io.input_spec import call_with
from .runners import Runner, runner_for

GRID: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
# 3: the runner (cpu / ort / cuda) and its versions are in the cache key
TABLE_VERSION = 3


@dataclasses.dataclass
class LeafShape:
    """What a leaf sees in one forward: its input shape and its width variables."""

    name: str
    type: str
    input_shape: list[int]
    in_width: int  # channels of its input (dim 1, or the last dim for Linear/LayerNorm)
    out_width: int  # its own output channels (= in_width for per-channel/param-free ops)


@dataclasses.dataclass
class LeafEntry:
    """Measured ms at grid points: `ms[i][j]` at in GRID[i], out GRID[j] (1-var: one row)."""

    name: str
    type: str
    in_width: int
    out_width: int
    two_var: bool
    ms: list[list[float]]

    def at(self, in_frac: float, out_frac: float) -> float:
        if not self.two_var:
            return _interp1(self.ms[0], in_frac)
        rows = [_interp1(row, out_frac) for row in self.ms]
        return _interp1(rows, in_frac)


def _interp1(values: list[float], frac: float) -> float:
    """Linear in the grid; below 25 % linear towards the 25 % point's half (never < 0)."""
    frac = min(max(frac, 0.0), 1.0)
    if frac <= GRID[0]:
        lo = values[0] - (values[1] - values[0])  # extrapolate down to 0 width
        return max(values[0] * 0.5, lo + (values[0] - lo) * frac / GRID[0])
    for k in range(1, len(GRID)):
        if frac <= GRID[k]:
            t = (frac - GRID[k - 1]) / (GRID[k] - GRID[k - 1])
            return values[k - 1] + t * (values[k] - values[k - 1])
    return values[-1]


@dataclasses.dataclass
class CalibrationPoint:
    """One whole model timed in the calibration rounds, next to the table's raw sum for it."""

    label: str
    table_ms: float  # sum of the table entries at this model's widths (unscaled)
    measured_ms: float  # best-of whole-model time, interleaved with the other points


@dataclasses.dataclass
class AffineFit:
    """measured ~= slope * table_sum + intercept (least squares over calibration points)."""

    slope: float
    intercept: float

    def __call__(self, table_ms: float) -> float:
        return self.slope * table_ms + self.intercept


def fit_calibration(points: list[CalibrationPoint]) -> AffineFit | None:
    """Least-squares line through the points; None when it cannot be trusted.

    Untrusted: fewer than two distinct table sums, or a non-positive slope (then a
    narrower model would be predicted slower), or a line that goes negative at half the
    smallest sum (a steep intercept extrapolates badly below the calibrated range).
    """
    xs = [p.table_ms for p in points]
    ys = [p.measured_ms for p in points]
    if len(points) < 2 or max(xs) - min(xs) <= 1e-12 * max(xs):
        return None
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    fit = AffineFit(slope, my - slope * mx)
    if slope <= 0 or fit(0.5 * min(xs)) <= 0:
        return None
    return fit


@dataclasses.dataclass
class LatencyTable:
    """The table for one model on one device and input shape, plus the whole-model time."""

    device: str
    input_spec: str
    threads: int
    entries: dict[str, LeafEntry]
    full_model_ms: float  # measured best-of of the whole, unpruned model
    table_full_ms: float  # sum of the entries at full width
    seconds: float = 0.0
    version: int = TABLE_VERSION
    calibration: list[CalibrationPoint] = dataclasses.field(default_factory=list)
    fit: AffineFit | None = None  # from `calibration`; None: a pure scale factor

    @property
    def scale(self) -> float:
        return self.full_model_ms / self.table_full_ms if self.table_full_ms > 0 else 1.0

    def correct(self, table_ms: float) -> float:
        """Predicted ms for a raw table sum.

        With a fit: the fitted line, rescaled so the unpruned model predicts exactly
        `full_model_ms` (which `recalibrate` re-times when the machine's load drifts;
        the fit's shape is kept, its level follows). Without: the pure scale factor.
        """
        if self.fit is None:
            return table_ms * self.scale
        at_full = self.fit(self.table_full_ms)
        if at_full <= 0:
            return table_ms * self.scale
        return max(self.fit(table_ms), 0.0) * self.full_model_ms / at_full

    def raw_sum(self, shapes: list[LeafShape]) -> float:
        """Sum of the entries at these widths, uncorrected (ms of the layers alone)."""
        total = 0.0
        for s in shapes:
            e = self.entries.get(s.name)
            if e is None:
                continue  # a leaf the original never ran (or zero-size): nothing to add
            total += e.at(s.in_width / max(e.in_width, 1), s.out_width / max(e.out_width, 1))
        return total

    def predict_shapes(self, shapes: list[LeafShape]) -> float:
        """Predicted ms of a model whose leaves see `shapes` (names as in the original)."""
        return self.correct(self.raw_sum(shapes))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatencyTable:
        entries = {k: LeafEntry(**v) for k, v in d["entries"].items()}
        points = [CalibrationPoint(**p) for p in d.get("calibration", [])]
        fit = AffineFit(**d["fit"]) if d.get("fit") else None
        return cls(**{**d, "entries": entries, "calibration": points, "fit": fit})

    def save(self, path: str | os.PathLike[str]) -> Path:
        from ..io.atomic import atomic_write

        text = json.dumps(self.to_dict(), allow_nan=False) + "\n"
        return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatencyTable:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


# ---------------------------------------------------------------- shapes
_LAST_DIM = (nn.Linear, nn.LayerNorm, nn.Embedding)


def _width_of(m: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    if isinstance(m, _LAST_DIM) or x.dim() < 2:
        cin = int(x.shape[-1]) if x.dim() else 1
    else:
        cin = int(x.shape[1])
    for attr in ("out_channels", "out_features", "num_features", "normalized_shape"):
        v = getattr(m, attr, None)
        if isinstance(v, int):
            return cin, v
        if isinstance(v, (tuple, list)) and v and isinstance(v[-1], int):
            return cin, int(v[-1])
    return cin, cin


def leaf_shapes(model: nn.Module, inputs: Any) -> list[LeafShape]:
    """Each leaf's input shape and widths in one forward (works on meta copies too)."""
    shapes: list[LeafShape] = []
    names = {id(m): n for n, m in model.named_modules()}
    handles = []

    def hook(m: nn.Module, args: tuple) -> None:
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if x is None:
            return
        cin, cout = _width_of(m, x)
        shapes.append(LeafShape(names[id(m)], type(m).__name__, list(x.shape), cin, cout))

    for m in model.modules():
        if not any(True for _ in m.children()):
            handles.append(m.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            call_with(model, inputs)
    finally:
        for h in handles:
            h.remove()
    return shapes


# ---------------------------------------------------------------- measuring
def _scaled(n: int, frac: float, multiple: int = 1) -> int:
    k = max(1, round(n * frac))
    return max(multiple, int(math.ceil(k / multiple)) * multiple)


def _rebuilt(m: nn.Module, cin: int, cout: int, device: str) -> nn.Module | None:
    """`m` rebuilt with other widths (None: time the original module on narrower input)."""
    if isinstance(m, nn.modules.conv._ConvNd) and not m.transposed:
        depthwise = m.groups > 1 and m.groups == m.in_channels
        groups = cin if depthwise else m.groups
        if depthwise:
            cout = cin * (m.out_channels // m.in_channels)
        new = type(m)(cin, cout, m.kernel_size, m.stride, m.padding, m.dilation, groups,
                      m.bias is not None, m.padding_mode)
    elif isinstance(m, nn.Linear):
        new = nn.Linear(cin, cout, m.bias is not None)
    elif isinstance(m, nn.modules.batchnorm._BatchNorm):
        new = type(m)(cin, m.eps, m.momentum, m.affine, m.track_running_stats)
    elif isinstance(m, nn.LayerNorm):
        new = nn.LayerNorm(cin, m.eps, m.elementwise_affine)
    elif isinstance(m, nn.GroupNorm):
        g = math.gcd(m.num_groups, cin) or 1
        new = nn.GroupNorm(g, cin, m.eps, m.affine)
    else:
        return None
    return new.to(device).eval()


def _two_var(m: nn.Module) -> bool:
    if isinstance(m, nn.modules.conv._ConvNd):
        return not (m.groups > 1 and m.groups == m.in_channels)
    return isinstance(m, nn.Linear)


def _measure_leaf(m: nn.Module, shape: LeafShape, runner: Runner, grid: tuple[float, ...],
                  generator: torch.Generator) -> LeafEntry:
    device = runner.torch_device
    two = _two_var(m)
    last = isinstance(m, _LAST_DIM) or len(shape.input_shape) < 2
    groups = getattr(m, "groups", 1) if two else 1
    rows = []
    for a in grid:
        row = []
        for b in (grid if two else (1.0,)):
            cin = _scaled(shape.in_width, a, groups)
            cout = _scaled(shape.out_width, b, groups) if two else cin
            module = _rebuilt(m, cin, cout, device)
            in_shape = list(shape.input_shape)
            in_shape[-1 if last else 1] = cin
            if module is None:  # param-free (ReLU, pools, dropout): the layer itself
                module = m
            x = torch.randn(in_shape, generator=generator).to(device)
            row.append(runner.time(module, x).best)
        rows.append(row)
    if not two:
        rows = [[r[0] for r in rows]]
    return LeafEntry(shape.name, shape.type, shape.in_width, shape.out_width, two, rows)


def _monotone(ms: list[list[float]]) -> list[list[float]]:
    """Each point at most every point of larger (or equal) widths."""
    out = [list(r) for r in ms]
    for i in range(len(out) - 1, -1, -1):
        for j in range(len(out[i]) - 1, -1, -1):
            if j + 1 < len(out[i]):
                out[i][j] = min(out[i][j], out[i][j + 1])
            if i + 1 < len(out):
                out[i][j] = min(out[i][j], out[i + 1][j])
    return out


def _signature(m: nn.Module, s: LeafShape) -> tuple:
    return (repr(m), tuple(s.input_shape), s.in_width, s.out_width)


def measure_table(
    model: nn.Module,
    inputs: Any,
    *,
    device: str = "cpu",
    runner: Runner | None = None,
    input_spec: str = "",
    grid: tuple[float, ...] = GRID,
    passes: int = 3,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    calibrated: bool = True,
) -> LatencyTable:
    """Time every leaf at the grid widths, and the whole model, in `passes` sweeps.

    `runner` times each leaf and the whole model (default: `runner_for(device)`, e.g.
    ONNX Runtime for device "ort"); the table's `device` is the runner's.

    `calibrated`: then time uniformly pruned copies of the whole model (and two with
    seeded random per-group widths, calibrate.MIXED_SEEDS) and fit the
    correction (engine.latency.calibrate; a few seconds more, the accuracy of pruned
    predictions depends on it).

    Each grid point keeps its best time over the sweeps (a shared machine starves a
    process for hundreds of ms at a time; sweeps spread each point over the run), and the
    table is made monotone (a narrower layer never costs more than a wider one: what
    remains above that is noise)."""
    import copy

    from torch.utils._pytree import tree_map

    runner = runner or runner_for(device)
    device = runner.torch_device
    t0 = time.perf_counter()
    original = model
    model = copy.deepcopy(model).to(device).eval()
    inputs = tree_map(lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, inputs)
    shapes = leaf_shapes(model, inputs)
    modules = dict(model.named_modules())
    gen = torch.Generator().manual_seed(0)
    entries: dict[str, LeafEntry] = {}
    done: dict[tuple, LeafEntry] = {}
    sig_of: dict[str, tuple] = {}
    full_samples: list[float] = []
    for sweep in range(passes):
        swept: set[tuple] = set()  # signatures timed in this sweep
        for k, s in enumerate(shapes):
            if cancel is not None and cancel():
                from ..plan.apply import Cancelled

                raise Cancelled("latency measurement cancelled")
            if s.name in sig_of:
                continue  # a leaf called twice: one entry, counted once per call
            m = modules[s.name]
            sig = sig_of[s.name] = _signature(m, s)
            if sig not in swept:
                new = _measure_leaf(m, s, runner, grid, gen)
                old = done.get(sig)
                done[sig] = new if old is None else dataclasses.replace(
                    new, ms=[[min(a, b) for a, b in zip(r1, r2, strict=True)]
                             for r1, r2 in zip(old.ms, new.ms, strict=True)])
                swept.add(sig)
            if progress is not None:
                progress(sweep * len(shapes) + k + 1, passes * len(shapes),
                         f"sweep {sweep + 1}/{passes}: timed {s.name}")
        sig_of.clear()
        whole = runner.time_call(runner.prepare(model, inputs), min_reps=5, max_reps=20,
                                 budget_s=0.5, max_total_s=5.0)
        full_samples += whole.samples_ms
    for s in shapes:
        e = done[_signature(modules[s.name], s)]
        entries[s.name] = dataclasses.replace(e, name=s.name, ms=_monotone(e.ms))
    full_ms = min(full_samples)
    table = LatencyTable(runner.device, input_spec, torch.get_num_threads(), entries, full_ms,
                         0.0)
    table.table_full_ms = sum(entries[s.name].at(1.0, 1.0) for s in shapes if s.name in entries)
    if calibrated:
        from .calibrate import calibrate

        table = calibrate(table, original, inputs, runner=runner)
    if hasattr(runner, "clear"):
        runner.clear()
    table.seconds = time.perf_counter() - t0
    return table
