"""Synthetic GraphSummary objects shaped like real networks, for tests and benchmarks.

They let the canvas and layout be exercised at any size without tracing a model.
"""

from __future__ import annotations

import random

from engine.graph.summary import GraphSummary, GroupInfo, GroupMember, NodeInfo


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[NodeInfo] = []
        self.edges: list[tuple[int, int]] = []
        self.groups: list[GroupInfo] = []

    def add(self, name: str, kind: str, module: str, cin=None, cout=None, *srcs: int) -> int:
        is_layer = kind[0].isupper()
        params = (cin or 0) * (cout or 0) if kind in ("Conv2d", "Linear") else 2 * (cout or 0)
        nid = len(self.nodes)
        self.nodes.append(
            NodeInfo(nid, name, kind, is_layer, module, cin, cout, params if is_layer else 0)
        )
        self.edges.extend((s, nid) for s in srcs)
        return nid

    def group(self, root: str, channels: int, *members: str) -> None:
        ms = tuple(
            GroupMember(m, "prune_out_channels" if m == root else "prune_in_channels", channels)
            for m in (root, *members)
        )
        self.groups.append(GroupInfo(len(self.groups), root, channels, ms))

    def summary(self) -> GraphSummary:
        return GraphSummary(self.nodes, self.edges, self.groups)


def resnet_like(stages: int = 4, blocks_per_stage: int = 2, width: int = 64) -> GraphSummary:
    """stem -> stages of basic residual blocks (conv-bn-relu-conv-bn + add) -> fc."""
    b = _Builder()
    x = b.add("conv1", "Conv2d", "conv1", 3, width)
    x = b.add("bn1", "BatchNorm2d", "bn1", width, width, x)
    x = b.add("relu", "ReLU", "relu", width, width, x)
    cin = width
    for s in range(1, stages + 1):
        cout = width * 2 ** (s - 1)
        for k in range(blocks_per_stage):
            p = f"layer{s}.{k}"
            c1 = b.add(f"{p}.conv1", "Conv2d", f"{p}.conv1", cin, cout, x)
            n1 = b.add(f"{p}.bn1", "BatchNorm2d", f"{p}.bn1", cout, cout, c1)
            r1 = b.add(f"{p}.relu", "ReLU", f"{p}.relu", cout, cout, n1)
            c2 = b.add(f"{p}.conv2", "Conv2d", f"{p}.conv2", cout, cout, r1)
            n2 = b.add(f"{p}.bn2", "BatchNorm2d", f"{p}.bn2", cout, cout, c2)
            b.group(f"{p}.conv1", cout, f"{p}.bn1", f"{p}.conv2")
            skip = x
            if cin != cout:
                skip = b.add(f"{p}.downsample.0", "Conv2d", f"{p}.downsample.0", cin, cout, x)
                skip = b.add(
                    f"{p}.downsample.1", "BatchNorm2d", f"{p}.downsample.1", cout, cout, skip
                )
            add = b.add(f"add_{s}_{k}", "add", p, None, None, n2, skip)
            x = b.add(f"relu_{s}_{k}", "relu", p, None, None, add)
            cin = cout
    pool = b.add("avgpool", "AdaptiveAvgPool2d", "avgpool", cin, cin, x)
    flat = b.add("flatten", "flatten", "", None, None, pool)
    b.add("fc", "Linear", "fc", cin, 1000, flat)
    return b.summary()


def transformer_like(n_nodes: int = 3000, width: int = 768) -> GraphSummary:
    """A stack of pre-norm transformer blocks (~24 nodes each) until n_nodes is reached."""
    b = _Builder()
    x = b.add("embed", "Embedding", "embed", 50000, width)
    i = 0
    while len(b.nodes) + 26 < n_nodes:
        p = f"blocks.{i}"
        h = b.add(f"{p}.ln1", "LayerNorm", f"{p}.ln1", width, width, x)
        q = b.add(f"{p}.attn.q", "Linear", f"{p}.attn.q", width, width, h)
        k = b.add(f"{p}.attn.k", "Linear", f"{p}.attn.k", width, width, h)
        v = b.add(f"{p}.attn.v", "Linear", f"{p}.attn.v", width, width, h)
        q, k, v = (
            b.add(f"view_{i}_{j}", "view", f"{p}.attn", None, None, t)
            for j, t in enumerate((q, k, v))
        )
        kt = b.add(f"transpose_{i}", "transpose", f"{p}.attn", None, None, k)
        s = b.add(f"matmul_{i}_0", "matmul", f"{p}.attn", None, None, q, kt)
        s = b.add(f"softmax_{i}", "softmax", f"{p}.attn", None, None, s)
        o = b.add(f"matmul_{i}_1", "matmul", f"{p}.attn", None, None, s, v)
        o = b.add(f"reshape_{i}", "reshape", f"{p}.attn", None, None, o)
        o = b.add(f"{p}.attn.proj", "Linear", f"{p}.attn.proj", width, width, o)
        x = b.add(f"add_{i}_0", "add", p, None, None, x, o)
        h = b.add(f"{p}.ln2", "LayerNorm", f"{p}.ln2", width, width, x)
        h = b.add(f"{p}.mlp.fc1", "Linear", f"{p}.mlp.fc1", width, 4 * width, h)
        h = b.add(f"{p}.mlp.act", "GELU", f"{p}.mlp.act", 4 * width, 4 * width, h)
        h = b.add(f"{p}.mlp.fc2", "Linear", f"{p}.mlp.fc2", 4 * width, width, h)
        x = b.add(f"add_{i}_1", "add", p, None, None, x, h)
        b.group(f"{p}.mlp.fc1", 4 * width, f"{p}.mlp.fc2")
        b.group(f"{p}.attn.q", width, f"{p}.attn.k", f"{p}.attn.v", f"{p}.attn.proj")
        i += 1
    x = b.add("ln_f", "LayerNorm", "ln_f", width, width, x)
    b.add("head", "Linear", "head", width, 1000, x)
    return b.summary()


def random_dag(n_nodes: int, seed: int = 0, fan_in: int = 2, reach: int = 12) -> GraphSummary:
    """Random DAG with mostly local edges (like a traced network), for stress tests."""
    rng = random.Random(seed)
    b = _Builder()
    kinds = ["Conv2d", "BatchNorm2d", "ReLU", "add", "cat", "Linear", "view"]
    for i in range(n_nodes):
        srcs = (
            {rng.randrange(max(0, i - reach), i) for _ in range(rng.randint(1, fan_in))}
            if i
            else set()
        )
        b.add(f"n{i}", rng.choice(kinds), f"m{i // 50}", 8, 8, *sorted(srcs))
    return b.summary()


def densenet_like(blocks: int = 3, layers: int = 12, growth: int = 32) -> GraphSummary:
    """torchvision DenseNet's names ("features.denseblock3.denselayer12.conv1"): long shared
    prefixes with the distinguishing part at the end, for the name-shortening tests."""
    b = _Builder()
    x = b.add("features.conv0", "Conv2d", "features.conv0", 3, 64)
    x = b.add("features.norm0", "BatchNorm2d", "features.norm0", 64, 64, x)
    b.group("features.conv0", 64, "features.norm0")
    width = 64
    for k in range(1, blocks + 1):
        feats = [x]
        for j in range(1, layers + 1):
            p = f"features.denseblock{k}.denselayer{j}"
            cat = b.add(f"{p}.cat", "cat", p, None, None, *feats) if len(feats) > 1 else feats[0]
            n1 = b.add(f"{p}.norm1", "BatchNorm2d", f"{p}.norm1", width, width, cat)
            c1 = b.add(f"{p}.conv1", "Conv2d", f"{p}.conv1", width, 4 * growth, n1)
            n2 = b.add(f"{p}.norm2", "BatchNorm2d", f"{p}.norm2", 4 * growth, 4 * growth, c1)
            c2 = b.add(f"{p}.conv2", "Conv2d", f"{p}.conv2", 4 * growth, growth, n2)
            b.group(f"{p}.conv1", 4 * growth, f"{p}.norm2", f"{p}.conv2")
            feats.append(c2)
            width += growth
        t = f"features.transition{k}"
        x = b.add(f"{t}.conv", "Conv2d", f"{t}.conv", width, width // 2, *feats)
        b.group(f"{t}.conv", width // 2)
        width //= 2
    b.add("classifier", "Linear", "classifier", width, 1000, x)
    return b.summary()
