"""Whole attention heads: find them through fine classes, score them, remove them.

Ordinary classes hold the same position of every head (a reshape to (heads,
head_dim) unites across heads), which is what head-dim pruning needs. A whole
head is instead a set of *fine* classes: the classes resolved without those
structural unites (slots.py). Declared head layers (`num_heads`, as in
Torch-Pruning; every nn.MultiheadAttention is declared implicitly) say which
of their output positions form head h; the fine classes of those positions
reach every coupled layer (k, v, o_proj in, a shared residual stream in ViT).

Grouped Query Attention: declared layers of one attention block (same parent)
may have H query heads and Hkv key/value heads; a removable unit is one KV
head with the H/Hkv query heads that read it, so q-per-kv stays valid. Units of
different layers that share fine classes (ViT's blocks share the residual
stream) are one unit.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn

from ..function.attributes import refresh_attributes
from .channel_index import OUT, ChannelIndex, PortState
from .channel_sets import ChannelSets
from .forward import output_shapes, to_meta
from .group import Dependency, Group, GroupItem, GroupOwner
from .probe import meta_copy

HEADS_PREFIX = "heads:"  # pruning-history entries that removed whole heads
# the stamps are engine.families.refresh's HEAD_COUNT_ATTR / KV_COUNT_ATTR
_Q_NAMES = ("num_heads", "num_attention_heads", "n_heads", "n_head", "heads",
            "_arborist_num_heads")
_KV_NAMES = ("num_key_value_heads", "num_kv_heads", "n_kv_heads", "_arborist_num_kv_heads")


@dataclasses.dataclass
class HeadMember:
    """One declared head layer: its out port and head layout."""

    module: nn.Module
    name: str
    parent: str
    n_heads: int
    per_unit: int = 1  # heads of this layer that one unit removes (q heads per KV head)
    shared: int = 0  # positions in no unit (Falcon multi-query's one k/v head)


@dataclasses.dataclass
class HeadUnit:
    fine: np.ndarray  # fine classes that form this unit (all layers)
    index: int  # position among its scope's units (lowest head index in the first member)


@dataclasses.dataclass
class HeadScope:
    """Units that compete with each other: same declared layers, same layout."""

    name: str
    members: list[HeadMember]
    units: list[HeadUnit]


class HeadGraph(GroupOwner, Protocol):
    """What whole-head pruning reads and calls on the dependency graph."""

    model: nn.Module | None
    module2name: dict[Any, str]

    @property
    def index(self) -> ChannelIndex: ...

    def record_pruning(self, name: str, is_out: bool, idxs: Sequence[int]) -> None: ...

    def refresh_attributes(self, touched: Iterable[object] | None = None) -> None: ...


def _out_state(dg: HeadGraph, module: Any) -> PortState | None:
    state = dg.index.port(module, OUT)
    return state if state is not None and state.kind == OUT else None


def _head_of_positions(
    module: nn.Module, width: int, n: int, fused: bool, known_fused: bool = False
) -> np.ndarray | None:
    """Head index of every current out position: blocks of head_dim, repeated for a
    fused qkv projection (3 * heads blocks)."""
    stack = 3 if fused and (
        known_fused or (isinstance(module, nn.Linear) and width == 3 * module.in_features)
    ) else 1
    if n < 1 or width % (stack * n):
        return None
    return (np.arange(width) // (width // (stack * n))) % n


def _one_unit_per_class(fine: np.ndarray, unit: np.ndarray) -> bool:
    """Every fine class lies inside one unit (else the head layout guess is wrong)."""
    pairs = np.unique(np.stack([fine, unit]), axis=1)
    return np.unique(pairs[0]).size == pairs.shape[1]


def _fused_qkv(dg: HeadGraph, parent: str, module: nn.Module) -> bool:
    """`module` is the fused q|k|v projection of a known attention family (timm `qkv`,
    GPT-2's Conv1D `c_attn`): its in width says nothing once the hidden dim is pruned."""
    from ..families.attention import fused_names, head_layout  # lazy: families imports function

    owner = dict(dg.model.named_modules()).get(parent) if dg.model is not None else None
    layout = head_layout(owner) if owner is not None else None
    if layout is None or layout[0] not in ("gpt2", "fused"):
        return False
    name = "c_attn" if layout[0] == "gpt2" else fused_names(owner)[0]
    return module is getattr(owner, name, None)


def _packed_units(
    dg: HeadGraph, parent: str, module: nn.Module, width: int
) -> tuple[np.ndarray, int, int] | None:
    """Units of a packed q|k|v projection (`engine.families.attention.packed_units`)."""
    from ..families.attention import packed_units  # lazy: families imports function

    owner = dict(dg.model.named_modules()).get(parent) if dg.model is not None else None
    packed = getattr(owner, "qkv_proj", getattr(owner, "query_key_value", None))
    if owner is None or module is not packed:
        return None
    return packed_units(owner, width)


def declared_heads(model: nn.Module, num_heads: dict[nn.Module, int]) -> dict[nn.Module, int]:
    """`num_heads` plus every nn.MultiheadAttention (its head count is known); when none are
    declared at all, the attention of known families too (Hugging Face, timm: a no-code tool
    cannot write `num_heads`), as `engine.families.detect_num_heads` finds it."""
    out = dict(num_heads)
    if not out:
        from ..families.attention import detect_num_heads  # lazy: families imports function

        out.update(detect_num_heads(model))
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention) and m not in out:
            out[m] = m.num_heads
    return out


def find_head_scopes(
    dg: HeadGraph, num_heads: dict[nn.Module, int]
) -> tuple[list[HeadScope], list[str]]:
    """Head units of every declared attention, grouped into ranking scopes; plus the
    reasons some declared layers cannot lose whole heads."""
    problems: list[str] = []
    by_parent: dict[str, list[HeadMember]] = {}
    for m, n in num_heads.items():
        name = dg.module2name.get(m, type(m).__name__)
        parent = name if isinstance(m, nn.MultiheadAttention) else name.rpartition(".")[0]
        by_parent.setdefault(parent, []).append(HeadMember(m, name, parent, int(n)))
    nodes: list[tuple[HeadMember, int, np.ndarray]] = []  # (member, unit j, its fine labels)
    node_of: dict[tuple[str, int], int] = {}
    for parent, members in by_parent.items():
        counts = {mb.n_heads for mb in members}
        h, hkv = max(counts), min(counts)
        if not counts <= {h, hkv} or h % hkv:
            problems.append(f"'{parent}': head counts {sorted(counts)} are not H and H/k")
            continue
        for mb in members:
            state = _out_state(dg, mb.module)
            if state is None or state.fine is None:
                problems.append(f"'{mb.name}' has no traced output channels")
                continue
            orig = np.flatnonzero(state.alive)
            heads = _head_of_positions(mb.module, orig.size, mb.n_heads, len(members) == 1,
                                       _fused_qkv(dg, parent, mb.module))
            if heads is None:
                problems.append(f"'{mb.name}': {orig.size} channels do not split into "
                                f"{mb.n_heads} heads")
                continue
            mb.per_unit = h // hkv if mb.n_heads == h else 1
            unit = heads // mb.per_unit
            n_units = hkv
            fine_here = state.fine[orig]
            packed = _packed_units(dg, parent, mb.module, orig.size) if len(members) == 1 \
                else None
            if packed is not None:  # Phi-3, Falcon, GPT-NeoX: q|k|v in one layer, GQA too
                unit, n_units, mb.per_unit = packed
                mb.shared = int((unit < 0).sum())
            elif len(members) == 1 and not _one_unit_per_class(fine_here, unit):
                # an unknown fused q|k|v projection: q and k of one head share a fine class
                stacked = _head_of_positions(mb.module, orig.size, mb.n_heads, True, True)
                if stacked is not None and _one_unit_per_class(fine_here, stacked):
                    unit = stacked
            for j in range(n_units):
                key = (parent, j)
                if key not in node_of:
                    node_of[key] = len(node_of)  # ids index parent_of below
                nodes.append((mb, node_of[key], state.fine[orig[unit == j]]))
    if not nodes:
        return [], problems
    # union-find over (parent, unit j): joined by sharing any fine class
    parent_of = list(range(len(node_of)))

    def find(a: int) -> int:
        while parent_of[a] != a:
            parent_of[a] = parent_of[parent_of[a]]
            a = parent_of[a]
        return a

    owner: dict[int, int] = {}
    for _, k, fine in nodes:
        for f in np.unique(fine).tolist():
            other = owner.setdefault(f, k)
            ra, rb = find(other), find(k)
            if ra != rb:
                parent_of[rb] = ra
    comps: dict[int, list[tuple[HeadMember, np.ndarray]]] = {}
    for mb, k, fine in nodes:
        comps.setdefault(find(k), []).append((mb, fine))
    scopes: dict[tuple, HeadScope] = {}
    bad_members: set[int] = set()
    for items in comps.values():
        fine = np.unique(np.concatenate([f for _, f in items]))
        if dg.index.fine_must_keep(fine):
            bad_members.update(id(mb.module) for mb, _ in items)
            continue
        members = sorted({id(mb.module): mb for mb, _ in items}.values(), key=lambda x: x.name)
        key = tuple(id(mb.module) for mb in members)
        first = _out_state(dg, members[0].module)
        pos = np.flatnonzero(first.alive & np.isin(first.fine, fine))
        index = int(first.current_rank()[pos].min()) if pos.size else 0
        name = " + ".join(mb.name for mb in members)
        scope = scopes.setdefault(key, HeadScope(name, members, []))
        scope.units.append(HeadUnit(fine, index))
    for scope in scopes.values():
        scope.units.sort(key=lambda u: u.index)
        if not _units_are_whole(dg, scope):
            problems.append(f"heads of '{scope.name}' are entangled with other channels")
            bad_members.update(id(mb.module) for mb in scope.members)
    if bad_members:
        problems.append("some heads feed locked channels (model outputs or fixed shapes)")
    good = [s for s in scopes.values() if not any(id(m.module) in bad_members for m in s.members)]
    return good, problems


def _units_are_whole(dg: HeadGraph, scope: HeadScope) -> bool:
    """Every unit removes the same number of positions from each declared layer."""
    for mb in scope.members:
        state = _out_state(dg, mb.module)
        sizes = {int((state.alive & np.isin(state.fine, u.fine)).sum()) for u in scope.units}
        width = int(state.alive.sum()) - mb.shared
        if len(sizes) != 1 or sizes.pop() * len(scope.units) != width:
            return False
    return True


def _positions(dg: HeadGraph, fine: np.ndarray) -> list[tuple[PortState, np.ndarray]]:
    return dg.index.fine_positions(fine)


def fine_group(dg: HeadGraph, root_module: Any, fine: np.ndarray) -> Group:
    """A Group (for importance criteria) rooted at `root_module`'s positions in `fine`,
    with every coupled position mapped onto the root position of its fine class."""
    root = _out_state(dg, root_module)
    rmask = root.alive & np.isin(root.fine, fine)
    r_cur = root.current_rank()[rmask]
    r_fine = root.fine[rmask]
    order = np.argsort(r_fine, kind="stable")
    uniq, first = np.unique(r_fine[order], return_index=True)
    lowest = {int(f): int(r_cur[order][i]) for f, i in zip(uniq, first, strict=True)}
    items = []
    entries = [(root, rmask)] + [(s, m) for s, m in _positions(dg, uniq) if s is not root]
    for state, mask in entries:
        cur = state.current_rank()[mask]
        roots = [lowest.get(int(f)) for f in state.fine[mask]]
        keep = [i for i, r in enumerate(roots) if r is not None]
        if not keep:
            continue
        dep = Dependency(root.handler, state.handler, root.node, state.node, state.kind)
        items.append(GroupItem(dep, [int(cur[i]) for i in keep], [roots[i] for i in keep]))
    return Group(items, dg)


class HeadGroup(Group):
    """Whole heads of one scope as a Group: pruning removes exactly their positions."""

    def __init__(self, dg: HeadGraph, scope: HeadScope, units: list[HeadUnit]) -> None:
        fine = np.unique(np.concatenate([u.fine for u in units]))
        root = _out_state(dg, scope.members[0].module)
        items: list[GroupItem] = []
        for state, mask in _positions(dg, fine):
            dep = Dependency(root.handler, state.handler, root.node, state.node, state.kind)
            item = GroupItem(dep, state.current_rank()[mask].tolist(), None)
            if state is root:
                items.insert(0, item)
            else:
                items.append(item)
        super().__init__(items, dg)
        self.scope = scope
        self.units = units
        self.fine = fine

    def channel_sets(self) -> list[list[int]]:
        return [list(self._group[0].idxs)] if self._group else []

    def channel_set_arrays(self) -> ChannelSets:
        return ChannelSets.from_lists(self.channel_sets())

    def prune(self, idxs: Any = None, record_history: bool = True) -> None:
        if idxs is not None:
            raise ValueError("a head group removes whole heads; it cannot be re-targeted")
        prune_heads(self.graph, self.scope.members, self.fine, len(self.units), record_history)


def prune_heads(
    dg: HeadGraph,
    members: list[HeadMember],
    fine: np.ndarray,
    n_units: int,
    record_history: bool = True,
) -> None:
    """Remove every position in `fine` from every layer, then fix head-count attributes.

    Removed layer by layer so the history holds one replayable entry per declared layer
    (a q head and its v head share no fine class): the first entry also rescales the
    owner's head counts on replay, the others (`heads:+`) only remove.
    """
    entries = []
    for mb in members:
        state = _out_state(dg, mb.module)
        mask = state.alive & np.isin(state.fine, fine)
        if not mask.any():
            continue
        prefix = HEADS_PREFIX if not entries else HEADS_PREFIX + "+"
        entries.append((prefix + mb.name, True, state.current_rank()[mask].tolist()))
        _remove(dg, np.unique(state.fine[mask]))
    _remove(dg, fine)  # anything no declared layer reaches (none for well-formed units)
    for parent in {mb.parent for mb in members}:
        _update_parent(dg, parent, [mb for mb in members if mb.parent == parent], n_units)
    for mb in members:
        mb.n_heads -= mb.per_unit * n_units
    dg.refresh_attributes()
    if record_history:
        for entry in entries:
            dg.record_pruning(*entry)


def _remove(dg: HeadGraph, fine: np.ndarray) -> None:
    removed = []
    for state, mask in _positions(dg, fine):
        dep = Dependency(None, state.handler, state.node, state.node, state.kind)
        dep(state.current_rank()[mask].tolist())
        removed.append((state, mask))
    dg.index.remove_positions(removed)


def _update_parent(dg: HeadGraph, parent: str, members: list[HeadMember], n: int) -> None:
    """Head counts stored on the attention module that owns separate q/k/v layers."""
    if dg.model is not None:
        _set_counts(dict(dg.model.named_modules()).get(parent), members, n)


def set_head_counts(modules: dict[str, nn.Module], members: list[HeadMember], n: int) -> None:
    """Lower the head counts stored on each attention owner in `modules` (name -> module) as
    removing `n` units of `members` does; for copies pruned outside the graph (previews).
    Call `refresh_attributes` afterwards, as `prune_heads` does."""
    for parent in {mb.parent for mb in members}:
        _set_counts(modules.get(parent), [mb for mb in members if mb.parent == parent], n)


def _set_counts(owner: nn.Module | None, members: list[HeadMember], n: int) -> None:
    if owner is None or any(isinstance(mb.module, nn.MultiheadAttention) for mb in members):
        return  # the MHA pruner updates num_heads itself
    h = max(mb.n_heads for mb in members)
    per_q = max(mb.per_unit for mb in members)
    hkv = min(mb.n_heads for mb in members)
    if len(members) == 1 and per_q > 1:  # a packed q|k|v layer: its units are KV heads
        hkv = h // per_q
    for attr in _Q_NAMES:
        if getattr(owner, attr, None) == h and isinstance(getattr(owner, attr), int):
            setattr(owner, attr, h - per_q * n)
    for attr in _KV_NAMES:
        if getattr(owner, attr, None) == hkv and isinstance(getattr(owner, attr), int):
            setattr(owner, attr, hkv - n)


def scopes_that_break(
    dg: HeadGraph,
    model: nn.Module,
    example_inputs: Any,
    run: Callable[[nn.Module, Any], Any],
    scopes: list[HeadScope],
) -> list[int]:
    """Indices of scopes whose whole-head removal breaks the forward, found like the graph's
    probe: remove one unit of every scope on a weightless copy, run it, bisect failures.
    (E.g. `num_heads` declared for q_proj only: its v/o heads would be left behind.)

    A forward that cannot run on the meta device at all (Hugging Face's mask code reads
    the values of an attention_mask) is checked on real copies instead: otherwise every
    head would be refused for a reason that has nothing to do with heads."""
    meta_inputs = to_meta(example_inputs)

    def baseline_on_meta() -> bool:
        try:
            with torch.no_grad():
                run(meta_copy(model), meta_inputs)
            return True
        except Exception:
            return False

    on_meta = baseline_on_meta()
    inputs = meta_inputs if on_meta else example_inputs

    def clone_of(copies: dict[int, Any]) -> nn.Module:
        if on_meta:
            return meta_copy(model, copies)
        return copy.deepcopy(model, copies)  # type: ignore[arg-type]

    def passes(idx: list[int]) -> bool:
        copies: dict[int, Any] = {}  # id(original layer or parameter) -> its copy
        clone = clone_of(copies)
        blocks = dict(clone.named_modules(remove_duplicate=False))  # parents, by name
        try:
            with torch.no_grad():
                expected = output_shapes(run(clone, inputs))
                for i in idx:
                    scope = scopes[i]
                    for state, mask in _positions(dg, scope.units[-1].fine):
                        target = copies[id(state.node.module)]
                        cur = state.current_rank()[mask].tolist()
                        if state.node.pruning_dim is not None:
                            state.handler(target, cur, dim=state.node.pruning_dim)
                        else:
                            state.handler(target, cur)
                    for parent in {mb.parent for mb in scope.members}:
                        group = [mb for mb in scope.members if mb.parent == parent]
                        _set_counts(blocks.get(parent), group, 1)
                refresh_attributes(clone)
                return output_shapes(run(clone, inputs)) == expected
        except Exception:
            return False

    bad: list[int] = []

    def search(idx: list[int]) -> None:
        if not idx or passes(idx):
            return
        if len(idx) == 1:
            bad.append(idx[0])
            return
        search(idx[: len(idx) // 2])
        search(idx[len(idx) // 2:])

    search(list(range(len(scopes))))
    return bad


def replay_heads(dg: HeadGraph, name: str, idxs: list[int]) -> None:
    """Re-apply a recorded whole-head removal (`heads:<layer>` history entry).

    Every unit removes the same fraction of each declared layer's heads (1/Hkv of the
    query and of the KV heads alike), so the owner's head counts scale with the root.
    """
    scale = not name.startswith(HEADS_PREFIX + "+")
    layer = name[len(HEADS_PREFIX) + (0 if scale else 1):]
    module = dict(dg.model.named_modules()).get(layer) if dg.model is not None else None
    state = _out_state(dg, module) if module is not None else None
    if state is None:
        raise ValueError(f"pruning history names '{name}', which this model does not have")
    width = int(state.alive.sum())
    orig = np.flatnonzero(state.alive)[np.asarray(idxs, dtype=np.int64)]
    mha = isinstance(module, nn.MultiheadAttention)
    member = HeadMember(module, layer, layer if mha else layer.rpartition(".")[0], 1, 0)
    prune_heads(dg, [member], np.unique(state.fine[orig]), 0, record_history=False)
    dg.record_pruning(name, True, list(idxs))
    owner = None if mha or not scale else dict(dg.model.named_modules()).get(member.parent)
    kept = width - len(idxs)
    for attr in (*_Q_NAMES, *_KV_NAMES):
        value = getattr(owner, attr, None) if owner is not None else None
        if isinstance(value, int) and not isinstance(value, bool) and value * kept % width == 0:
            setattr(owner, attr, value * kept // width)
