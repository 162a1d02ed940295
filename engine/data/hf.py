"""Hugging Face `datasets` saved with `save_to_disk` (optional extra `hf`).

Arrow files are memory-mapped by `datasets`, so rows are read as the loader asks for
them. An "image" column (with an optional ClassLabel "label"/"labels" column) becomes
images through the same transforms as a folder; a "text" column becomes a token stream
like a text file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from .errors import DataError

IMAGE_COLUMNS = ("image", "img", "pixel_values")
LABEL_COLUMNS = ("label", "labels", "fine_label")
EVAL_SPLITS = ("validation", "valid", "test", "train")


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any(
        (path / f).is_file() for f in ("dataset_info.json", "dataset_dict.json", "state.json")
    )


def load_saved(path: Path, split: str | None = None) -> tuple[Any, str | None]:
    """(datasets.Dataset, split name or None); a DatasetDict gives its evaluation split."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"{path} is a Hugging Face dataset; reading it needs the datasets "
                        "package: pip install 'arborist[hf]'") from None
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - FileNotFoundError, arrow errors...
        raise DataError(f"{path} is not a readable saved dataset: "
                        f"{' '.join(str(exc).split())[:160]}") from None
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds.keys())
        chosen = split or next((s for s in EVAL_SPLITS if s in ds), names[0] if names else None)
        if chosen not in ds:
            raise DataError(f"{path} has splits {', '.join(names)}; no split {chosen!r}")
        return ds[chosen], chosen
    return ds, None


def column(ds: Any, candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in ds.column_names), None)


def class_names(ds: Any, label: str | None) -> list[str]:
    feature = ds.features.get(label) if label else None
    names = getattr(feature, "names", None)
    return list(names) if names else []


class HFImages(Dataset):
    """Rows of an image dataset as (tensor, label); None for an undecodable image."""

    def __init__(self, ds: Any, image: str, label: str | None,
                 transform: Callable[[Any], Any], channels: int) -> None:
        self.ds = ds
        self.image = image
        self.label = label
        self.transform = transform
        self.mode = "L" if channels == 1 else "RGB"

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        try:
            row = self.ds[int(index)]
            image = row[self.image].convert(self.mode)
            label = int(row[self.label]) if self.label else -1
            return self.transform(image), label
        except Exception:  # noqa: BLE001 - a corrupt image row is skipped and counted
            return None

    @property
    def targets(self) -> list[int] | None:
        return [int(v) for v in self.ds[self.label]] if self.label else None


def texts(ds: Any) -> Any:
    for row in ds.select_columns(["text"]):
        text = row["text"]
        if isinstance(text, str) and text.strip():
            yield text
