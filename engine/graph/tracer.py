"""Run the model once and record how channels flow between its tensors.

The model runs under a `TorchDispatchMode`, so every ATen op is seen with its
real arguments and outputs, whether it came from an nn.Module, a functional
call (`F.linear(x, self.qkv.weight)`), or a raw parameter used in forward.
Each op is handed to a rule (see `rules.py`) that reads the input annotations
and writes the output annotations, uniting or locking slots as it goes. Works on
any device, including `meta`, because only shapes are needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..utils.meta_kernels import MetaKernels
from .annotation import EMPTY, Annotation, Axis
from .flatten import dispatch_tensors
from .slots import SLOT_DTYPE, SlotTable

ANN_ATTR = "_arborist_ann"
SRC_ATTR = "_arborist_src"
ORIGIN_ATTR = "_arborist_origin"  # the parameter a tensor is a view/cast of (weight.t())



@dataclass
class Port:
    """Channels of one layer (or one dim of an unwrapped parameter) as slots."""

    target: Any  # nn.Module, or nn.Parameter for unwrapped parameters
    kind: str  # "out" or "in"
    slots: np.ndarray  # 1-D, one slot per channel position
    dim: int | None = None  # pruning dim for unwrapped parameters
    order: int = 0  # registration order, follows execution order


@dataclass
class OpRecord:
    """One node of the displayed graph: a layer, or a functional op."""

    id: int
    op: str  # aten op name ("convolution", "add") or "module"
    module_path: str  # innermost executing module's path
    module: nn.Module | None  # registered layer the op belongs to, if any
    inputs: list[int] = field(default_factory=list)


@dataclass
class ParamInfo:
    name: str
    owner: nn.Module
    attr: str
    real: torch.Tensor  # the model's own tensor (the traced one may be a meta stand-in)


# ops whose output is only a re-labelling of the input: no node on the canvas
LAYOUT_OPS = frozenset(
    {
        "view",
        "_unsafe_view",
        "reshape",
        "_reshape_alias",
        "alias",
        "detach",
        "clone",
        "contiguous",
        "_to_copy",
        "to",
        "permute",
        "transpose",
        "t",
        "expand",
        "unsqueeze",
        "squeeze",
        "lift_fresh",
        "as_strided",
        "slice",
        "select",
        "unbind",
        "split",
        "split_with_sizes",
        "lift_fresh_copy",
        "_unsafe_split",
        "view_as",
    }
)


class OpRules(Protocol):
    """What the tracer asks of the op rules (engine/graph/rules.py is the one set).

    Passed in rather than imported: the rules read the tracer, so the tracer must not
    import them (no import cycle inside engine/graph).
    """

    def apply(self, t: ChannelTracer, name: str, func: Any, args: tuple, kwargs: dict,
              out: Any) -> None: ...

    def lock_everything(self, t: ChannelTracer, args: tuple, kwargs: dict, out: Any,
                        reason: str) -> None: ...

    def owning_layer(self, t: ChannelTracer, flat_in: list) -> nn.Module | None: ...


class ChannelTracer(TorchDispatchMode):
    """Dispatch mode that annotates tensors with channel slots while the model runs."""

    def __init__(
        self,
        model: nn.Module,
        rules: OpRules,
        leaf_rule: Callable[[ChannelTracer, nn.Module, tuple, Any], None],
        is_leaf: Callable[[nn.Module], bool],
        port_module: Callable[[nn.Module], bool],
        stand_ins: dict[str, torch.Tensor] | None = None,
        kernels: MetaKernels | None = None,
    ) -> None:
        super().__init__()
        self._rules = rules
        self._kernels = kernels if kernels is not None else MetaKernels()
        self.model = model
        self.slots = SlotTable()
        self.ports: dict[tuple[int, str, int | None], Port] = {}
        self.records: list[OpRecord] = []
        self.module_names: dict[nn.Module, str] = {}
        self.params: dict[int, ParamInfo] = {}
        self._param_ann: dict[int, Annotation] = {}
        self._param_refs: dict[int, torch.Tensor] = {}
        self._stack: list[nn.Module] = []
        self._suppress = 0
        self._leaf_rule = leaf_rule
        self._is_leaf = is_leaf
        self.is_port_module = port_module
        self.warnings: list[str] = []
        self.output_shapes: list[tuple[int, ...]] = []
        self.output_slots: list[np.ndarray] = []  # slots that reach a model output
        # one slot per head of each attention score tensor (rules._contract): per-head
        # tensors added to the scores join these, so their units are probed alone
        self.head_reps: list[np.ndarray] = []
        self._hooks: list[Any] = []
        self._index_state_tensors(stand_ins or {})

    # ---------------------------------------------------------------- set-up
    def _index_state_tensors(self, stand_ins: dict[str, torch.Tensor]) -> None:
        """Know every parameter/buffer by identity (of its meta stand-in when tracing on meta)."""
        seen: set[int] = set()
        for mod_name, mod in self.model.named_modules(remove_duplicate=False):
            self.module_names.setdefault(mod, mod_name)
            for attr, p in list(mod._parameters.items()) + list(mod._buffers.items()):
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                full = f"{mod_name}.{attr}" if mod_name else attr
                traced = stand_ins.get(full, p)
                self.params[id(traced)] = ParamInfo(full, mod, attr, p)
                self._param_refs[id(traced)] = traced

    def install_hooks(self) -> None:
        for mod in self.module_names:
            self._hooks.append(mod.register_forward_pre_hook(self._pre_hook, with_kwargs=True))
            self._hooks.append(
                mod.register_forward_hook(self._post_hook, with_kwargs=True, always_call=True)
            )

    def remove_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def _pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self._stack.append(module)
        if self._suppress or self._is_leaf(module):
            self._suppress += 1

    def _post_hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        leaf = self._suppress and (self._suppress > 1 or self._is_leaf(module))
        if self._suppress:
            self._suppress -= 1
        if self._stack and self._stack[-1] is module:
            self._stack.pop()
        if leaf and not self._suppress:
            inputs = tuple(args) + tuple(kwargs.values())
            rec = self.record("module", inputs, module=module)
            self._leaf_rule(self, module, inputs, output)
            for o in tree_flatten(output)[0]:
                if isinstance(o, torch.Tensor):
                    setattr(o, SRC_ATTR, rec)

    # ------------------------------------------------------------- queries
    def current_path(self) -> str:
        return self.module_names.get(self._stack[-1], "") if self._stack else ""

    def current_module(self) -> nn.Module | None:
        return self._stack[-1] if self._stack else None

    def param_info(self, t: Any) -> ParamInfo | None:
        if isinstance(t, torch.Tensor):
            info = self.params.get(id(t))
            if info is not None and self._param_refs.get(id(t)) is t:
                return info
        return None

    def ann(self, t: Any) -> Annotation:
        if not isinstance(t, torch.Tensor):
            return EMPTY
        a = getattr(t, ANN_ATTR, None)
        if a is not None:
            return a
        if self.param_info(t) is not None and t.is_floating_point():
            a = self._param_ann.get(id(t))
            if a is None:
                a = tuple(
                    Axis.single(d, self.slots.new((s,))) for d, s in enumerate(t.shape) if s > 1
                )
                self._param_ann[id(t)] = a
            return a
        return EMPTY

    def param_of(self, t: Any) -> torch.Tensor | None:
        """The parameter or buffer `t` is, or was derived from by layout ops only."""
        if self.param_info(t) is not None:
            return t
        return getattr(t, ORIGIN_ATTR, None) if isinstance(t, torch.Tensor) else None

    def param_dim_slots(self, p: torch.Tensor, dim: int) -> np.ndarray | None:
        dim = dim % p.dim()
        for ax in self.ann(p):
            if ax.dims == (dim,):
                return ax.slots
        return None

    # ------------------------------------------------------------- updates
    def set_ann(self, t: Any, ann: Annotation) -> None:
        if isinstance(t, torch.Tensor) and self.param_info(t) is None:
            setattr(t, ANN_ATTR, tuple(ann))

    def lock_ann(self, ann: Iterable[Axis], reason: str) -> None:
        for ax in ann:
            self.slots.lock(ax.slots, reason)

    def mark_output(self, ann: Iterable[Axis]) -> None:
        """Record slots that reach a model output. Kept apart from locks: pruners never
        offer them, but a group asked for explicitly may still remove them."""
        for ax in ann:
            slots = np.asarray(ax.slots).ravel()
            slots = slots[slots > 0]
            if slots.size:
                self.output_slots.append(slots)

    def add_port(self, target: Any, kind: str, slots: np.ndarray, dim: int | None = None) -> None:
        key = (id(target), kind, dim)
        slots = np.asarray(slots, dtype=SLOT_DTYPE).ravel()
        existing = self.ports.get(key)
        if existing is None:
            self.ports[key] = Port(target, kind, slots, dim, len(self.ports))
        elif existing.slots.shape == slots.shape:
            self.slots.unite(existing.slots, slots)  # layer called twice: same channels
        else:
            self.slots.lock(existing.slots, "layer used with different widths")
            self.slots.lock(slots, "layer used with different widths")

    def record(self, op: str, inputs: Iterable[Any], module: nn.Module | None = None) -> int:
        srcs: list[int] = []
        for x in dispatch_tensors(list(inputs)):
            s = getattr(x, SRC_ATTR, None) if isinstance(x, torch.Tensor) else None
            if s is not None and s not in srcs:
                srcs.append(s)
        rid = len(self.records)
        self.records.append(OpRecord(rid, op, self.current_path(), module, srcs))
        return rid

    # ------------------------------------------------------------- dispatch
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = self._kernels.call(func, args, kwargs)
        if self._suppress:
            return out
        name = func.overloadpacket.__name__
        try:
            self._rules.apply(self, name, func, args, kwargs, out)
        except Exception as exc:  # a rule bug must never break the user's forward
            self.warnings.append(f"{name}: {type(exc).__name__}: {exc}")
            self._rules.lock_everything(self, args, kwargs, out, f"rule failed for {name}")
        self._link(name, args, kwargs, out)
        return out

    def _link(self, name: str, args: tuple, kwargs: dict, out: Any) -> None:
        flat_in = dispatch_tensors((args, kwargs))
        data_in = [x for x in flat_in if self.param_of(x) is None]
        flat_out = dispatch_tensors(out)
        if not data_in:
            # ops on parameters only (weight.t()) belong to their layer
            if flat_in and name in LAYOUT_OPS:
                for o in flat_out:
                    setattr(o, ORIGIN_ATTR, self.param_of(flat_in[0]))
            return
        if name in LAYOUT_OPS:
            src = getattr(data_in[0], SRC_ATTR, None)
            for o in flat_out:
                if o is not data_in[0]:
                    setattr(o, SRC_ATTR, src)
            return
        owner = self._rules.owning_layer(self, flat_in)
        if owner is not None and self._last_owner_record(owner, data_in):
            rid = self._last_owner_record(owner, data_in)
        else:
            rid = self.record(name, data_in, module=owner)
        for o in flat_out:
            setattr(o, SRC_ATTR, rid)

    def _last_owner_record(self, owner: nn.Module, data_in: list[torch.Tensor]) -> int | None:
        """Ops of one layer call (e.g. mm then add for a Linear) share one node."""
        for x in data_in:
            s = getattr(x, SRC_ATTR, None)
            if s is not None and self.records[s].module is owner:
                return s
        return None
