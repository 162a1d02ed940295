"""Layered layout and module collapsing: pure functions, no Qt."""

from __future__ import annotations

import pytest

from app.canvas.hierarchy import BLOCK_KIND, auto_collapse, block_paths, collapse
from app.canvas.layout import LayoutParams, _separated_fit, layered_layout
from app.canvas.synthetic import random_dag, resnet_like, transformer_like

P = LayoutParams()


def _check_layout(nodes, edges, layout) -> None:
    assert set(layout.positions) == set(nodes)
    for s, d in edges:
        assert layout.layer_of[s] < layout.layer_of[d], (s, d)
        assert layout.positions[s][1] < layout.positions[d][1]
    for layer in layout.layers:
        xs = [layout.positions[n][0] for n in layer]
        assert xs == sorted(xs)
        for a, b in zip(xs, xs[1:], strict=False):
            assert b - a >= P.node_width + P.h_gap - 1e-6  # boxes never overlap


def test_chain_is_a_vertical_line() -> None:
    lay = layered_layout([1, 2, 3], [(1, 2), (2, 3)])
    assert [lay.layer_of[i] for i in (1, 2, 3)] == [0, 1, 2]
    assert len({lay.positions[i][0] for i in (1, 2, 3)}) == 1
    assert [e.points for e in lay.edges][0][0][1] == pytest.approx(P.node_height)


def test_diamond_and_long_edge_routes_through_dummies() -> None:
    # 0 -> 1 -> 2 -> 3 and a skip 0 -> 3 spanning three layers
    lay = layered_layout([0, 1, 2, 3], [(0, 1), (1, 2), (2, 3), (0, 3)])
    skip = next(e for e in lay.edges if (e.src, e.dst) == (0, 3))
    assert len(skip.points) == 4  # two ends + two dummy bends
    ys = [p[1] for p in skip.points]
    assert ys == sorted(ys)
    chain_x = lay.positions[1][0]
    assert all(abs(x - chain_x) >= P.node_width / 2 for x, _ in skip.points[1:-1])


@pytest.mark.parametrize("summary", [resnet_like(), transformer_like(400), random_dag(300, seed=3)])
def test_layers_increase_and_no_overlap(summary) -> None:
    ids = [n.id for n in summary.nodes]
    lay = layered_layout(ids, summary.edges)
    _check_layout(ids, summary.edges, lay)
    assert lay.reversed_edges == 0
    assert len(lay.edges) == len(summary.edges)


def test_sources_sit_next_to_their_consumer() -> None:
    # 0->1->2->3, and a constant 9 feeding 3 should sit in layer 2, not 0.
    lay = layered_layout([0, 1, 2, 3, 9], [(0, 1), (1, 2), (2, 3), (9, 3)])
    assert lay.layer_of[9] == 2


def test_cycle_does_not_hang_and_is_reported() -> None:
    lay = layered_layout([1, 2, 3], [(1, 2), (2, 3), (3, 1)])
    assert lay.reversed_edges == 1
    assert len(set(lay.layer_of.values())) == 3


def test_separated_fit_is_optimal_and_keeps_gaps() -> None:
    assert _separated_fit([0.0, 0.0], [10.0]) == [-5.0, 5.0]
    assert _separated_fit([0.0, 100.0], [10.0]) == [0.0, 100.0]
    out = _separated_fit([5.0, 0.0, 0.0], [2.0, 2.0])
    assert [b - a for a, b in zip(out, out[1:], strict=False)] == pytest.approx([2.0, 2.0])


def test_block_paths_and_collapse_counts() -> None:
    s = resnet_like(stages=2, blocks_per_stage=2)
    blocks = block_paths(s.nodes)
    assert blocks["layer1"] == 2 * 7  # 5 layers + add + relu per block, no downsample
    assert blocks["layer2.0"] == 9  # with the 2-layer downsample
    view = collapse(s.nodes, s.edges, {"layer1"})
    assert len(view.nodes) == len(s.nodes) - blocks["layer1"] + 1
    block = next(n for n in view.nodes if n.kind == BLOCK_KIND)
    assert block.name == "layer1" and len(block.member_ids) == 14
    # in: relu -> layer1; out: layer1 -> layer2.0.conv1 and -> layer2.0.downsample.0
    ins = [e for e in view.edges if e[1] == block.id]
    outs = [e for e in view.edges if e[0] == block.id]
    assert len(ins) == 1 and len(outs) == 2
    assert all(view.owner[m] == block.id for m in block.member_ids)


def test_nested_collapse_outermost_wins_and_expand_restores() -> None:
    s = resnet_like(stages=2, blocks_per_stage=2)
    view = collapse(s.nodes, s.edges, {"layer1", "layer1.0", "layer2.1"})
    blocks = sorted(n.name for n in view.nodes if n.is_block)
    assert blocks == ["layer1", "layer2.1"]
    full = collapse(s.nodes, s.edges, set())
    assert len(full.nodes) == len(s.nodes) and len(full.edges) == len(s.edges)
    lay = layered_layout([n.id for n in view.nodes], view.edges)
    _check_layout([n.id for n in view.nodes], view.edges, lay)


def test_auto_collapse_fits_budget() -> None:
    s = transformer_like(3000)
    chosen = auto_collapse(s.nodes, max_nodes=800)
    view = collapse(s.nodes, s.edges, chosen)
    assert len(view.nodes) <= 800
    assert all(p.startswith("blocks.") for p in chosen)
    assert auto_collapse(s.nodes, max_nodes=10_000) == set()


def test_deep_residual_stack_does_not_drift_sideways() -> None:
    # Every block's add sits where the previous one did: the spine stays vertical.
    s = transformer_like(3000)
    lay = layered_layout([n.id for n in s.nodes], s.edges)
    adds = [lay.positions[n.id][0] for n in s.nodes if n.kind == "add"]
    assert max(adds) - min(adds) < P.node_width
    assert lay.width < 4 * P.node_width
