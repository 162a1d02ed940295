"""DependencyGraph: Torch-Pruning's entry point, built on channel slots.

`build_dependency` traces the model once (see `tracer.py`), resolves the slot
classes, and hands every prunable port (a layer's out or in channels, or a dim of
an unwrapped parameter) to a `ChannelIndex` that knows each position's class. A
group is then just "all ports' positions whose class is among the root's": no index
mappings to re-derive per group, so enumerating all groups is linear in the model
size. Groups are made in one place (`derive_group`); the index changes only through
`prune_group` (and whole-head removal, engine/graph/heads.py).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils._pytree import tree_flatten

from .. import function as F
from ..families.coupling import couple_shared_head_size
from ..families.lift import lift_attention
from ..families.lift_packed import lift_packed_attention
from ..families.moe import (
    EXPERTS_PREFIX,
    FusedExperts,
    FusedExpertsPruner,
    lift_experts,
    replay_experts,
)
from ..families.outputs import output_transform_for
from ..families.qk_norm import record_norm_widths
from ..families.refresh import record_head_counts
from ..function import BasePruningFunc, PrunerRegistry, handler_kind
from ..function.attributes import AttributeRefresher
from ..function.hf_conv1d import lazy_types
from ..utils.meta_kernels import MetaKernels, meta_like
from . import rules
from .channel_index import IN, OUT, ChannelIndex, PortState
from .channel_sets import ChannelSets
from .forward import eval_mode, flatten_outputs, run_forward, runner, to_meta
from .group import Dependency, Derivation, Group, GroupItem, Node, module_type_name
from .heads import HEADS_PREFIX, replay_heads
from .leaf import leaf_rule
from .probe import Prober, is_cached_tensor, last_unit_class, unit_ports
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


class DependencyGraph:
    def __init__(self, meta_kernels: MetaKernels | None = None) -> None:
        self.model: nn.Module | None = None
        self.registry = PrunerRegistry()
        self.module2node: dict[Any, Node] = {}
        self.module2name: dict[Any, str] = {}
        self.nodes: list[Node] = []
        self.lock_reasons: list[str] = []
        self.trace_warnings: list[str] = []
        self.trace_notes: list[str] = []
        self.probe_runs = 0
        self.unwrapped_parameters: dict[nn.Parameter, int] = {}
        self.meta_kernels = meta_kernels if meta_kernels is not None else MetaKernels()
        self._param_names: dict[int, Any] = {}
        self._index = ChannelIndex([], 1, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
        self._history: list[tuple[str, bool, list[int]]] = []
        self._registered_layers: dict[type, BasePruningFunc] = {}
        self._refresher: AttributeRefresher | None = None

    @property
    def index(self) -> ChannelIndex:
        """The channel index (ports, class masks, prune serial); read it, never write it."""
        return self._index

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
        """Trace `model` on `example_inputs` and index every coupled channel.

        The model runs in eval mode (each module's mode is given back afterwards), as in
        Torch-Pruning: tracing must not depend on dropout or on batch statistics.
        """
        self.model = model
        record_head_counts(model)  # before any pruning: the widths say it only now
        record_norm_widths(model)  # OLMoE's q/k norms over all heads: their divisor
        lift_attention(model)  # Swin / MaxViT: head width read from the projections
        lift_experts(model)  # Mixtral-style fused experts: a leaf over the residual width
        lift_packed_attention(model)  # Phi-3 / GPT-NeoX: q|k|v cut along a head axis
        self._refresher = AttributeRefresher(model)
        if output_transform is None:  # HF models: their logits, not the generation cache
            output_transform = output_transform_for(model)
        customized_pruners = {FusedExperts: FusedExpertsPruner(), **self._registered_layers,
                              **(customized_pruners or {})}
        self.registry = PrunerRegistry(customized_pruners)
        custom_types = tuple(k for k in customized_pruners if isinstance(k, type))
        self.module2name = {m: n for n, m in model.named_modules(remove_duplicate=False)}

        def is_port_module(m: nn.Module) -> bool:
            return isinstance(m, nn.Module) and self.registry.lookup(m) is not None

        def is_leaf(m: nn.Module) -> bool:
            return isinstance(m, LEAF_TYPES + custom_types) or m in customized_pruners

        def trace(on_meta: bool) -> ChannelTracer:
            stand_ins = _meta_stand_ins(model) if on_meta else {}
            inputs = to_meta(example_inputs) if on_meta else example_inputs
            tracer = ChannelTracer(
                model, rules, functools.partial(leaf_rule, self.registry), is_leaf,
                is_port_module, stand_ins, self.meta_kernels,
            )
            tracer.install_hooks()
            saved = _attribute_snapshot(model) if on_meta else []
            if on_meta:
                _tensor_attributes_to_meta(saved)
            try:
                with torch.no_grad(), tracer:
                    if on_meta:
                        with torch.nn.utils.stateless._reparametrize_module(
                            model, stand_ins, tie_weights=True, strict=False
                        ):
                            out = run_forward(model, inputs, forward_fn)
                    else:
                        out = run_forward(model, inputs, forward_fn)
                    if output_transform is not None:
                        out = output_transform(out)
                    tracer.output_shapes = [tuple(o.shape) for o in flatten_outputs(out)]
                    if lock_outputs:
                        for o in flatten_outputs(out):
                            tracer.mark_output(tracer.ann(o))
            finally:
                tracer.remove_hooks()
                _restore_attributes(saved)
                _clear_annotations(example_inputs)
            return tracer

        with eval_mode(model):
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
            reps = [r[r > 0] for r in tracer.head_reps]
            head_rep_classes = (np.unique(labels[np.concatenate(reps)]) if reps
                                else np.zeros(0, dtype=np.int64))
            self.lock_reasons = tracer.slots.lock_reasons
            if tracer.output_slots:
                self.lock_reasons.append("model output")
            self.trace_warnings = tracer.warnings
            self._add_unwrapped_ports(tracer, unwrapped_parameters, ignored_params)
            self._build_nodes(tracer)
            self._index = self._make_index(tracer, labels, fine)
            expected = tracer.output_shapes
            # the probe builds and runs model copies: let the trace's tables go first
            del labels, fine, tracer
            if validate and traced_on_meta:
                self._fix_groups_the_code_cannot_absorb(
                    model, example_inputs, runner(forward_fn, output_transform), expected,
                    head_rep_classes,
                )
        return self

    def _fix_head_rep_units(self, prober: Prober, classes: np.ndarray) -> None:
        """The head-dim unit holding each head's first dim also holds what a head's scores
        read per head (Swin's relative position bias table): removing it alone would take
        every head's column. Probed alone (the group probe tries only last units); units
        that break are fixed, which leaves whole heads (fine classes) removable."""
        keep = self.index.must_keep()
        ports = self.index.ports
        cls = []
        for c in (int(c) for c in classes if not keep[c]):
            by_port = self.index.positions_by_port(np.asarray([c]))
            emptied = [ports[k].alive[pos].sum() >= ports[k].width() for k, pos in by_port.items()]
            if any(emptied) and not all(emptied):
                # it would take every column of the bias table but not the heads: never a
                # head-dim unit (a unit that empties all its layers is the whole attention)
                self._index.fix(np.asarray([c], dtype=np.int64))
            elif not any(emptied):
                cls.append(c)

        def search(cs: list[int]) -> None:
            ports = unit_ports(self.index, cs) if cs else {}
            if not ports or prober.passes_ports(ports):
                return
            if len(cs) == 1:
                self._index.fix(np.asarray(cs, dtype=np.int64))
                self.lock_reasons.append(
                    "a head-dim unit that also holds per-head tensors (a relative position "
                    "bias): those go with whole heads only")
                return
            search(cs[: len(cs) // 2])
            search(cs[len(cs) // 2:])

        search(cls)

    def _fix_groups_the_code_cannot_absorb(
        self,
        model: nn.Module,
        example_inputs: Any,
        run: Callable[[nn.Module, Any], Any],
        expected: list[tuple[int, ...]],
        head_rep_classes: np.ndarray | None = None,
    ) -> None:
        # only each group's last unit, classes and name: whole groups (index lists of every
        # member, 28672-wide MLPs in a 70B Llama) are never built, not even one at a time
        roots = list(self.group_roots(None, (object,)))
        prober = Prober(self.index, model, example_inputs, run, expected, self.meta_kernels)
        if head_rep_classes is not None and head_rep_classes.size:
            self._fix_head_rep_units(prober, head_rep_classes)
        # the usual case first: every unit at once, straight from the slot table
        picked = [last_unit_class(state, classes) for state, classes in roots]
        at_once = unit_ports(self.index, [c for c in picked if c is not None])
        if not at_once or prober.passes_ports(at_once):
            self.probe_runs = prober.runs
            return
        units: list[Group] = []
        owners: list[tuple[np.ndarray, str]] = []
        for state, classes in roots:
            unit = self.last_unit(state, classes)
            if unit is not None:
                units.append(unit)
                owners.append((classes, state.node.name))
        bad = prober.bad_groups(units, all_fail=True)
        self.probe_runs = prober.runs
        for k in bad:
            classes, name = owners[k]
            self._index.fix(classes)
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

    def _make_index(self, tracer: ChannelTracer, labels: np.ndarray, fine: np.ndarray
                    ) -> ChannelIndex:
        fixed_label, fixed_fine = int(labels[0]), int(fine[0])  # the lock slot's classes
        states: list[PortState] = []
        by_key: dict[tuple[int, str], int] = {}
        for port in sorted(tracer.ports.values(), key=lambda p: p.order):
            node = self.module2node.get(port.target)
            if node is None:
                continue
            handler = self._handler_for(port)
            if handler is None:
                continue
            key = (id(port.target), port.kind)
            state = PortState(
                len(states), port.target, port.kind, port.dim, node, handler,
                labels[port.slots], fine[port.slots], np.ones(port.slots.size, bool),
            )
            prev = by_key.get(key)
            if prev is not None:
                # one port per parameter: prefer a prunable axis (hidden dim of a position
                # embedding) over a fully fixed one (its positions)
                if not (states[prev].labels == fixed_label).all() or (
                    state.labels == fixed_label
                ).all():
                    continue
                state.id = prev
                states[prev] = state
            else:
                by_key[key] = len(states)
                states.append(state)
            if port.dim is not None:
                node.pruning_dim = port.dim
        outputs = (np.concatenate(tracer.output_slots) if tracer.output_slots
                   else np.zeros(0, dtype=np.int64))
        n_labels = int(labels.max()) + 1 if labels.size else 1
        return ChannelIndex(states, n_labels, np.asarray([fixed_label]),
                            np.unique(labels[outputs]), np.asarray([fixed_fine]),
                            np.unique(fine[outputs]))

    def _handler_for(self, port: Port) -> Callable | None:
        if isinstance(port.target, nn.Module):
            pruner = self.registry.lookup(port.target)
            if pruner is None:
                return None
            return pruner.prune_out_channels if port.kind == OUT else pruner.prune_in_channels
        return F.prune_parameter_out_channels

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
        return handler_kind(fn) == OUT

    def is_in_channel_pruning_fn(self, fn: Callable) -> bool:
        return handler_kind(fn) == IN

    def port_of(self, module: Any, pruning_fn: Callable | None = None) -> PortState:
        """The index port `pruning_fn` prunes on `module` (its out side if None)."""
        kind = IN if handler_kind(pruning_fn) == IN else OUT
        state = self._index.port(module, kind)
        if state is None:
            name = self.module2name.get(module, type(module).__name__)
            raise ValueError(
                f"'{name}' has no prunable {kind} channels in the traced graph "
                "(was it used in forward with the example inputs?)"
            )
        return state

    def get_pruning_group(
        self, module: Any, pruning_fn: Callable, idxs: Sequence[int] | np.ndarray
    ) -> Group:
        """All layers coupled to removing `idxs` from `module` via `pruning_fn`.

        Asked for explicitly, a group may reach model outputs (`group.reaches_outputs`):
        it prunes, with a warning, while pruners never offer such groups.
        """
        root = self.port_of(module, pruning_fn)
        idxs = np.asarray(list(idxs) if not isinstance(idxs, np.ndarray) else idxs, dtype=np.int64)
        alive_pos = root.alive_positions()
        if idxs.size and (idxs.min() < 0 or idxs.max() >= alive_pos.size):
            raise IndexError(
                f"channel index out of range for '{root.node.name}' ({alive_pos.size} channels)"
            )
        classes = np.unique(root.labels[alive_pos[idxs]])
        return self.derive_group(root, classes, pruning_fn)

    def sub_group(self, group: Group, root_idxs: Sequence[int]) -> Group:
        """`get_pruning_group` of `root_idxs` (whole channel sets of `group`'s root), read
        off `group` by filtering its members instead of deriving it from the slot table
        again; `group` must be current (else it is derived as usual)."""
        root_item = group[0]
        der = group.derivation
        if der is None or not self.is_current(group):
            return self.get_pruning_group(root_item.dep.target.module, root_item.dep.handler,
                                          root_idxs)
        chosen = np.asarray(root_idxs, dtype=np.int64)
        root = self._index.ports[der.port_ids[0]]
        classes = np.unique(root.labels[root.alive_positions()[chosen]])
        items: list[GroupItem] = []
        port_ids: list[int] = []
        arrays: list[tuple[np.ndarray, np.ndarray]] = []
        for k, item in enumerate(group):
            cur, rid = der.arrays[k]
            keep = np.isin(rid, chosen)
            if not keep.any():
                continue
            cur, rid = cur[keep], rid[keep]
            items.append(GroupItem(item.dep, self._index.int_list(cur),
                                   self._index.int_list(rid)))
            arrays.append((cur, rid))
            port_ids.append(der.port_ids[k])
        return Group(items, self, derivation=Derivation(classes, tuple(port_ids), der.made_at,
                                                        tuple(arrays)),
                     fixed=self._index.is_fixed(classes),
                     reaches_outputs=self._index.reaches_outputs(classes))

    def derive_group(
        self, root: PortState, classes: np.ndarray, trigger: Callable | None = None
    ) -> Group:
        """The group removing every alive position of `classes`, rooted at port `root`:
        the one place groups are made from the index."""
        index = self._index
        trigger = root.handler if trigger is None else trigger
        classes = np.asarray(classes, dtype=np.int64)
        by_port = index.positions_by_port(classes)
        # the root channel behind each class: its lowest current root position
        root_pos = by_port.get(root.id, np.zeros(0, dtype=np.int64))
        root_orig = root_pos[root.alive[root_pos]]
        root_cur = root.current_rank()[root_orig]
        uniq, first = np.unique(root.labels[root_orig], return_index=True)
        ordered = [root.id] + [k for k in by_port if k != root.id]  # by_port: ascending ids
        ports = index.ports
        items: list[GroupItem] = []
        port_ids: list[int] = []
        arrays: list[tuple[np.ndarray, np.ndarray]] = []
        for k in ordered:
            state = ports[k]
            pos = by_port.get(k)
            if pos is None:
                continue
            pos = pos[state.alive[pos]]
            if pos.size == 0:
                continue
            # positions ascend, and so do their current ranks: no sort needed
            cur = state.current_rank()[pos]  # int32 (like the ranks): kept per item below
            rid = root_cur[first[np.searchsorted(uniq, state.labels[pos])]]
            dep = Dependency(trigger, state.handler, root.node, state.node, state.kind)
            items.append(GroupItem(dep, index.int_list(cur), index.int_list(rid)))
            arrays.append((cur, rid))
            port_ids.append(k)
        return Group(items, self,
                     derivation=Derivation(classes, tuple(port_ids), index.serial, tuple(arrays)),
                     fixed=index.is_fixed(classes), reaches_outputs=index.reaches_outputs(classes))

    def rederive(self, group: Group) -> Group:
        """`group` with indices valid now: itself if current, else a fresh twin derived from
        its slot classes (prunes elsewhere shift positions; classes never change)."""
        if self.is_current(group):
            return group
        if group.classes is None:  # hand-made: its root indices are taken as given
            root = group[0]
            return self.get_pruning_group(root.dep.target.module, root.dep.handler,
                                          list(root.idxs))
        root = self.port_of(group[0].dep.target.module, group[0].dep.handler)
        alive_classes = np.unique(root.labels[root.alive])
        classes = np.intersect1d(np.asarray(group.classes, dtype=np.int64), alive_classes)
        return self.derive_group(root, classes, group[0].dep.trigger)

    def channel_sets(self, group: Group) -> ChannelSets:
        """The group's root channels split into units (same slot class), units ordered by
        their first channel, channels inside a unit ascending."""
        root = self.port_of(group[0].dep.target.module, group[0].dep.handler)
        cur = np.asarray(group[0].idxs, dtype=np.int64)
        if not cur.size:
            return ChannelSets.singletons(cur)
        labels = root.labels[root.alive_positions()[cur]]
        # vectorized: a 28672-wide MLP group has 28672 units; np.split per unit took ~1 s
        order = np.lexsort((cur, labels))  # by unit, then position inside the unit
        bounds = np.flatnonzero(np.diff(labels[order])) + 1
        if bounds.size == cur.size - 1:  # every unit one channel (MLP hidden, embeddings)
            return ChannelSets.singletons(np.sort(cur))
        starts = np.concatenate(([0], bounds, [cur.size])).astype(np.int64)
        by_unit = ChannelSets(cur[order], starts)
        return by_unit.reordered(np.argsort(by_unit.firsts, kind="stable"))

    def check_pruning_group(self, group: Group) -> bool:
        """False if the group would empty a layer or touch channels that must keep their
        size; a group reaching model outputs passes (it prunes with a warning)."""
        if group.fixed:
            return False
        der = group.derivation
        derived = der is not None and self.is_current(group)  # items straight from the index
        ports = self._index.ports
        for k, item in enumerate(group):
            if derived:
                n = ports[der.port_ids[k]].width()
                removed = len(item.idxs)  # derived index lists hold no duplicates
            else:
                n = self._current_width(item.dep)
                removed = len(set(item.idxs))
            if n is not None and removed >= n:
                return False
        return True

    def _current_width(self, dep: Dependency) -> int | None:
        state = self._index.port(dep.target.module, dep.kind)
        return state.width() if state is not None else None

    def get_all_groups(
        self,
        ignored_layers: Iterable[Any] | None = None,
        root_module_types: Iterable[type] | None = None,
    ) -> Iterator[Group]:
        """One group per independent set of coupled channels, in execution order."""
        for state, classes in self.group_roots(ignored_layers, root_module_types):
            yield self.derive_group(state, classes)

    def group_roots(
        self, ignored_layers: Iterable[Any] | None = None,
        root_module_types: Iterable[type] | None = None,
    ) -> Iterator[tuple[PortState, np.ndarray]]:
        """(root port, classes) of each group of `get_all_groups`, without building it.

        Classes that must keep their size (fixed, model outputs) or belong to an ignored
        layer's out channels are never offered."""
        root_types = tuple(root_module_types or DEFAULT_ROOT_TYPES)
        if nn.Linear in root_types:  # HF Conv1D (GPT-2) is a Linear with a transposed weight
            root_types += lazy_types()
        ignored = _expand_ignored(ignored_layers)
        covered = self._index.must_keep()
        for state in self._index:
            if state.kind == OUT and id(state.target) in ignored:
                covered[state.labels[state.alive]] = True
        for state in self._index:
            target = state.target
            if state.kind != OUT or id(target) in ignored:
                continue
            if not isinstance(target, root_types):
                continue
            classes = np.unique(state.labels[state.alive])
            classes = classes[~covered[classes]]
            if classes.size == 0:
                continue
            covered[classes] = True
            yield state, classes

    def last_unit(self, root: PortState, classes: np.ndarray) -> Group | None:
        """`probe.smallest_unit` of the group (root, classes), read from the labels.

        That is the unit whose first root channel comes last, or None if it would empty a
        layer; the group's member index lists are never built.
        """
        cls = last_unit_class(root, classes)
        if cls is None:
            return None
        unit = self.derive_group(root, np.asarray([cls]))
        return unit if self.check_pruning_group(unit) else None

    # ============================================================== pruning
    def prune_group(self, group: Group, record_history: bool = True) -> None:
        """Prune `group` (re-derived first if earlier prunes shifted its indices)."""
        group = self.rederive(group)
        if group.fixed:
            raise ValueError(
                "this group touches channels that must keep their size (fixed inputs or "
                "shape-dependent code); pruning it would break the model"
            )
        if not self.check_pruning_group(group):
            raise ValueError("pruning this group would remove every channel of a layer")
        if group.reaches_outputs:
            warnings.warn(
                f"pruning the group of '{self._root_name(group)}' changes the width of model "
                "output(s): code that reads them must expect fewer channels", stacklevel=3)
        for item in group:
            item.dep(item.idxs)
        self._index.remove(group.classes)
        self.refresh_attributes([item.dep.target.module for item in group])
        if record_history and len(group):
            root = group[0]
            self.record_pruning(self._root_name(group), root.dep.kind == OUT, list(root.idxs))

    def _root_name(self, group: Group) -> str:
        target = group[0].dep.target
        return self.module2name.get(target.module, target.name)

    def refresh_attributes(self, touched: Iterable[object] | None = None) -> None:
        """After a prune: width attributes and HF config the model's forward reads (see
        engine.function.attributes); `touched` limits it to what changed."""
        if self._refresher is not None:
            self._refresher(touched)

    def record_pruning(self, name: str, is_out: bool, idxs: Sequence[int]) -> None:
        """Append one replayable entry to the pruning history."""
        self._history.append((name, bool(is_out), list(idxs)))

    def is_current(self, group: Group) -> bool:
        """Whether `group`'s indices are still valid: derived by this graph, and no port it
        touches has lost channels since."""
        der = group.derivation
        if der is None or group.graph is not self:
            return False
        return self._index.is_current(der.port_ids, der.made_at)

    def pruning_history(self) -> list[tuple[str, bool, list[int]]]:
        """Plain data: (root layer name, out-channel pruning?, removed root indices) per prune."""
        return [(n, o, list(i)) for n, o, i in self._history]

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
            if name.startswith(EXPERTS_PREFIX):  # MoE experts' own widths (families.moe)
                replay_experts(self.model, name, list(idxs))
                self.record_pruning(name, bool(is_out), list(idxs))
                self.refresh_attributes()
                continue
            target = modules.get(name, params.get(name))
            if target is None:
                raise ValueError(f"pruning history names '{name}', which this model does not have")
            pruner = self.get_pruner_of_module(target)
            if pruner is None:
                raise ValueError(f"no pruner for '{name}' ({type(target).__name__})")
            fn = pruner.prune_out_channels if is_out else pruner.prune_in_channels
            with warnings.catch_warnings():  # replaying: the user chose this prune before
                warnings.simplefilter("ignore")
                self.get_pruning_group(target, fn, list(idxs)).prune()


# ---------------------------------------------------------------- helpers
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


def _tensor_attributes_to_meta(saved: list[tuple[nn.Module, dict[str, Any]]]) -> None:
    """Plain tensor attributes (caches a forward left behind, e.g. ultralytics' Detect
    anchors) as meta tensors for the meta trace; `_restore_attributes` puts them back.
    Small ones (strides, scales) stay: their elements are read as Python numbers."""
    for m, attrs in saved:
        for k, v in attrs.items():
            if is_cached_tensor(v):
                setattr(m, k, meta_like(v))


def _restore_attributes(saved: list[tuple[nn.Module, dict[str, Any]]]) -> None:
    skip = ("_parameters", "_buffers", "_modules")
    for m, attrs in saved:
        for k in [k for k in vars(m) if k not in attrs and k not in skip]:
            delattr(m, k)
        vars(m).update(attrs)


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

