"""Canvas colours: layer kinds grouped into families, one palette per theme."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor

_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("block", ("block",)),
    ("conv", ("conv",)),
    ("norm", ("norm", "bn", "layernorm", "groupnorm", "rmsnorm")),
    ("linear", ("linear", "matmul", "bmm", "addmm", "mm", "einsum")),
    ("attention", ("attention", "softmax", "attn")),
    ("embedding", ("embedding",)),
    (
        "activation",
        (
            "relu",
            "gelu",
            "silu",
            "sigmoid",
            "tanh",
            "hardswish",
            "swish",
            "elu",
            "mish",
            "hardsigmoid",
            "prelu",
            "softplus",
        ),
    ),
    ("pool", ("pool",)),
    ("merge", ("add", "cat", "concat", "mul", "sub", "div", "stack", "sum")),
    (
        "shape",
        (
            "view",
            "reshape",
            "flatten",
            "permute",
            "transpose",
            "split",
            "chunk",
            "squeeze",
            "unsqueeze",
            "getitem",
            "expand",
            "contiguous",
            "unbind",
        ),
    ),
    ("dropout", ("dropout",)),
)


def kind_family(kind: str) -> str:
    """Coarse family of a layer/op kind, used for colour ("Conv2d" -> "conv")."""
    k = kind.lower()
    for family, needles in _FAMILIES:
        if any(n in k for n in needles):
            return family
    return "other"


_LIGHT_FAMILY = {
    "block": "#5c6b80",
    "conv": "#3d7bd9",
    "norm": "#2e9e6f",
    "linear": "#8256d0",
    "attention": "#d2455f",
    "embedding": "#b26b00",
    "activation": "#e07b1a",
    "pool": "#1c9bb0",
    "merge": "#c7a500",
    "shape": "#8a8f98",
    "dropout": "#9aa0a6",
    "other": "#7b8794",
}
_DARK_FAMILY = {
    "block": "#8798b0",
    "conv": "#5b9bff",
    "norm": "#3fc48a",
    "linear": "#a67cff",
    "attention": "#ff6b85",
    "embedding": "#e0a040",
    "activation": "#ff9a3d",
    "pool": "#3ec5da",
    "merge": "#f0cf30",
    "shape": "#9aa3ad",
    "dropout": "#a8adb3",
    "other": "#93a1b0",
}


@dataclass(frozen=True)
class CanvasTheme:
    name: str
    background: QColor
    grid: QColor
    node_fill: QColor
    node_border: QColor
    text: QColor
    subtext: QColor
    edge: QColor
    accent: QColor  # highlight (group members, search hits)
    current: QColor  # the clicked / jumped-to node
    dim_alpha: int  # alpha for everything outside a highlight
    families: dict

    def family_color(self, kind: str) -> QColor:
        return self.families[kind_family(kind)]


def _theme(name: str, fam: dict, **colors: str) -> CanvasTheme:
    c = {k: QColor(v) for k, v in colors.items()}
    return CanvasTheme(
        name=name, families={k: QColor(v) for k, v in fam.items()}, dim_alpha=60, **c
    )


LIGHT = _theme(
    "light",
    _LIGHT_FAMILY,
    background="#f6f7f9",
    grid="#e7e9ee",
    node_fill="#ffffff",
    node_border="#c3c9d3",
    text="#1d232c",
    subtext="#5f6b7a",
    edge="#9aa4b2",
    accent="#ff7a00",
    current="#0a66ff",
)
DARK = _theme(
    "dark",
    _DARK_FAMILY,
    background="#1b1e23",
    grid="#23272e",
    node_fill="#2a2f37",
    node_border="#444c58",
    text="#e6e9ee",
    subtext="#9aa5b4",
    edge="#5d6775",
    accent="#ffa040",
    current="#5b9bff",
)
THEMES = {"light": LIGHT, "dark": DARK}
