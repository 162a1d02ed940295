"""Pure edits of a PruningPlan: each returns a NEW plan and never mutates its input.

Undo commands swap whole plans (a plan is a few dicts and lists), so every edit
the GUI offers is one of these functions; keeping them free of Qt makes them
testable on their own and lets undo/redo be exact by construction.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.graph.summary import GroupInfo
from engine.plan import PruningPlan, UserScope
from engine.plan.ratios import RatioSource, resolve_ratio


def _unignored(plan: PruningPlan, names: Iterable[str]) -> list[str]:
    """ignored_layers without `names`: giving a layer a ratio means it should be pruned
    (the engine rejects a layer that is both ignored and given a ratio)."""
    drop = set(names)
    return [n for n in plan.ignored_layers if n not in drop]


def _clean_ratio(ratio: float) -> float:
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio {ratio:g} is outside [0, 1)")
    return round(float(ratio), 4)


def set_layer_ratio(plan: PruningPlan, layer: str, ratio: float | None) -> PruningPlan:
    """Ratio of the group(s) whose out-channels `layer` owns; None removes the override."""
    ratios = dict(plan.layer_ratios)
    if ratio is None:
        ratios.pop(layer, None)
    else:
        ratios[layer] = _clean_ratio(ratio)
        return plan.replace(layer_ratios=ratios, ignored_layers=_unignored(plan, [layer]))
    return plan.replace(layer_ratios=ratios)


def set_group_ratio(plan: PruningPlan, root: str, ratio: float | None) -> PruningPlan:
    """Ratio of the group rooted at `root` (group id = root module path); None clears it."""
    ratios = dict(plan.group_ratios)
    if ratio is None:
        ratios.pop(root, None)
    else:
        ratios[root] = _clean_ratio(ratio)
        return plan.replace(group_ratios=ratios, ignored_layers=_unignored(plan, [root]))
    return plan.replace(group_ratios=ratios)


def make_scope(
    plan: PruningPlan, layers: Iterable[str], ratio: float, name: str = ""
) -> PruningPlan:
    """One shared ranking and ratio for `layers`; they leave any scope they were in before
    (a layer can rank in only one scope), and scopes left empty disappear."""
    chosen = list(dict.fromkeys(layers))
    if len(chosen) < 1:
        raise ValueError("a user scope needs at least one layer")
    taken = set(chosen)
    scopes = []
    for s in plan.scopes:
        rest = [x for x in s.layers if x not in taken]
        if rest:
            scopes.append(UserScope(rest, s.ratio, s.name))
    used = {s.name for s in scopes}
    if not name:
        k = 1
        while f"#{k}" in used:
            k += 1
        name = f"#{k}"
    scopes.append(UserScope(chosen, _clean_ratio(ratio), name))
    return plan.replace(scopes=scopes, ignored_layers=_unignored(plan, chosen))


def set_scope_ratio(plan: PruningPlan, name: str, ratio: float) -> PruningPlan:
    scopes = [
        UserScope(list(s.layers), _clean_ratio(ratio) if s.name == name else s.ratio, s.name)
        for s in plan.scopes
    ]
    return plan.replace(scopes=scopes)


def leave_scopes(plan: PruningPlan, layers: Iterable[str]) -> PruningPlan:
    """Take layers out of whatever scope holds them; scopes left empty disappear."""
    drop = set(layers)
    scopes = [
        UserScope([x for x in s.layers if x not in drop], s.ratio, s.name)
        for s in plan.scopes
        if any(x not in drop for x in s.layers)
    ]
    return plan.replace(scopes=scopes)


def remove_scope(plan: PruningPlan, name: str) -> PruningPlan:
    return plan.replace(scopes=[s for s in plan.scopes if s.name != name])


def set_ignored(plan: PruningPlan, layers: Iterable[str], ignored: bool) -> PruningPlan:
    """Add or remove layers from ignored_layers, keeping the list's order stable. Ignoring
    a layer also drops its own ratios and scope membership (the engine rejects both at once);
    undo brings them back."""
    names = list(dict.fromkeys(layers))
    if not ignored:
        return plan.replace(ignored_layers=_unignored(plan, names))
    current = list(plan.ignored_layers) + [n for n in names if n not in plan.ignored_layers]
    drop = set(names)
    scopes = leave_scopes(plan, names).scopes
    return plan.replace(
        ignored_layers=current,
        layer_ratios={k: v for k, v in plan.layer_ratios.items() if k not in drop},
        group_ratios={k: v for k, v in plan.group_ratios.items() if k not in drop},
        scopes=scopes,
    )


def set_block_dropped(plan: PruningPlan, block: str, dropped: bool) -> PruningPlan:
    """Add a whole residual block to drop_blocks (or take it out), order kept; whether the
    name is removable is checked by the engine when the plan is previewed."""
    names = [n for n in plan.drop_blocks if n != block]
    if dropped:
        names.append(block)
    return plan.replace(drop_blocks=names)


def set_options(plan: PruningPlan, **changes: object) -> PruningPlan:
    """Global settings (criterion, mode, default ratio, ...); unknown names raise."""
    for key in changes:
        if not hasattr(plan, key):
            raise AttributeError(f"PruningPlan has no setting {key!r}")
    return plan.replace(**changes)


def ratio_of(plan: PruningPlan, root: str, out_layers: Iterable[str] | None = None) -> RatioSource:
    """What the group rooted at `root` gets: the engine's own resolver (no copy of its rules).
    Pass the group's out-channel members so container layer ratios and scopes match."""
    return resolve_ratio(plan, root, out_layers)


def group_ratios_shown(plan: PruningPlan, groups: Iterable[GroupInfo]) -> dict[str, RatioSource]:
    """root -> RatioSource for the groups table, each group matched by its out-channel
    members exactly as the pruner matches it."""
    return {
        g.root: ratio_of(plan, g.root, [m.node for m in g.members if m.kind == "out"])
        for g in groups
    }


def scope_of(plan: PruningPlan, layer: str) -> UserScope | None:
    return next((s for s in plan.scopes if layer in s.layers), None)
