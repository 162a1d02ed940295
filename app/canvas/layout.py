"""Layered (Sugiyama-style) layout of a directed graph, top to bottom. No Qt.

Kept a pure function of (node ids, edges, sizes) so it can be unit-tested,
benchmarked and swapped without touching scene items. Steps:

1. break cycles (a traced graph is a DAG, but a bad summary must not hang us),
2. longest-path layering, then sources pulled down next to their first user,
3. dummy vertices on edges spanning several layers (so they route around nodes),
4. barycenter crossing reduction, alternating down/up sweeps,
5. coordinates: each layer placed as close as possible to its neighbours'
   barycenters under a minimum-separation constraint (pool-adjacent-violators,
   optimal in the least-squares sense and linear per layer).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Point = tuple[float, float]
DUMMY_WEIGHT = 0.001  # how little an edge bend point resists being moved, vs a box


@dataclass(frozen=True)
class LayoutParams:
    node_width: float = 216.0
    node_height: float = 48.0
    h_gap: float = 28.0  # between neighbouring boxes in a layer
    v_gap: float = 44.0  # between layers
    dummy_width: float = 12.0  # room reserved for an edge passing through a layer
    sweeps: int = 4  # crossing-reduction iterations (each = one down + one up sweep)
    placement_passes: int = 3


@dataclass(frozen=True)
class EdgeRoute:
    src: int
    dst: int
    points: tuple[Point, ...]  # from the bottom of src to the top of dst


@dataclass
class Layout:
    positions: dict[int, Point] = field(default_factory=dict)  # node id -> box centre
    sizes: dict[int, tuple[float, float]] = field(default_factory=dict)
    layer_of: dict[int, int] = field(default_factory=dict)
    layers: list[list[int]] = field(default_factory=list)  # real node ids, left to right
    edges: list[EdgeRoute] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0
    reversed_edges: int = 0  # edges turned around to break cycles


def layered_layout(
    node_ids: Sequence[int],
    edges: Sequence[tuple[int, int]],
    params: LayoutParams = LayoutParams(),
    sizes: Mapping[int, tuple[float, float]] | None = None,
) -> Layout:
    """Lay out a graph top to bottom; edges to unknown ids and self-loops are ignored."""
    ids = list(dict.fromkeys(node_ids))
    n = len(ids)
    if n == 0:
        return Layout()
    index = {nid: i for i, nid in enumerate(ids)}
    size = [
        tuple(sizes[nid]) if sizes and nid in sizes else (params.node_width, params.node_height)
        for nid in ids
    ]
    raw = [(index[s], index[d]) for s, d in edges if s in index and d in index and s != d]

    order_pos = _topological_positions(n, raw)
    dag = [(u, v) if order_pos[u] < order_pos[v] else (v, u) for u, v in raw]
    reversed_count = sum(1 for (u, v) in raw if order_pos[u] > order_pos[v])
    layer = _assign_layers(n, dag, order_pos)

    # Vertices: 0..n-1 real, n.. dummies. chains[i] = vertex path of edge i (in dag direction).
    vlayer = list(layer)
    vwidth = [w for w, _ in size]
    up: list[list[int]] = [[] for _ in range(n)]
    down: list[list[int]] = [[] for _ in range(n)]
    key = [float(p) for p in order_pos]
    chains: list[list[int]] = []
    for u, v in dag:
        chain = [u]
        prev = u
        for lay in range(layer[u] + 1, layer[v]):
            d = len(vlayer)
            vlayer.append(lay)
            vwidth.append(params.dummy_width)
            up.append([prev])
            down.append([])
            key.append(order_pos[u] + 0.5)
            down[prev].append(d)
            chain.append(d)
            prev = d
        down[prev].append(v)
        up[v].append(prev)
        chain.append(v)
        chains.append(chain)

    nlayers = max(vlayer) + 1
    layers: list[list[int]] = [[] for _ in range(nlayers)]
    for vtx in sorted(range(len(vlayer)), key=key.__getitem__):
        layers[vlayer[vtx]].append(vtx)

    _reduce_crossings(layers, up, down, params.sweeps)
    xs = _assign_x(layers, up, down, vwidth, params, n)

    # Each layer is as tall as its tallest box: rows of small ops (add, relu) stay compact.
    row_h = [0.0] * nlayers
    for i in range(n):
        row_h[layer[i]] = max(row_h[layer[i]], size[i][1])
    layer_y, top = [], 0.0
    for h in row_h:
        h = h or params.node_height
        layer_y.append(top + h / 2)
        top += h + params.v_gap
    min_x = min(xs[v] - vwidth[v] / 2 for v in range(len(vlayer)))
    xs = [x - min_x for x in xs]

    out = Layout(reversed_edges=reversed_count)
    for i, nid in enumerate(ids):
        out.positions[nid] = (xs[i], layer_y[layer[i]])
        out.sizes[nid] = size[i]
        out.layer_of[nid] = layer[i]
    out.layers = [[ids[v] for v in lay if v < n] for lay in layers]
    for (s, d), chain in zip(raw, chains, strict=False):
        pts = [(xs[v], layer_y[vlayer[v]]) for v in chain]
        if chain[0] != s:  # reversed to break a cycle: route back from src to dst
            pts.reverse()
        (sx, sy), (dx, dy) = pts[0], pts[-1]
        pts[0] = (sx, sy + size[s][1] / 2 if sy <= dy else sy - size[s][1] / 2)
        pts[-1] = (dx, dy - size[d][1] / 2 if sy <= dy else dy + size[d][1] / 2)
        out.edges.append(EdgeRoute(ids[s], ids[d], tuple(pts)))
    out.width = max(xs[v] + vwidth[v] / 2 for v in range(len(vlayer)))
    out.height = top - params.v_gap
    return out


def _topological_positions(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Kahn order (stable in input order); cycles broken at the node with fewest open inputs."""
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for u, v in edges:
        succ[u].append(v)
        indeg[v] += 1
    pos = [-1] * n
    queue = deque(i for i in range(n) if indeg[i] == 0)
    placed = 0
    while placed < n:
        if not queue:  # a cycle: force the least-blocked remaining node
            rest = [i for i in range(n) if pos[i] < 0]
            forced = min(rest, key=lambda i: (indeg[i], i))
            indeg[forced] = 0
            queue.append(forced)
        while queue:
            u = queue.popleft()
            if pos[u] >= 0:
                continue
            pos[u] = placed
            placed += 1
            for v in succ[u]:
                if pos[v] < 0:
                    indeg[v] -= 1
                    if indeg[v] == 0:
                        queue.append(v)
    return pos


def _assign_layers(n: int, dag: list[tuple[int, int]], order_pos: list[int]) -> list[int]:
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for u, v in dag:
        preds[v].append(u)
        succs[u].append(v)
    order = sorted(range(n), key=order_pos.__getitem__)
    layer = [0] * n
    for v in order:
        if preds[v]:
            layer[v] = max(layer[u] for u in preds[v]) + 1
    # Sources (inputs, constants) sit right above their first consumer, not all at the top.
    for v in order:
        if not preds[v] and succs[v]:
            layer[v] = max(0, min(layer[s] for s in succs[v]) - 1)
    return layer


def _reduce_crossings(
    layers: list[list[int]], up: list[list[int]], down: list[list[int]], sweeps: int
) -> None:
    pos = [0] * len(up)
    for lay in layers:
        for i, v in enumerate(lay):
            pos[v] = i

    def sweep(indices: range, nbrs: list[list[int]]) -> None:
        for li in indices:
            lay = layers[li]
            bary = {}
            for v in lay:
                ns = nbrs[v]
                bary[v] = sum(pos[u] for u in ns) / len(ns) if ns else float(pos[v])
            lay.sort(key=bary.__getitem__)  # stable: ties keep current order
            for i, v in enumerate(lay):
                pos[v] = i

    for _ in range(sweeps):
        sweep(range(1, len(layers)), up)
        sweep(range(len(layers) - 2, -1, -1), down)


def _assign_x(
    layers: list[list[int]],
    up: list[list[int]],
    down: list[list[int]],
    width: list[float],
    params: LayoutParams,
    n_real: int,
) -> list[float]:
    x = [0.0] * len(width)
    for lay in layers:  # start packed left to right
        cur = 0.0
        for v in lay:
            x[v] = cur + width[v] / 2
            cur += width[v] + params.h_gap
    widest = max(range(len(layers)), key=lambda i: sum(width[v] for v in layers[i]))
    centre = sum(x[v] for v in layers[widest]) / len(layers[widest])
    for lay in layers:  # centre every layer under the widest one
        off = centre - sum(x[v] for v in lay) / len(lay)
        for v in lay:
            x[v] += off

    def place(li: int, nbrs_of) -> None:
        lay = layers[li]
        desired = []
        for v in lay:
            ns = nbrs_of(v)
            desired.append(_target(ns, x, n_real) if ns else x[v])
        seps = [
            (width[a] + width[b]) / 2 + params.h_gap for a, b in zip(lay, lay[1:], strict=False)
        ]
        weights = [DUMMY_WEIGHT if v >= n_real else 1.0 for v in lay]
        for v, val in zip(lay, _separated_fit(desired, seps, weights), strict=True):
            x[v] = val

    nl = len(layers)
    for _ in range(params.placement_passes):
        for li in range(1, nl):
            place(li, lambda v: up[v])
        for li in range(nl - 2, -1, -1):
            place(li, lambda v: down[v])
    for li in range(nl):
        place(li, lambda v: up[v] + down[v])
    return x


def _target(nbrs: list[int], x: list[float], n_real: int) -> float:
    """Median x of a vertex's boxes-neighbours (of all neighbours if it has none).

    Following real boxes rather than skip-edge bend points keeps a network's
    main path straight: averaging with the skip would shift every residual
    block sideways and make a deep model drift diagonally across the canvas.
    """
    real = [x[u] for u in nbrs if u < n_real]
    xs = sorted(real or [x[u] for u in nbrs])
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def _separated_fit(
    desired: list[float], seps: list[float], weights: list[float] | None = None
) -> list[float]:
    """Closest positions (weighted least squares) to `desired` keeping order and gaps >= seps.

    Substituting y_i = x_i - offset_i turns the gap constraints into y being
    non-decreasing, which pool-adjacent-violators solves exactly in O(n).
    Heavier entries move less: real boxes outweigh edge dummies, so a long
    skip connection bends around the spine instead of pushing it sideways.
    """
    offsets = [0.0]
    for s in seps:
        offsets.append(offsets[-1] + s)
    w = weights or [1.0] * len(desired)
    blocks: list[list[float]] = []  # [weighted sum, total weight, count]
    for d, o, wi in zip(desired, offsets, w, strict=True):
        blocks.append([(d - o) * wi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, tw, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += tw
            blocks[-1][2] += c
    out: list[float] = []
    for s, tw, c in blocks:
        out.extend([s / tw] * int(c))
    return [y + o for y, o in zip(out, offsets, strict=True)]
