"""Plain-data description of one pruning step, for previews (GUI) and tests.

`BasePruner.plan_step()` returns these without touching the model;
`BasePruner.step()` applies exactly the plan last returned for that step.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class MemberPlan:
    """One coupled layer (or parameter) of a group and how many of its channels go."""

    name: str
    handler: str  # e.g. "prune_conv_out_channels"
    n_removed: int


@dataclasses.dataclass(frozen=True)
class GroupPlan:
    """What one group loses in the next step.

    `idxs` are the root's CURRENT channel indices to remove (before this step);
    `channels_before/after` are the root's prunable width around the step.
    """

    root_name: str
    root_handler: str
    scope: str
    channels_before: int
    channels_after: int
    idxs: list[int]
    members: list[MemberPlan]

    @property
    def n_removed(self) -> int:
        return len(self.idxs)
