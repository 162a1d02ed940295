"""Importance criteria: shared plumbing from per-member scores to one score per root channel.

A criterion only says how much each pruned row of one member layer matters
(`_member_scores`). This module scatters those rows onto the root's channels
through `GroupItem.root_idxs` (a flattened conv feeding a Linear maps many Linear
columns onto one conv channel, so rows are summed per channel first), reduces
across members and normalizes, so groups become comparable in global ranking.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..function import handler_kind
from ..function.hf_conv1d import lazy_types
from ..graph import Group
from .slices import BothAxes

REDUCTIONS = ("mean", "sum", "max", "prod", "first", "gate", None)
NORMALIZERS = ("mean", "max", "sum", "standardization", "standarization", "gaussian", "lamp")
# plus "sentinel_<q>": divide by the score at quantile q (sentinel_0.5: the median)

DEFAULT_TARGET_TYPES: tuple[type, ...] = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
)


class Importance(abc.ABC):
    """Callable on a Group; returns one score per root channel (`len(group[0].idxs)`).

    None means the group has nothing this criterion can score; pruners skip it.
    """

    @abc.abstractmethod
    def __call__(self, group: Group) -> torch.Tensor | None: ...


def is_out_handler(handler: Callable) -> bool:
    """Whether `handler` prunes out channels (see engine.function.handler_kind)."""
    return handler_kind(handler) == "out"


def root_positions(group: Group) -> tuple[torch.Tensor, dict[int, int]]:
    """Root channel indices (as given) and a map root index -> position in them."""
    root = list(group[0].idxs)
    return torch.as_tensor(root, dtype=torch.long), {r: i for i, r in enumerate(root)}


class GroupScorer(Importance):
    """Base for criteria scored member by member, then reduced and normalized."""

    def __init__(
        self,
        group_reduction: str | None = "mean",
        normalizer: str | Callable | None = "mean",
        bias: bool = False,
        target_types: Sequence[type] = DEFAULT_TARGET_TYPES,
    ) -> None:
        if group_reduction not in REDUCTIONS:
            raise ValueError(
                f"group_reduction must be one of {REDUCTIONS}, got {group_reduction!r}")
        if not (normalizer is None or callable(normalizer) or normalizer in NORMALIZERS
                or _sentinel_quantile(normalizer) is not None):
            raise ValueError(f"normalizer must be None, a callable, 'sentinel_<q>' (0 <= q <= "
                             f"1) or one of {NORMALIZERS}, got {normalizer!r}")
        self.group_reduction = group_reduction
        self.normalizer = normalizer
        self.bias = bias
        self.target_types = tuple(target_types)
        # HF Conv1D (GPT-2) is a Linear for scoring; matched lazily, never imported
        self._hf_conv1d = nn.Linear in self.target_types
        self._both_axes: BothAxes | None = None

    @contextlib.contextmanager
    def sharing_layer_reads(self) -> Iterator[None]:
        """While a pruner plans (weights unchanged), criteria that read weights read
        each plain layer once for both of its channel axes (see slices.BothAxes)."""
        previous = getattr(self, "_both_axes", None)
        self._both_axes = previous if previous is not None else BothAxes()
        try:
            yield
        finally:
            self._both_axes = previous

    @abc.abstractmethod
    def _member_scores(
        self, layer: nn.Module, is_out: bool, idxs: np.ndarray
    ) -> list[torch.Tensor]:
        """Scores per entry of `idxs` (an int64 array; one tensor per scored parameter,
        e.g. weight and bias)."""

    @torch.no_grad()
    def __call__(self, group: Group) -> torch.Tensor | None:
        root = group.item_arrays(0)[0] if len(group) else np.zeros(0, dtype=np.int64)
        pos = _Positions(root)
        n = root.size
        per_member: list[tuple[torch.Tensor, torch.Tensor]] = []  # (scores[n], covered[n])
        for k, item in enumerate(group):
            layer = item.dep.target.module
            if not isinstance(layer, self.target_types) and not (
                self._hf_conv1d and isinstance(layer, lazy_types())
            ):
                continue
            idxs, roots = group.item_arrays(k)
            idxs = idxs.astype(np.int64, copy=False)  # criteria index torch tensors with it
            for scores in self._member_scores(layer, item.dep.kind == "out", idxs):
                per_member.append(_to_root(scores, pos(roots), n))
        if not per_member:
            return None
        return normalize(reduce(per_member, self.group_reduction, n), self.normalizer)


class _Positions:
    """Root index -> position among the root's indices, vectorized (no per-channel dict)."""

    def __init__(self, root: np.ndarray) -> None:
        self.root = root
        self.sorted = bool(root.size < 2 or (np.diff(root) > 0).all())
        self._dict: dict[int, int] | None = None

    def __call__(self, idxs: Sequence[int] | np.ndarray) -> np.ndarray:
        q = np.asarray(idxs, dtype=np.int64).reshape(-1)
        if q.size == 0:
            return np.zeros(0, dtype=np.int64)
        if self.sorted and self.root.size:
            where = np.searchsorted(self.root, q).clip(max=self.root.size - 1)
            hit = self.root[where] == q
            if not hit.all():
                raise KeyError(int(q[~hit][0]))  # same error as the dict lookup
            return where.astype(np.int64, copy=False)
        if self._dict is None:
            self._dict = {int(r): i for i, r in enumerate(self.root)}
        return np.asarray([self._dict[int(r)] for r in q], dtype=np.int64)


def _to_root(scores: torch.Tensor, where: np.ndarray, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum a member's per-index scores onto root positions `where` (scores of indices
    behind the same root channel add up)."""
    values = scores.detach().to("cpu", torch.float64).reshape(-1).numpy()
    if where.size == n and (where == np.arange(n)).all():  # one entry per root channel, in order
        return torch.from_numpy(values.copy()), torch.ones(n, dtype=torch.bool)
    out = np.bincount(where, weights=values, minlength=n) if where.size else np.zeros(n)
    covered = np.zeros(n, dtype=bool)
    covered[where] = True
    return torch.from_numpy(out), torch.from_numpy(covered)


def reduce(
    members: list[tuple[torch.Tensor, torch.Tensor]], how: str | None, n: int
) -> torch.Tensor:
    """Combine member scores per root channel; members not covering a channel are left out.

    "first" / "gate" keep the first / last scored member (Torch-Pruning's names); None
    keeps every member: a (members, n) matrix with 0 where a member does not reach a
    channel (for analysis; pruners need one score per channel).
    """
    scores = torch.stack([s for s, _ in members])
    covered = torch.stack([c for _, c in members])
    count = covered.sum(0).clamp(min=1)
    if how is None:
        return torch.where(covered, scores, torch.zeros_like(scores))
    if how == "first":
        return scores[0]
    if how == "gate":
        return scores[-1]
    if how in ("sum", "mean"):
        total = torch.where(covered, scores, torch.zeros_like(scores)).sum(0)
        return total if how == "sum" else total / count
    if how == "max":
        return torch.where(covered, scores, torch.full_like(scores, -torch.inf)).amax(0)
    return torch.where(covered, scores, torch.ones_like(scores)).prod(0)  # prod


def normalize(imp: torch.Tensor, how: str | Callable | None) -> torch.Tensor:
    """Scale a group's scores so groups are comparable; a zero denominator leaves them as is."""
    imp = imp.to(torch.float32)
    if how is None:
        return imp
    if callable(how):
        return how(imp)
    if how == "lamp":
        return lamp(imp)
    if how in ("standardization", "standarization"):  # Torch-Pruning's spelling too
        return (imp - imp.min()) / (imp.max() - imp.min() + 1e-8)
    if how == "gaussian":
        std = imp.std() if imp.numel() > 1 else torch.tensor(0.0)
        return (imp - imp.mean()) / (std + 1e-8)
    q = _sentinel_quantile(how)
    if q is not None:
        flat = imp.reshape(-1)
        k = min(int(q * flat.numel()), flat.numel() - 1)
        return imp / (flat.sort().values[k] + 1e-8)
    denom = {"mean": imp.mean(), "max": imp.max(), "sum": imp.sum()}[how]
    return imp / denom if float(denom) != 0.0 else imp


def _sentinel_quantile(how: object) -> float | None:
    """q of a "sentinel_<q>" normalizer, else None."""
    if not isinstance(how, str) or not how.startswith("sentinel_"):
        return None
    try:
        q = float(how[len("sentinel_"):])
    except ValueError:
        return None
    return q if 0.0 <= q <= 1.0 else None


def lamp(scores: torch.Tensor) -> torch.Tensor:
    """LAMP: each score over the sum of all scores not smaller than it (arXiv 2010.07611)."""
    flat = scores.reshape(-1)
    sorted_scores, order = flat.sort()
    tail = sorted_scores.flip(0).cumsum(0).flip(0)  # sum of scores >= each one
    out = torch.empty_like(flat)
    out[order] = sorted_scores / tail.clamp(min=1e-12)
    return out.reshape(scores.shape)
