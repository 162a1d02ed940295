"""Sensitivity scan: how much each group (or user scope) can lose, measured on data.

Each scan unit (a coupled channel group, or one of the plan's user scopes) is pruned
ALONE at a few ratios and the pruned model is compared with the original on a fixed
set of calibration batches (KL divergence and top-1 agreement to the original's
outputs; accuracy when the batches carry labels). The curves feed the planner
(`planner.py`) and the GUI's heat overlay.

Why it is exact and fast:
* which channels go comes from the previewer's plan cache (`Previewer`): the graph is
  traced once and each group ranked once per criterion; a point never re-traces;
* the MACs/params of each point are the exact preview's;
* the fidelity is measured on ONE real-weight copy of the model: the planned groups
  are removed by the real pruning functions, the batches run, and the copy's tensors
  and attributes are restored (the previewer's `_Shadow`, on real weights);
* the unchanged prefix is skipped: modules whose forward finished before the first
  touched layer starts cannot depend on the change, so they replay their outputs
  recorded on the original (within `prefix_cache_bytes`).

Results are cached on disk per model digest + data digest + criterion + settings
(atomic write), and the scan reports progress and can be cancelled between points.

`units="isomorphic"` scans one unit per isomorphic class instead of per group: the
groups with the same topology signature (`engine.pruner.scopes.signature`, the one the
pruner's `isomorphic=True` ranking pools by) are pruned TOGETHER, each at the ratio, and
the class curve stands for every member (`ScanResult.curve(member)`,
`ScanResult.group_curves()`). ResNet-50 has 37 groups but far fewer classes, so the
scan costs a fraction of the points; the price is that the planner can only move a
class as a whole (its members keep one ratio).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batch import Batch, as_batch
from ..function.attributes import AttributeRefresher
from ..graph import DependencyGraph, Group
from ..io.input_spec import call_with
from ..pruner.scopes import signature
from .apply import Cancelled
from .calibration import Calibration
from .preview import Previewer, _Shadow
from .schema import PlanError, PruningPlan, UserScope
from .validation import validate_plan

SCAN_VERSION = 1
UNIT_MODES = ("groups", "isomorphic")
CHANCE_FACTOR = 2.0  # stop_at_chance: a unit whose agreement is <= 2/classes is done
MAX_SCAN_BYTES = 64 << 20  # a scan of thousands of groups is a few MB
DEFAULT_RATIOS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
Progress = Callable[[int, int, str], None]


# ------------------------------------------------------------------ results
@dataclasses.dataclass
class ScanPoint:
    """One unit pruned alone at `ratio` (exact channels, MACs and params; measured fidelity)."""

    ratio: float
    channels_after: int
    macs: int | float
    params: int
    kl: float  # mean KL(original || pruned) per sample, nats
    agreement: float  # fraction of samples whose top-1 matches the original's
    accuracy: float | None = None  # with labels


@dataclasses.dataclass
class ScanCurve:
    """A unit's curve: `name` is the group's root layer, the scope's name, or (isomorphic
    class) its first member's root layer followed by the member count."""

    name: str
    kind: str  # "group" | "scope" | "class"
    layers: list[str]  # scope layers, the group's root layer, or the class members' roots
    channels: int
    points: list[ScanPoint]

    def loss(self, i: int, metric: str = "kl") -> float:
        """Fidelity lost at point i (0 = unpruned) on the planner's metric."""
        if i == 0:
            return 0.0
        p = self.points[i - 1]
        return p.kl if metric == "kl" else 1.0 - p.agreement


@dataclasses.dataclass
class ScanResult:
    key: str
    criterion: str
    options: dict[str, Any]
    ratios: list[float]
    samples: int
    macs_before: int | float
    params_before: int
    accuracy_before: float | None
    curves: list[ScanCurve]
    seconds: float = 0.0
    points_evaluated: int = 0
    base_plan: dict[str, Any] = dataclasses.field(default_factory=dict)  # criterion, round_to..
    units: str = "groups"  # "groups" | "isomorphic" (older files: groups)
    skipped_points: int = 0  # stop_at_chance: points not measured (unit already at chance)
    version: int = SCAN_VERSION

    def curve(self, name: str) -> ScanCurve:
        """The unit's curve; a member group's root layer finds its isomorphic class's."""
        for c in self.curves:
            if c.name == name:
                return c
        for c in self.curves:
            if c.kind == "class" and name in c.layers:
                return c
        raise KeyError(name)

    def group_curves(self) -> dict[str, ScanCurve]:
        """Per group root layer (and per scope name): the curve that describes it, for
        per-group overlays. Class curves repeat for each member, so do not sum these."""
        out: dict[str, ScanCurve] = {}
        for c in self.curves:
            if c.kind == "class":
                out.update({root: c for root in c.layers})
            else:
                out[c.name] = c
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScanResult:
        if not isinstance(d, dict) or d.get("version") != SCAN_VERSION:
            raise PlanError("not a scan file of this Arborist version (run `arborist scan` again)")
        try:
            curves = [ScanCurve(**{**c, "points": [ScanPoint(**p) for p in c["points"]]})
                      for c in d["curves"]]
            return cls(**{**d, "curves": curves})
        except (KeyError, TypeError) as e:
            raise PlanError(f"scan file is damaged: {e}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        from ..io.atomic import atomic_write

        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScanResult:
        """Read a scan file (regular files only, at most MAX_SCAN_BYTES); PlanError if bad."""
        from ..io.bounded import BoundedInputError, read_regular_file

        try:
            raw = read_regular_file(path, max_bytes=MAX_SCAN_BYTES, what="scan file")
            text = raw.decode("utf-8")
        except FileNotFoundError:
            raise PlanError(f"scan file {path} does not exist") from None
        except BoundedInputError as e:
            raise PlanError(str(e)) from None
        except (OSError, UnicodeDecodeError) as e:
            raise PlanError(f"cannot read scan file {path}: {e}") from None
        try:
            return cls.from_dict(json.loads(text))
        except (json.JSONDecodeError, RecursionError) as e:
            raise PlanError(f"scan file {path} is not JSON: {e}") from None


# ------------------------------------------------------------------ digests
def model_digest(model: nn.Module) -> str:
    """Structure + weights: a retrained or edited model gets a new scan."""
    h = hashlib.sha256(repr(model).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    return h.hexdigest()[:32]


def data_digest(batches: list[Batch]) -> str:
    h = hashlib.sha256()
    for b in batches:
        for t in _leaves(b.inputs) + ([b.labels] if b.labels is not None else []):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def _leaves(inputs: Any) -> list[torch.Tensor]:
    if isinstance(inputs, dict):
        return [v for v in inputs.values() if isinstance(v, torch.Tensor)]
    return [inputs] if isinstance(inputs, torch.Tensor) else []


def default_cache_dir() -> Path:
    return Path(os.environ.get("ARBORIST_CACHE", Path.home() / ".cache" / "arborist")) / "scans"


# ------------------------------------------------------------------ units
@dataclasses.dataclass
class ScanUnit:
    name: str
    kind: str
    layers: list[str]
    channels: int

    def plan_at(self, base: PruningPlan, ratio: float) -> PruningPlan:
        """The base plan with only this unit pruned, at `ratio` (a class: each member at
        `ratio`, ranked in its own group, which is the plan the planner writes for it)."""
        common = dict(pruning_ratio=0.0, layer_ratios={}, group_ratios={}, scopes=[],
                      global_pruning=False, isomorphic=False, iterative_steps=1)
        if self.kind == "scope":
            common["scopes"] = [UserScope(list(self.layers), ratio, self.name)]
        elif self.kind == "class":
            common["group_ratios"] = {root: ratio for root in self.layers}
        else:
            common["group_ratios"] = {self.name: ratio}
        return base.replace(**common)


class ScanPreviewer(Previewer):
    """A Previewer that also hands out the planned groups (to prune real weights with)."""

    def planned_groups(self, plan: PruningPlan) -> list[Group]:
        validate_plan(plan, self.model, modules=self._modules)
        pruner = self._planning_pruner(plan, self._groups_for(plan))
        with self._gradients(plan):
            return pruner.planned()[1]

    def group_roots(self, plan: PruningPlan) -> list[tuple[str, Group]]:
        out = []
        for g in self._groups_for(plan):
            m = g[0].dep.target.module
            out.append((self.dg.module2name.get(m, g[0].dep.target.name), g))
        return out


def scan_units(previewer: ScanPreviewer, base: PruningPlan,
               mode: str = "groups") -> list[ScanUnit]:
    """The base plan's user scopes, then every other prunable group by root layer
    (`mode="groups"`) or every isomorphic class of them (`mode="isomorphic"`)."""
    if mode not in UNIT_MODES:
        raise ValueError(f"scan units {mode!r}: choose one of {', '.join(UNIT_MODES)}")
    units: list[ScanUnit] = []
    modules = previewer._modules
    scoped: set[int] = set()
    for i, s in enumerate(base.scopes):
        ids = {id(sub) for n in s.layers for sub in modules[n].modules()}
        scoped |= ids
        units.append(ScanUnit(s.name or f"scope{i}", "scope", list(s.layers), 0))
    classes: dict[tuple, list[str]] = {}
    width: dict[tuple, int] = {}
    for root, group in previewer.group_roots(base):
        if any(it.dep.kind == "out" and id(it.dep.target.module) in scoped for it in group):
            continue
        if mode == "groups":
            units.append(ScanUnit(root, "group", [root], len(group[0].idxs)))
        else:
            sig = signature(group)
            classes.setdefault(sig, []).append(root)
            width[sig] = len(group[0].idxs)
    for sig, roots in classes.items():  # first-seen order, like the pruner's class ids
        name = roots[0] if len(roots) == 1 else f"{roots[0]} (+{len(roots) - 1} isomorphic)"
        units.append(ScanUnit(name, "class", roots, width[sig]))
    return units


# ------------------------------------------------------------------ evaluation
class _NoStates(dict):
    """Never stores: real weights differ per index set, not only per count."""

    def __len__(self) -> int:
        return 1 << 62


class _RealShadow(_Shadow):
    """The previewer's prune-and-restore copy, holding real weights (fidelity runs)."""

    def __init__(self, model: nn.Module, example_inputs: Any) -> None:
        import copy

        memo: dict[int, Any] = {}
        self.model = copy.deepcopy(model, memo)
        self.model.eval().requires_grad_(False)
        self.refresh = AttributeRefresher(self.model)
        self.copy_of = memo
        self.inputs = example_inputs
        self._tensors = list(self.model.parameters()) + list(self.model.buffers())
        self.modules = dict(self.model.named_modules())
        self._module_objs = list(self.model.modules())
        self._states = _NoStates()


class _Prefix:
    """Execution order of the original's modules and replayable outputs of early ones."""

    def __init__(self, model: nn.Module, batches: list[Batch], budget_bytes: int) -> None:
        self.start: dict[int, int] = {}
        self.end: dict[int, int] = {}
        self.calls: dict[int, int] = {}
        self.bytes: dict[int, int] = {}
        self.names = {id(m): n for n, m in model.named_modules()}
        self.parent: dict[int, int] = {}
        for m in model.modules():
            for c in m.children():
                self.parent.setdefault(id(c), id(m))
        self.budget = budget_bytes
        self.cached: dict[int, list[Any]] = {}
        self._record_order(model, batches[0]) if batches else None

    def _record_order(self, model: nn.Module, batch: Batch) -> None:
        clock = [0]
        handles = []

        def pre(m: nn.Module, _args: Any) -> None:
            self.calls[id(m)] = self.calls.get(id(m), 0) + 1
            self.start.setdefault(id(m), clock[0])
            clock[0] += 1

        def post(m: nn.Module, _args: Any, out: Any) -> None:
            self.end[id(m)] = clock[0]
            clock[0] += 1
            self.bytes[id(m)] = sum(t.numel() * t.element_size() for t in _tensors_in(out))

        for m in model.modules():
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
        try:
            with torch.inference_mode():
                call_with(model, batch.inputs)
        finally:
            for h in handles:
                h.remove()

    def frontier(self, touched: set[int]) -> list[int]:
        """Maximal modules finished before the first touched module starts (called once)."""
        starts = [self.start[t] for t in touched if t in self.start]
        if not starts:
            return []
        first = min(starts)
        done = [m for m in self.end if self.end[m] < first and self.calls.get(m) == 1
                and m not in touched]
        done_set = set(done)
        return [m for m in done if self.parent.get(m) not in done_set]

    def cacheable(self, frontiers: list[list[int]], batch_count: int) -> set[int]:
        """The modules whose outputs are kept: latest frontiers first, within the budget."""
        keep: set[int] = set()
        used = 0
        order = sorted(frontiers, key=lambda f: -max((self.end[m] for m in f), default=-1))
        for f in order:
            extra = sum(self.bytes.get(m, 0) * batch_count for m in f if m not in keep)
            if used + extra > self.budget:
                continue
            keep.update(f)
            used += extra
        return keep

    def record(self, model: nn.Module, batches: list[Batch], modules: set[int]) -> list[Any]:
        """Original outputs per batch (returned) and of `modules` (kept for replay)."""
        self.cached = {m: [] for m in modules}
        handles = []
        for m in model.modules():
            if id(m) in modules:
                handles.append(m.register_forward_hook(
                    lambda mod, _a, out: self.cached[id(mod)].append(_detach(out))))
        outs = []
        try:
            with torch.inference_mode():
                for b in batches:
                    outs.append(call_with(model, b.inputs))
        finally:
            for h in handles:
                h.remove()
        return outs


def _tensors_in(out: Any) -> list[torch.Tensor]:
    from torch.utils._pytree import tree_flatten

    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def _detach(out: Any) -> Any:
    from torch.utils._pytree import tree_map

    return tree_map(lambda t: t.detach().clone() if isinstance(t, torch.Tensor) else t, out)


def _clone(out: Any) -> Any:
    from torch.utils._pytree import tree_map

    return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, out)


def logits_of(out: Any) -> torch.Tensor:
    """The tensor fidelity is measured on: the output, HF `.logits`, or the first tensor."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits") and isinstance(out.logits, torch.Tensor):
        return out.logits
    leaves = [t for t in _tensors_in(out) if t.is_floating_point()]
    if not leaves:
        raise ValueError("the model returned no floating-point tensor to measure fidelity on")
    return leaves[0]


@dataclasses.dataclass
class Fidelity:
    kl: float
    agreement: float
    accuracy: float | None


def fidelity(reference: list[torch.Tensor], outputs: list[torch.Tensor],
             labels: list[torch.Tensor | None]) -> Fidelity:
    """KL(reference || output) per sample over the last dim, top-1 agreement, accuracy."""
    kl_sum, agree, correct, n, n_lab = 0.0, 0, 0, 0, 0
    for ref, out, y in zip(reference, outputs, labels, strict=True):
        ref = ref.float().reshape(ref.shape[0], -1, ref.shape[-1]) if ref.dim() > 1 else \
            ref.float().reshape(-1, 1, 1)
        out = out.float().reshape(ref.shape)
        kl = F.kl_div(F.log_softmax(out, -1), F.log_softmax(ref, -1), log_target=True,
                      reduction="none").sum(-1).mean(-1)
        kl_sum += float(kl.sum())
        top_o, top_r = out.argmax(-1), ref.argmax(-1)
        agree += int((top_o == top_r).all(-1).sum())
        n += ref.shape[0]
        if y is not None and ref.shape[1] == 1:
            correct += int((top_o[:, 0] == y.reshape(-1).to(top_o.device)).sum())
            n_lab += ref.shape[0]
    return Fidelity(kl_sum / max(n, 1), agree / max(n, 1), correct / n_lab if n_lab else None)


def take_batches(data: Iterable[Any], max_samples: int) -> list[Batch]:
    """A fixed list of at most `max_samples` samples (the last batch cut to fit)."""
    out: list[Batch] = []
    seen = 0
    for item in data:
        b = as_batch(item)
        n = len(b)
        if seen + n > max_samples:
            k = max_samples - seen
            inputs = ({kk: v[:k] for kk, v in b.inputs.items()} if isinstance(b.inputs, dict)
                      else b.inputs[:k])
            b = Batch(inputs, None if b.labels is None else b.labels[:k])
            n = k
        if n:
            out.append(b)
        seen += n
        if seen >= max_samples:
            break
    if not out:
        raise ValueError("the calibration data yielded no samples")
    return out


# ------------------------------------------------------------------ the scan
@dataclasses.dataclass
class ScanSettings:
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    max_samples: int = 256
    prefix_cache_bytes: int = 1 << 30
    skip_prefix: bool = True
    units: str = "groups"  # "isomorphic": one unit per isomorphic class of groups
    # skip a unit's higher ratios once its agreement is at ~chance (<= CHANCE_FACTOR /
    # classes): deeper cuts of it cannot be better and the planner would never pick them
    stop_at_chance: bool = False


def scan_key(model: nn.Module, batches: list[Batch], base: PruningPlan,
             settings: ScanSettings) -> str:
    parts = {
        "v": SCAN_VERSION, "model": model_digest(model), "data": data_digest(batches),
        "importance": base.importance, "options": base.importance_options,
        "round_to": base.round_to, "max": base.max_pruning_ratio,
        "ignored": sorted(base.ignored_layers), "scopes": [s.to_dict() for s in base.scopes],
        "ratios": list(settings.ratios), "units": settings.units,
        "stop_at_chance": settings.stop_at_chance,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def sensitivity_scan(
    model: nn.Module,
    example_inputs: Any,
    data: Iterable[Any],
    base: PruningPlan | None = None,
    *,
    settings: ScanSettings | None = None,
    dependency_graph: DependencyGraph | None = None,
    previewer: ScanPreviewer | None = None,
    calibration: Calibration | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ScanResult:
    """Prune each unit alone at each ratio and measure fidelity; never modifies `model`.

    `base` supplies the criterion, round_to, max ratio, ignored layers and user scopes
    (its ratios are ignored). `cache_dir=None` uses ~/.cache/arborist/scans; pass
    `cache_dir=False`-like "" to disable. Raises `Cancelled` when `cancel()` turns True.
    """
    base = base or PruningPlan()
    settings = settings or ScanSettings()
    if settings.units not in UNIT_MODES:
        raise ValueError(f"scan units {settings.units!r}: choose one of {', '.join(UNIT_MODES)}")
    batches = take_batches(data, settings.max_samples)
    key = scan_key(model, batches, base, settings)
    cache_path = None
    if cache_dir != "":
        cache_path = Path(cache_dir or default_cache_dir()) / f"{key}.json"
        if cache_path.is_file():
            try:
                return ScanResult.load(cache_path)
            except PlanError:
                pass  # damaged or old: scan again and overwrite
    t0 = time.perf_counter()
    model.eval()
    pv = previewer or ScanPreviewer(model, example_inputs, dependency_graph, calibration)
    units = scan_units(pv, base, settings.units)
    # the points to evaluate: exact channels and MACs first (cheap), then fidelity
    todo: list[tuple[int, float, list[Group], Any]] = []
    for ui, unit in enumerate(units):
        last = None
        for r in settings.ratios:
            if r > base.max_pruning_ratio + 1e-9:
                continue
            plan = unit.plan_at(base, r)
            groups = pv.planned_groups(plan)
            if not groups:
                continue
            removed = tuple(len(g[0].idxs) for g in groups)
            if removed == last:
                continue  # round_to/max ratio: same channels as the previous ratio
            last = removed
            todo.append((ui, r, groups, pv.preview(plan)))
    shadow = _RealShadow(model, example_inputs)
    prefix = _Prefix(model, batches, settings.prefix_cache_bytes if settings.skip_prefix else 0)
    touched_of = [{id(it.dep.target.module) for g in groups for it in g}
                  for _, _, groups, _ in todo]
    fronts = [prefix.frontier(t) for t in touched_of] if settings.skip_prefix else []
    keep = prefix.cacheable(fronts, len(batches)) if settings.skip_prefix else set()
    reference = [logits_of(o) for o in prefix.record(model, batches, keep)]
    labels = [b.labels for b in batches]
    acc0 = fidelity(reference, reference, labels).accuracy
    points: dict[int, list[ScanPoint]] = {i: [] for i in range(len(units))}
    chance = _chance(reference) if settings.stop_at_chance else None
    at_chance: set[int] = set()
    skipped = 0
    for k, (ui, r, groups, prev) in enumerate(todo):
        if cancel is not None and cancel():
            raise Cancelled(f"scan cancelled after {k} of {len(todo)} points")
        if ui in at_chance:
            skipped += 1
            continue
        front = fronts[k] if fronts and all(m in keep for m in fronts[k]) else []

        def measure(copy_model: nn.Module, front: list[int] = front) -> list[torch.Tensor]:
            return _run(copy_model, batches, shadow, prefix, front)

        outs = shadow.measure_pruned(groups, measure)
        fid = fidelity(reference, outs, labels)
        root = prev.groups[0] if prev.groups else None
        points[ui].append(ScanPoint(
            r, root.channels_after if root is not None else 0, prev.macs_after,
            prev.params_after, fid.kl, fid.agreement, fid.accuracy))
        if chance is not None and fid.agreement <= chance:
            at_chance.add(ui)
        if progress is not None:
            progress(k + 1, len(todo), f"{units[ui].name} at {r:g}: agreement "
                     f"{fid.agreement:.3f}")
    curves = [ScanCurve(u.name, u.kind, u.layers, u.channels, points[i])
              for i, u in enumerate(units) if points[i]]
    result = ScanResult(key, base.importance, dict(base.importance_options),
                        list(settings.ratios), sum(len(b) for b in batches), pv.macs_before,
                        pv.params_before, acc0, curves, time.perf_counter() - t0,
                        len(todo) - skipped, base.replace(source=None).to_dict(),
                        settings.units, skipped)
    if cache_path is not None:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            result.save(cache_path)
        except OSError:
            pass  # a read-only cache dir must not cost the user the scan
    return result


def _chance(reference: list[torch.Tensor]) -> float | None:
    """Agreement at ~chance: CHANCE_FACTOR / classes (None for a single-output model)."""
    classes = reference[0].shape[-1] if reference and reference[0].dim() > 1 else 1
    return CHANCE_FACTOR / classes if classes > 1 else None


def _run(copy_model: nn.Module, batches: list[Batch], shadow: _RealShadow, prefix: _Prefix,
         front: list[int]) -> list[torch.Tensor]:
    """The pruned copy's outputs, with the unchanged prefix replayed from the original."""
    stubbed = []
    for orig_id in front:
        m = _copy_module(shadow, orig_id)
        if m is not None:
            stubbed.append((m, prefix.cached[orig_id]))
    outs = []
    try:
        with torch.inference_mode():
            for i, b in enumerate(batches):
                for m, cached in stubbed:
                    m.forward = (lambda *_a, _v=cached[i], **_k: _clone(_v))  # type: ignore
                outs.append(logits_of(call_with(copy_model, b.inputs)))
    finally:
        for m, _ in stubbed:
            m.__dict__.pop("forward", None)
    return outs


def _copy_module(shadow: _RealShadow, orig_id: int) -> nn.Module | None:
    m = shadow.copy_of.get(orig_id)
    return m if isinstance(m, nn.Module) else None
