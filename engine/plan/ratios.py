"""The one ratio resolver: which plan entry decides the ratio of a group.

Precedence (first match wins, the order of BasePruner's `pruning_ratio_dict`):

1. `scopes`      : a user scope holding one of the group's out-channel layers;
2. `group_ratios`: the group rooted at that module path;
3. `layer_ratios`: a layer owning out-channels of the group, or a container holding
   one; the most specific path wins over its ancestors ("" is the whole model);
4. `pruning_ratio`: every other group.

A group is matched by its out-channel members (a layer whose input channels a group
trims does not put the group in that layer's scope). The plan builder (ratio_dict),
the validation (coupled layers asking for different ratios), the pruner's scope
matching and the GUI tables all go through `ratio_entries` + `first_covering`, so what
a table shows is what the pruner does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..pruner.scopes import first_covering
from .schema import PruningPlan


@dataclass(frozen=True)
class RatioEntry:
    """One plan entry that sets a ratio, with the layer paths it covers."""

    origin: str  # "scope NAME" | "group" | "layer"
    keys: tuple[str, ...]  # module paths; each covers itself and its submodules
    ratio: float

    def covers(self, layer: str) -> bool:
        return any(covers(k, layer) for k in self.keys)


@dataclass(frozen=True)
class RatioSource:
    """The ratio a group gets and the plan entry it comes from (for display and tests)."""

    ratio: float | None  # None when the root layer is ignored
    origin: str  # "default", "group", "layer", "scope NAME", "ignored"
    # the deciding plan key ("layer1" for a container's layer ratio); explanation only
    key: str = field(default="", compare=False)


def covers(key: str, layer: str) -> bool:
    """A module path covers itself and everything below it; "" is the whole model."""
    return key == "" or layer == key or layer.startswith(key + ".")


def ratio_entries(plan: PruningPlan) -> list[RatioEntry]:
    """Every ratio-setting entry of `plan`, in precedence order."""
    entries = [RatioEntry(f"scope {s.name}", tuple(s.layers), s.ratio) for s in plan.scopes]
    entries += [RatioEntry("group", (n,), r) for n, r in plan.group_ratios.items()]
    for name in sorted(plan.layer_ratios, key=lambda n: -n.count(".") - (n != "")):
        entries.append(RatioEntry("layer", (name,), plan.layer_ratios[name]))
    return entries


class RatioResolver:
    """Resolves groups (root + out-channel layers) against one plan's entries."""

    def __init__(self, plan: PruningPlan) -> None:
        self.plan = plan
        self.entries = ratio_entries(plan)

    def entry_for(self, out_layers: Iterable[str]) -> RatioEntry | None:
        """The first entry (by precedence) covering one of `out_layers`, else None."""
        layers = list(out_layers)
        return first_covering(self.entries, layers, RatioEntry.covers)

    def layer_key(self, layer: str) -> str | None:
        """The most specific layer_ratios key covering `layer` (None: none does)."""
        only_layers = [e for e in self.entries if e.origin == "layer"]
        hit = first_covering(only_layers, [layer], RatioEntry.covers)
        return hit.keys[0] if hit is not None else None

    def resolve(self, root: str, out_layers: Iterable[str] | None = None) -> RatioSource:
        """What ratio the group rooted at `root` gets. `out_layers`: the group's members
        whose out-channels it prunes (GroupInfo members of kind "out"); default: the root."""
        if any(covers(k, root) for k in self.plan.ignored_layers):
            return RatioSource(None, "ignored")
        layers = list(out_layers) if out_layers is not None else [root]
        if root not in layers:
            layers.insert(0, root)
        hit = self.entry_for(layers)
        if hit is None:
            return RatioSource(self.plan.pruning_ratio, "default")
        key = next(k for k in hit.keys if any(covers(k, x) for x in layers))
        return RatioSource(hit.ratio, hit.origin, key)


def resolve_ratio(
    plan: PruningPlan, root: str, out_layers: Iterable[str] | None = None
) -> RatioSource:
    """RatioResolver(plan).resolve(root, out_layers), for a single lookup."""
    return RatioResolver(plan).resolve(root, out_layers)
