"""DependencyGraph: Torch-Pruning's entry point, built on channel slots.

`build_dependency` traces the model once (see `tracer.py`), resolves the slot
classes, and keeps for every prunable port (a layer's out or in channels, or a
dim of an unwrapped parameter) the class of each channel. A group is then just
"all ports' positions whose class is among the root's": no index mappings to
re-derive per group, so enumerating all groups is linear in the model size.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils._pytree import tree_flatten

from .. import function as F
from ..families.coupling import couple_shared_head_size
from ..families.outputs import output_transform_for
from ..function import BasePruningFunc, PrunerRegistry
from ..function.attributes import refresh_attributes
from ..function.hf_conv1d import lazy_types
from ..utils.meta_kernels import meta_like
from .channel_sets import ChannelSets
from .group import Dependency, Group, GroupItem, Node, module_type_name
from .heads import HEADS_PREFIX, replay_heads
from .leaf import leaf_rule
from .probe import Prober
from .tracer import ANN_ATTR, ChannelTracer, OpRecord, Port

DEFAULT_ROOT_TYPES: tuple[type, ...] = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.LSTM,
)
# modules traced as one opaque op: their internals are not channel-aware ops
LEAF_TYPES: tuple[type, ...] = (
    nn.modules.instancenorm._InstanceNorm,
    nn.MultiheadAttention,
    nn.RNNBase,
    nn.RMSNorm,  # decomposes into pow/mean/rsqrt/mul before dispatch
)


@dataclasses.dataclass(eq=False)  # identity: ports of equal-shaped Parameters differ
class _PortState:
    port: Port
    node: Node
    handler: Callable
    labels: np.ndarray  # class per ORIGINAL position
    alive: np.ndarray  # bool per original position; pruned ones are False
    _rank: np.ndarray | None = None
    fine: np.ndarray | None = None  # class per position without structural unites (heads)
    pruned_at: int = 0  # the graph's prune serial when this port last lost channels
    _width: int | None = None

    def lose(self, mask: np.ndarray | slice, serial: int) -> None:
        """Mark positions pruned; groups derived before `serial` that touch this port
        are stale (their current indices on it have shifted)."""
        self.alive[mask] = False
        self._rank = None
        self._width = None
        self.pruned_at = serial

    def width(self) -> int:
        """Channels left on this port."""
        if self._width is None:
            self._width = int(self.alive.sum())
        return self._width

    def current_rank(self) -> np.ndarray:
        """Current index of every original position (valid where alive)."""
        if self._rank is None:
            self._rank = np.cumsum(self.alive, dtype=np.int32) - 1  # int32: 14 M slots at 70 B
        return self._rank


class DependencyGraph:
    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.registry = PrunerRegistry()
        self.module2node: dict[Any, Node] = {}
        self.module2name: dict[Any, str] = {}
        self.nodes: list[Node] = []
        self.lock_reasons: list[str] = []
        self.trace_warnings: list[str] = []
        self.trace_notes: list[str] = []
        self._param_names: dict[int, Any] = {}
        self._ports: list[_PortState] = []
        self._port_index: dict[tuple[int, str], int] = {}
        self._locked_label = -1
        self._locked_mask = np.zeros(1, dtype=bool)  # per class: must keep its size
        self.probe_runs = 0
        self._csr_start = np.zeros(0, dtype=np.int64)
        self._csr_order = np.zeros(0, dtype=np.int32)  # flat port positions, sorted by class
        self._port_offsets = np.zeros(1, dtype=np.int64)  # flat start of each port
        self._int_pool = np.zeros(0, dtype=object)  # shared int objects for index lists
        self._prune_serial = 0  # counts prunes; groups remember the serial they were made at
        self._pruning_history: list[tuple[str, bool, list[int]]] = []
        self.unwrapped_parameters: dict[nn.Parameter, int] = {}
        self._registered_layers: dict[type, BasePruningFunc] = {}

    # ================================================================ build
    def build_dependency(
        self,
        model: nn.Module,
        example_inputs: Any,
        forward_fn: Callable[[nn.Module, Any], Any] | None = None,
        output_transform: Callable[[Any], Any] | None = None,
        unwrapped_parameters: dict[nn.Parameter, int] | Iterable | None = None,
        customized_pruners: dict[Any, BasePruningFunc] | None = None,
        ignored_params: Iterable[nn.Parameter] | None = None,
        lock_outputs: bool = True,
        trace_on_meta: bool = True,
        validate: bool = True,
        verbose: bool = True,
    ) -> DependencyGraph:
        """Trace `model` on `example_inputs` and index every coupled channel."""
        self.model = model
        if output_transform is None:  # HF models: their logits, not the generation cache
            output_transform = output_transform_for(model)
        customized_pruners = {**self._registered_layers, **(customized_pruners or {})}
        self.registry = PrunerRegistry(customized_pruners)
        custom_types = tuple(k for k in customized_pruners if isinstance(k, type))
        self.module2name = {m: n for n, m in model.named_modules(remove_duplicate=False)}

        def is_port_module(m: nn.Module) -> bool:
            return isinstance(m, nn.Module) and self.registry.lookup(m) is not None

        def is_leaf(m: nn.Module) -> bool:
            return isinstance(m, LEAF_TYPES + custom_types) or m in customized_pruners

        def trace(on_meta: bool) -> ChannelTracer:
            stand_ins = _meta_stand_ins(model) if on_meta else {}
            inputs = _to_meta(example_inputs) if on_meta else example_inputs
            tracer = ChannelTracer(
                model,
                functools.partial(leaf_rule, self.registry),
                is_leaf,
                is_port_module,
                stand_ins,
            )
            tracer.install_hooks()
            saved = _attribute_snapshot(model) if on_meta else []
            try:
                with torch.no_grad(), tracer:
                    if on_meta:
                        with torch.nn.utils.stateless._reparametrize_module(
                            model, stand_ins, tie_weights=True, strict=False
                        ):
                            out = _run_forward(model, inputs, forward_fn)
                    else:
                        out = _run_forward(model, inputs, forward_fn)
                    if output_transform is not None:
                        out = output_transform(out)
                    tracer.output_shapes = [tuple(o.shape) for o in _flatten_outputs(out)]
                    if lock_outputs:
                        for o in _flatten_outputs(out):
                            tracer.lock_ann(tracer.ann(o), "model output")
            finally:
                tracer.remove_hooks()
                _restore_attributes(saved)
                _clear_annotations(example_inputs)
            return tracer

        tracer = None
        traced_on_meta = False
        if trace_on_meta:
            try:
                tracer = trace(on_meta=True)
                traced_on_meta = True
            except Exception as exc:  # data-dependent code: run for real instead
                self.trace_notes.append(
                    f"meta tracing failed ({type(exc).__name__}: {exc}); "
                    "traced on the model's device"
                )
        if tracer is None:
            tracer = trace(on_meta=False)
        self._param_names = {id(info.real): info for info in tracer.params.values()}
        couple_shared_head_size(model, tracer)  # q/k/v read one head size (BERT, HF ViT)
        labels, fine = tracer.slots.resolve_both()  # frees the unite pairs
        self._locked_fine = int(fine[0])
        self._locked_label = int(labels[0])
        self.lock_reasons = tracer.slots.lock_reasons
        self.trace_warnings = tracer.warnings
        self._add_unwrapped_ports(tracer, unwrapped_parameters, ignored_params)
        self._build_nodes(tracer)
        self._index_ports(tracer, labels, fine)
        expected = tracer.output_shapes
        # the probe builds and runs model copies: let the trace's tables go first
        del labels, fine, tracer
        if validate and traced_on_meta:
            self._lock_groups_the_code_cannot_absorb(
                model, example_inputs, forward_fn, output_transform, expected
            )
        return self

    def _lock_groups_the_code_cannot_absorb(
        self,
        model: nn.Module,
        example_inputs: Any,
        forward_fn: Callable | None,
        output_transform: Callable | None,
        expected: list[tuple[int, ...]],
    ) -> None:
        def run(m: nn.Module, x: Any) -> Any:
            out = _run_forward(m, x, forward_fn)
            return output_transform(out) if output_transform is not None else out

        # only each group's last unit, classes and name: whole groups (index lists of every
        # member, 28672-wide MLPs in a 70B Llama) are never built, not even one at a time
        roots = list(self._group_roots(None, (object,)))
        prober = Prober(self, model, example_inputs, run, expected)
        # the usual case first: every unit at once, straight from the slot table
        picked = [self._last_unit_class(state, classes) for state, classes in roots]
        at_once = self._unit_ports([c for c in picked if c is not None])
        if not at_once or prober.passes_ports(at_once):
            self.probe_runs = prober.runs
            return
        units: list[Group] = []
        owners: list[tuple[np.ndarray, str]] = []
        for state, classes in roots:
            unit = self._last_unit(state, classes)
            if unit is not None:
                units.append(unit)
                owners.append((classes, state.node.name))
        bad = prober.bad_groups(units, all_fail=True)
        self.probe_runs = prober.runs
        for k in bad:
            classes, name = owners[k]
            self._locked_mask[classes] = True
            self.lock_reasons.append(
                f"pruning the group of '{name}' breaks the model's forward "
                "(its code depends on the original width)"
            )

    def _add_unwrapped_ports(
        self,
        tracer: ChannelTracer,
        unwrapped: dict[nn.Parameter, int] | Iterable | None,
        ignored: Iterable[nn.Parameter] | None,
    ) -> None:
        """Parameters used directly in forward (class tokens, layer scales, ...)."""
        wanted: dict[int, int] = {}
        if unwrapped:
            items = unwrapped.items() if isinstance(unwrapped, dict) else unwrapped
            for p, d in items:
                wanted[id(p)] = d % p.dim()
        skip = {id(p) for p in (ignored or [])}
        for pid, ann in tracer._param_ann.items():
            info = tracer.params[pid]
            if pid in skip or tracer.is_port_module(info.owner):
                continue
            p = info.real
            for ax in ann:
                if pid in wanted and ax.dims[0] != wanted[pid]:
                    continue
                tracer.add_port(p, "out", ax.slots, dim=ax.dims[0])

    def _build_nodes(self, tracer: ChannelTracer) -> None:
        names_used: dict[str, int] = {}
        rec_node: dict[int, Node] = {}
        self.nodes = []
        self.module2node = {}
        for rec in tracer.records:
            node = self._node_for_record(rec, tracer, names_used)
            rec_node[rec.id] = node
        for rec in tracer.records:
            node = rec_node[rec.id]
            for src in rec.inputs:
                s = rec_node[src]
                if s is node or s in node.inputs:
                    continue
                node.inputs.append(s)
                s.outputs.append(node)
        for port in tracer.ports.values():
            target = port.target
            if target in self.module2node or isinstance(target, nn.Module):
                continue
            info = self._param_names[id(target)]
            node = Node(info.name, "parameter", target, self.module2name.get(info.owner, ""))
            node.pruning_dim = port.dim
            self._add_node(node)
            self.module2node[target] = node
        for m in self._port_modules(tracer):
            if m not in self.module2node:
                name = self.module2name.get(m, type(m).__name__)
                node = Node(name, type(m).__name__, m, name)
                self._add_node(node)
                self.module2node[m] = node

    def _port_modules(self, tracer: ChannelTracer) -> list[nn.Module]:
        return [p.target for p in tracer.ports.values() if isinstance(p.target, nn.Module)]

    def _node_for_record(self, rec: OpRecord, tracer: ChannelTracer, used: dict[str, int]) -> Node:
        if rec.module is not None:
            node = self.module2node.get(rec.module)
            if node is None:
                name = self.module2name.get(rec.module, type(rec.module).__name__)
                node = Node(name, type(rec.module).__name__, rec.module, name)
                self._add_node(node)
                self.module2node[rec.module] = node
            return node
        base = f"{rec.module_path}.{rec.op}" if rec.module_path else rec.op
        k = used.get(base, 0)
        used[base] = k + 1
        node = Node(base if k == 0 else f"{base}_{k}", rec.op, None, rec.module_path)
        self._add_node(node)
        return node

    def _add_node(self, node: Node) -> None:
        node.id = len(self.nodes)
        self.nodes.append(node)

    def _index_ports(self, tracer: ChannelTracer, labels: np.ndarray, fine: np.ndarray) -> None:
        self._ports = []
        self._port_index = {}
        for port in sorted(tracer.ports.values(), key=lambda p: p.order):
            node = self.module2node.get(port.target)
            if node is None:
                continue
            handler = self._handler_for(port)
            if handler is None:
                continue
            key = (id(port.target), port.kind)
            alive = np.ones(port.slots.size, bool)
            state = _PortState(
                port, node, handler, labels[port.slots], alive, fine=fine[port.slots]
            )
            prev = self._port_index.get(key)
            if prev is not None:
                # one port per parameter: prefer a prunable axis (hidden dim of a position
                # embedding) over a fully locked one (its positions)
                if not (self._ports[prev].labels == self._locked_label).all() or (
                    state.labels == self._locked_label
                ).all():
                    continue
                self._ports[prev] = state
            else:
                self._port_index[key] = len(self._ports)
                self._ports.append(state)
            if port.dim is not None:
                node.pruning_dim = port.dim
        n_labels = int(labels.max()) + 1 if labels.size else 1
        self._locked_mask = np.zeros(n_labels, dtype=bool)
        self._locked_mask[self._locked_label] = True
        self._rebuild_csr(n_labels)

    def _handler_for(self, port: Port) -> Callable | None:
        if isinstance(port.target, nn.Module):
            pruner = self.registry.lookup(port.target)
            if pruner is None:
                return None
            return pruner.prune_out_channels if port.kind == "out" else pruner.prune_in_channels
        return F.prune_parameter_out_channels

    def _rebuild_csr(self, n_labels: int) -> None:
        """Class -> (port, original position) table for O(group) lookups.

        Stored as one int32 array of flat positions (ports laid end to end) sorted by
        class; `_positions_by_port` splits them into ports for the few classes asked.
        """
        sizes = [p.labels.size for p in self._ports]
        self._port_offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        width = max(sizes, default=0)
        self._int_pool = np.empty(width, dtype=object)
        self._int_pool[:] = range(width)
        if not self._ports:
            self._csr_start = np.zeros(n_labels + 1, dtype=np.int64)
            self._csr_order = np.zeros(0, dtype=np.int32)
            return
        lab = np.concatenate([p.labels for p in self._ports])
        counts = np.bincount(lab, minlength=n_labels)
        self._csr_start = np.concatenate([[0], np.cumsum(counts)])
        del counts
        dtype = np.int32 if lab.size <= np.iinfo(np.int32).max else np.int64
        self._csr_order = np.argsort(lab, kind="stable").astype(dtype)

    # ============================================================== queries
    def get_pruner_of_module(self, module: Any) -> BasePruningFunc | None:
        if isinstance(module, nn.Parameter):
            return F._parameter
        return self.registry.lookup(module)

    def register_customized_layer(self, layer_type: type, layer_pruner: BasePruningFunc) -> None:
        """Register a pruner for a custom layer type; call before build_dependency."""
        self._registered_layers[layer_type] = layer_pruner
        self.registry.register(layer_type, layer_pruner)

    def get_out_channels(self, module_or_node: Any) -> int | None:
        module = module_or_node.module if isinstance(module_or_node, Node) else module_or_node
        if isinstance(module, nn.Parameter):
            node = self.module2node.get(module)
            dim = node.pruning_dim if node is not None and node.pruning_dim is not None else -1
            return int(module.shape[dim])
        pruner = self.get_pruner_of_module(module)
        return pruner.get_out_channels(module) if pruner is not None else None

    def get_in_channels(self, module_or_node: Any) -> int | None:
        module = module_or_node.module if isinstance(module_or_node, Node) else module_or_node
        if isinstance(module, nn.Parameter):
            return self.get_out_channels(module)
        pruner = self.get_pruner_of_module(module)
        return pruner.get_in_channels(module) if pruner is not None else None

    def is_out_channel_pruning_fn(self, fn: Callable) -> bool:
        return getattr(fn, "__name__", "") == "prune_out_channels"

    def is_in_channel_pruning_fn(self, fn: Callable) -> bool:
        return getattr(fn, "__name__", "") == "prune_in_channels"

    def _port_of(self, module: Any, pruning_fn: Callable | None) -> _PortState:
        kind = (
            "in" if pruning_fn is not None and self.is_in_channel_pruning_fn(pruning_fn) else "out"
        )
        idx = self._port_index.get((id(module), kind))
        if idx is None and kind == "in":
            idx = self._port_index.get((id(module), "out"))  # norms: in == out
        if idx is None:
            name = self.module2name.get(module, type(module).__name__)
            raise ValueError(
                f"'{name}' has no prunable {kind} channels in the traced graph "
                "(was it used in forward with the example inputs?)"
            )
        return self._ports[idx]

    def get_pruning_group(
        self, module: Any, pruning_fn: Callable, idxs: Sequence[int] | np.ndarray
    ) -> Group:
        """All layers coupled to removing `idxs` from `module` via `pruning_fn`."""
        root = self._port_of(module, pruning_fn)
        idxs = np.asarray(list(idxs) if not isinstance(idxs, np.ndarray) else idxs, dtype=np.int64)
        alive_pos = np.flatnonzero(root.alive)
        if idxs.size and (idxs.min() < 0 or idxs.max() >= alive_pos.size):
            raise IndexError(
                f"channel index out of range for '{root.node.name}' ({alive_pos.size} channels)"
            )
        classes = np.unique(root.labels[alive_pos[idxs]])
        return self._group_from_classes(root, pruning_fn, classes)

    def sub_group(self, group: Group, root_idxs: Sequence[int]) -> Group:
        """`get_pruning_group` of `root_idxs` (whole channel sets of `group`'s root), read
        off `group` by filtering its members instead of deriving it from the slot table
        again; `group` must be current (else it is derived as usual)."""
        root_item = group[0]
        if not (self.is_current(group) and len(group._arrays) == len(group)):
            return self.get_pruning_group(root_item.dep.target.module, root_item.dep.handler,
                                          root_idxs)
        chosen = np.asarray(root_idxs, dtype=np.int64)
        root = self._ports[group._port_ids[0]]
        classes = np.unique(root.labels[np.flatnonzero(root.alive)[chosen]])
        sub = Group()
        sub._DG = self
        sub._classes = classes
        sub.locked = bool(self._locked_mask[classes].any())
        for k, item in enumerate(group):
            _, cur, rid = group._arrays[k]
            keep = np.isin(rid, chosen)
            if not keep.any():
                continue
            cur, rid = cur[keep], rid[keep]
            part = GroupItem(item.dep, self._int_list(cur), self._int_list(rid))
            sub._arrays[len(sub._group)] = (part.idxs, cur, rid)
            sub._group.append(part)
            sub._port_ids.append(group._port_ids[k])
        sub._made_at = group._made_at
        return sub

    def _group_from_classes(
        self, root: _PortState, trigger: Callable | None, classes: np.ndarray
    ) -> Group:
        group = Group()
        group._DG = self
        group._classes = classes
        group.locked = bool(self._locked_mask[classes].any())
        by_port = self._positions_by_port(classes)
        root_id = self._ports.index(root)
        # the root channel behind each class: its lowest current root position
        root_pos = by_port.get(root_id, np.zeros(0, dtype=np.int64))
        root_orig = root_pos[root.alive[root_pos]]
        root_cur = root.current_rank()[root_orig]
        uniq, first = np.unique(root.labels[root_orig], return_index=True)
        ordered = [root_id] + [k for k in by_port if k != root_id]  # by_port: ascending ids
        port_ids: list[int] = []
        for k in ordered:
            state = self._ports[k]
            pos = by_port.get(k)
            if pos is None:
                continue
            pos = pos[state.alive[pos]]
            if pos.size == 0:
                continue
            # positions ascend, and so do their current ranks: no sort needed
            cur = state.current_rank()[pos]  # int32 (like the ranks): kept per item below
            rid = root_cur[first[np.searchsorted(uniq, state.labels[pos])]]
            dep = Dependency(trigger, state.handler, root.node, state.node)
            item = GroupItem(dep, self._int_list(cur), self._int_list(rid))
            group._arrays[len(group._group)] = (item.idxs, cur, rid)
            group._group.append(item)
            port_ids.append(k)
        group._port_ids = port_ids
        group._made_at = self._prune_serial
        return group

    def _positions_by_port(self, classes: np.ndarray) -> dict[int, np.ndarray]:
        """Original positions (ascending) of every channel in `classes`, per port id.

        The class table holds flat positions (ports end to end): sorted, they fall into
        port order, so one sort replaces a (port, position) table and a sort by port.
        """
        starts = self._csr_start[classes]
        lens = self._csr_start[classes + 1] - starts
        total = int(lens.sum())
        if total == 0:
            return {}
        idx = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
        idx += np.arange(total)
        flat = self._csr_order[idx]
        del idx
        flat.sort()
        offsets = self._port_offsets
        lo = int(np.searchsorted(offsets, flat[0], side="right")) - 1
        hi = int(np.searchsorted(offsets, flat[-1], side="right"))
        cuts = np.searchsorted(flat, offsets[lo : hi + 1]).tolist()
        out: dict[int, np.ndarray] = {}
        for k in range(lo, hi):
            a, b = cuts[k - lo], cuts[k - lo + 1]
            if b > a:
                out[k] = flat[a:b] - offsets[k]
        return out

    def _int_list(self, values: np.ndarray) -> list[int]:
        """`values.tolist()` made of shared int objects: index lists of every group of a
        70 B model (28672-wide MLP groups) otherwise hold ~0.5 GB of separate ints."""
        return self._int_pool[values].tolist()

    def _channel_sets(self, group: Group) -> ChannelSets:
        """The group's root channels split into units (same slot class), units ordered by
        their first channel, channels inside a unit ascending."""
        root = self._port_of(group[0].dep.target.module, group[0].dep.handler)
        cur = np.asarray(group[0].idxs, dtype=np.int64)
        if not cur.size:
            return ChannelSets.singletons(cur)
        labels = root.labels[np.flatnonzero(root.alive)[cur]]
        # vectorized: a 28672-wide MLP group has 28672 units; np.split per unit took ~1 s
        order = np.lexsort((cur, labels))  # by unit, then position inside the unit
        bounds = np.flatnonzero(np.diff(labels[order])) + 1
        if bounds.size == cur.size - 1:  # every unit one channel (MLP hidden, embeddings)
            return ChannelSets.singletons(np.sort(cur))
        starts = np.concatenate(([0], bounds, [cur.size])).astype(np.int64)
        by_unit = ChannelSets(cur[order], starts)
        return by_unit.reordered(np.argsort(by_unit.firsts, kind="stable"))

    def check_pruning_group(self, group: Group) -> bool:
        """False if the group would empty a layer or touch channels that must stay."""
        if group.locked:
            return False
        derived = self.is_current(group)  # items straight from the slot table: one per port
        for k, item in enumerate(group):
            if derived and k in group._arrays:
                n = self._ports[group._port_ids[k]].width()
                removed = len(item.idxs)  # derived index lists hold no duplicates
            else:
                n = self._current_width(item.dep)
                removed = len(set(item.idxs))
            if n is not None and removed >= n:
                return False
        return True

    def _current_width(self, dep: Dependency) -> int | None:
        idx = self._port_index.get(
            (id(dep.target.module), "in" if self.is_in_channel_pruning_fn(dep.handler) else "out")
        )
        if idx is None:
            idx = self._port_index.get((id(dep.target.module), "out"))
        return self._ports[idx].width() if idx is not None else None

    def get_all_groups(
        self,
        ignored_layers: Iterable[Any] | None = None,
        root_module_types: Iterable[type] | None = None,
    ) -> Iterator[Group]:
        """One group per independent set of coupled channels, in execution order."""
        for state, classes in self._group_roots(ignored_layers, root_module_types):
            yield self._group_from_classes(state, state.handler, classes)

    def _group_roots(
        self, ignored_layers: Iterable[Any] | None, root_module_types: Iterable[type] | None
    ) -> Iterator[tuple[_PortState, np.ndarray]]:
        """(root port, classes) of each group of `get_all_groups`, without building it."""
        root_types = tuple(root_module_types or DEFAULT_ROOT_TYPES)
        if nn.Linear in root_types:  # HF Conv1D (GPT-2) is a Linear with a transposed weight
            root_types += lazy_types()
        ignored = _expand_ignored(ignored_layers)
        covered = self._locked_mask.copy()
        for state in self._ports:
            if state.port.kind == "out" and id(state.port.target) in ignored:
                covered[state.labels[state.alive]] = True
        for state in self._ports:
            target = state.port.target
            if state.port.kind != "out" or id(target) in ignored:
                continue
            if not isinstance(target, root_types):
                continue
            classes = np.unique(state.labels[state.alive])
            classes = classes[~covered[classes]]
            if classes.size == 0:
                continue
            covered[classes] = True
            yield state, classes

    def _last_unit(self, root: _PortState, classes: np.ndarray) -> Group | None:
        """`probe.smallest_unit` of the group (root, classes), read from the labels.

        That is the unit whose first root channel comes last, or None if it would empty a
        layer; the group's member index lists are never built.
        """
        cls = self._last_unit_class(root, classes)
        if cls is None:
            return None
        unit = self._group_from_classes(root, root.handler, np.asarray([cls]))
        return unit if self.check_pruning_group(unit) else None

    def _last_unit_class(self, root: _PortState, classes: np.ndarray) -> int | None:
        """The slot class of `_last_unit` (before its fits-check)."""
        orig = np.flatnonzero(root.alive & np.isin(root.labels, classes))
        if orig.size == 0:
            return None
        uniq, first = np.unique(root.labels[orig], return_index=True)
        return int(uniq[np.argmax(first)])

    def _unit_ports(self, unit_classes: list[int]) -> dict[int, np.ndarray]:
        """Current indices per port of the one-class units that pass `check_pruning_group`
        (not locked, not emptying a port), all together."""
        cls = np.unique(np.asarray(unit_classes, dtype=np.int64))
        cls = cls[~self._locked_mask[cls]]
        while True:  # units are counted per class, so one drop round settles it
            by_port = {k: pos[self._ports[k].alive[pos]]
                       for k, pos in self._positions_by_port(cls).items()}
            too_wide: list[np.ndarray] = []
            for k, pos in by_port.items():
                labels, counts = np.unique(self._ports[k].labels[pos], return_counts=True)
                too_wide.append(labels[counts >= self._ports[k].width()])
            drop = np.concatenate(too_wide) if too_wide else np.zeros(0, dtype=np.int64)
            if drop.size == 0:
                return {k: self._ports[k].current_rank()[pos].astype(np.int64)
                        for k, pos in by_port.items() if pos.size}
            cls = np.setdiff1d(cls, drop)

    # ============================================================== pruning
    def _prune_group(self, group: Group, record_history: bool = True) -> None:
        if not self.is_current(group):
            # re-derive indices from the group's channel classes: earlier pruning has
            # shifted positions on its ports since this group object was made
            root = self._port_of(group[0].dep.target.module, group[0].dep.handler)
            alive_classes = np.unique(root.labels[root.alive])
            classes = np.intersect1d(np.asarray(group._classes, dtype=np.int64), alive_classes)
            fresh = self._group_from_classes(root, group[0].dep.trigger, classes)
            group._group, group._classes, group.locked = fresh._group, fresh._classes, fresh.locked
            group._port_ids, group._made_at = fresh._port_ids, fresh._made_at
            group._arrays = fresh._arrays
        if group.locked:
            raise ValueError(
                "this group touches channels that must keep their size (model outputs, "
                "fixed inputs or shape-dependent code); pruning it would break the model"
            )
        if not self.check_pruning_group(group):
            raise ValueError("pruning this group would remove every channel of a layer")
        for item in group:
            item.dep(item.idxs)
        self._mark_pruned(group._classes)
        if self.model is not None:
            refresh_attributes(self.model, [item.dep.target.module for item in group])
        if record_history and len(group):
            root = group[0]
            name = self.module2name.get(root.dep.target.module, root.dep.target.name)
            self._pruning_history.append(
                (name, self.is_out_channel_pruning_fn(root.dep.handler), list(root.idxs))
            )

    def _mark_pruned(self, classes: np.ndarray) -> None:
        serial = self._next_prune_serial()
        for pid, pos in self._positions_by_port(np.asarray(classes, dtype=np.int64)).items():
            self._ports[pid].lose(pos, serial)

    def _next_prune_serial(self) -> int:
        self._prune_serial += 1
        return self._prune_serial

    def is_current(self, group: Group) -> bool:
        """Whether `group`'s indices are still valid: no port it touches has lost
        channels since it was derived (ports partition channels, so other groups'
        prunes elsewhere leave its positions where they were)."""
        made_at = getattr(group, "_made_at", None)
        if made_at is None or group._DG is not self:
            return False
        return all(self._ports[k].pruned_at <= made_at for k in group._port_ids)

    def pruning_history(self) -> list[tuple[str, bool, list[int]]]:
        """Plain data: (root layer name, out-channel pruning?, removed root indices) per prune."""
        return [(n, o, list(i)) for n, o, i in self._pruning_history]

    def load_pruning_history(self, pruning_history: Iterable[Sequence[Any]]) -> None:
        """Replay a recorded history on the freshly traced original architecture."""
        if self.model is None:
            raise RuntimeError("build_dependency must run before load_pruning_history")
        modules = dict(self.model.named_modules())
        params = dict(self.model.named_parameters())
        for name, is_out, idxs in pruning_history:
            if name.startswith(HEADS_PREFIX):  # whole attention heads (engine/graph/heads.py)
                replay_heads(self, name, list(idxs))
                continue
            target = modules.get(name, params.get(name))
            if target is None:
                raise ValueError(f"pruning history names '{name}', which this model does not have")
            pruner = self.get_pruner_of_module(target)
            if pruner is None:
                raise ValueError(f"no pruner for '{name}' ({type(target).__name__})")
            fn = pruner.prune_out_channels if is_out else pruner.prune_in_channels
            self.get_pruning_group(target, fn, list(idxs)).prune()


# ---------------------------------------------------------------- helpers
def _run_forward(model: nn.Module, inputs: Any, forward_fn: Callable | None) -> Any:
    if forward_fn is not None:
        return forward_fn(model, inputs)
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _meta_stand_ins(model: nn.Module) -> dict[str, torch.Tensor]:
    """Meta copies of every parameter and buffer: tracing needs shapes, not values."""
    out: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        out[name] = nn.Parameter(meta_like(p), requires_grad=p.requires_grad)
    for name, b in model.named_buffers():
        out[name] = meta_like(b)
    return out


def _attribute_snapshot(model: nn.Module) -> list[tuple[nn.Module, dict[str, Any]]]:
    """Plain attributes of every module, so a meta trace leaves no meta tensors behind.

    Forwards may cache tensors in plain attributes (torchvision's AnchorGenerator rebinds
    `self.cell_anchors` to the input's device); after a meta run those would be data-less.
    """
    skip = ("_parameters", "_buffers", "_modules")
    return [
        (m, {k: v for k, v in vars(m).items() if k not in skip}) for m in model.modules()
    ]


def _restore_attributes(saved: list[tuple[nn.Module, dict[str, Any]]]) -> None:
    skip = ("_parameters", "_buffers", "_modules")
    for m, attrs in saved:
        for k in [k for k in vars(m) if k not in attrs and k not in skip]:
            delattr(m, k)
        vars(m).update(attrs)


def _to_meta(obj: Any) -> Any:
    from torch.utils._pytree import tree_map

    return tree_map(lambda x: x.to("meta") if isinstance(x, torch.Tensor) else x, obj)


def _flatten_outputs(out: Any) -> list[torch.Tensor]:
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        out = [getattr(out, f.name) for f in dataclasses.fields(out)]
    elif hasattr(out, "to_tuple") and callable(out.to_tuple):
        out = out.to_tuple()
    return [x for x in tree_flatten(out)[0] if isinstance(x, torch.Tensor)]


def _clear_annotations(obj: Any) -> None:
    for x in tree_flatten(obj)[0]:
        if isinstance(x, torch.Tensor) and hasattr(x, ANN_ATTR):
            delattr(x, ANN_ATTR)


def _expand_ignored(ignored: Iterable[Any] | None) -> set[int]:
    """Ignored modules and all their submodules (Torch-Pruning semantics), by identity."""
    out: set[int] = set()
    for m in ignored or []:
        if isinstance(m, nn.Module):
            out.update(id(s) for s in m.modules())
        else:
            out.add(id(m))
    return out


__all__ = ["DependencyGraph", "module_type_name"]
