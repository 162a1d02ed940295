"""sklearn's 8x8 digits, shipped with the demo, written as real image folders.

The demo model was trained on a stratified, seeded split of sklearn's digits
(`resources/demo/train_digits.py`). Both slices ship as `.npz` files so that tests,
benchmarks and the built-in demo can use real data without sklearn or a download.
`write_image_folders` turns them into torchvision ImageFolder trees of 8-bit PNGs,
the layout a user would bring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..models.digits_net import DEMO_DIR

SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class DigitFolders:
    """Where `write_image_folders` put each split (class subfolders "0".."9")."""

    train: Path
    heldout: Path


def load_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one shipped split: x is N x 1 x 8 x 8 float32 in [0, 1], y int64."""
    if split not in SPLITS:
        raise ValueError(f"unknown digits split {split!r}; use one of {', '.join(SPLITS)}")
    with np.load(DEMO_DIR / f"digits_{split}.npz") as data:
        return data["x"].astype(np.float32), data["y"].astype(np.int64)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """The 8-bit pixels a PNG stores for digits in [0, 1] (what `pixels / 255` reads back)."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def write_image_folders(root: Path, *, labeled: bool = True) -> DigitFolders:
    """Write both splits under `root` as PNGs; `labeled=False` writes flat folders."""
    from PIL import Image

    root = Path(root)
    out = {}
    for split in SPLITS:
        x, y = load_split(split)
        base = root / split
        for i, (image, label) in enumerate(zip(to_uint8(x[:, 0]), y, strict=True)):
            folder = base / str(int(label)) if labeled else base
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, mode="L").save(folder / f"{split}_{i:04d}.png")
        out[split] = base
    return DigitFolders(train=out["train"], heldout=out["heldout"])
