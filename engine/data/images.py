"""Image folders as torchvision datasets that never die on one bad file.

A folder with class subfolders is torchvision's `ImageFolder` (subfolder names are the
labels); a folder of images without subfolders is a flat, unlabeled dataset. Files are
opened lazily by the DataLoader's workers. A file that cannot be decoded becomes `None`
and `collate` drops it and counts it in `Batch.skipped`, so one corrupt PNG in 10,000
costs one sample, not the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from .batch import Batch
from .errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
UNLABELED = -1


def is_image_file(path: str | Path) -> bool:
    name = str(path).lower()
    return name.endswith(IMAGE_EXTENSIONS) and not Path(name).name.startswith(".")


class ImageLoader:
    """PIL loader converting to gray ('L') or 'RGB'; None for a file PIL cannot decode.

    A class (not a lambda) so DataLoader workers can pickle it under any start method.
    """

    def __init__(self, channels: int) -> None:
        self.mode = "L" if channels == 1 else "RGB"

    def __call__(self, path: str) -> Any:
        from PIL import Image

        try:
            with Image.open(path) as image:
                image.load()
                return image.convert(self.mode)
        except Exception:  # noqa: BLE001 - truncated, corrupt, not an image, bomb...
            return None


class _TolerantItems:
    """__getitem__ that turns an unreadable or untransformable file into None."""

    loader: Callable[[str], Any]
    transform: Callable[[Any], Any] | None

    def _load(self, path: str, label: int) -> tuple[torch.Tensor, int] | None:
        image = self.loader(path)
        if image is None:
            return None
        try:
            tensor = self.transform(image) if self.transform is not None else image
        except Exception:  # noqa: BLE001 - e.g. a 0-pixel image
            return None
        return tensor, label


def _image_folder_class() -> type:
    from torchvision.datasets import ImageFolder

    class TolerantImageFolder(_TolerantItems, ImageFolder):
        """ImageFolder whose items are None for unreadable files (counted by `collate`)."""

        def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
            path, label = self.samples[index]
            return self._load(path, label)

        def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
            """Class folders, sorted, without hidden ones (.ipynb_checkpoints, .git...):
            counting those would shift every label after them."""
            classes = sorted(e.name for e in os.scandir(directory)
                             if e.is_dir() and not e.name.startswith("."))
            return classes, {name: i for i, name in enumerate(classes)}

    return TolerantImageFolder


class FlatImageFolder(_TolerantItems, Dataset):
    """Every image directly inside one folder, unlabeled, in sorted order."""

    def __init__(self, paths: Sequence[str], transform: Callable[[Any], Any],
                 loader: Callable[[str], Any]) -> None:
        self.samples = [(str(p), UNLABELED) for p in paths]
        self.transform = transform
        self.loader = loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        path, label = self.samples[index]
        return self._load(path, label)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def open_image_folder(root: Path, transform: Callable[[Any], Any], channels: int) -> Dataset:
    """ImageFolder when `root` has class subfolders with images, else a flat folder.

    Raises DataError for a folder with no images at all (in it or one level below).
    """
    loader = ImageLoader(channels)
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    with_images = [d for d in subdirs if any(_walk_images(d))]
    if with_images:
        cls = _image_folder_class()
        return cls(str(root), transform=transform, loader=loader,
                   is_valid_file=is_image_file, allow_empty=True)
    flat = _images_in(root)
    if not flat:
        what = "is empty" if not any(root.iterdir()) else "has no images"
        raise DataError(f"{root} {what}: put images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) "
                        "in it, or in one subfolder per class")
    return FlatImageFolder([str(p) for p in flat], transform, loader)


def _walk_images(folder: Path) -> Any:
    for path in folder.rglob("*"):
        if path.is_file() and is_image_file(path):
            yield path


class KeyedCollate:
    """`collate`, with the images passed by keyword (HF models: `pixel_values=`)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, items: list[tuple[torch.Tensor, int] | None]) -> Batch:
        batch = collate(items)
        if len(batch) == 0:
            return batch
        return Batch({self.key: batch.inputs}, batch.labels, batch.skipped)


def collate(items: list[tuple[torch.Tensor, int] | None]) -> Batch:
    """Stack the readable images; `skipped` counts the unreadable ones (None items)."""
    good = [item for item in items if item is not None]
    skipped = len(items) - len(good)
    if not good:
        return Batch(torch.empty(0), None, skipped=skipped)
    shapes = {tuple(t.shape) for t, _ in good}
    if len(shapes) > 1:
        raise DataError(f"images of different sizes {sorted(shapes)[:3]} in one batch: set a crop "
                        "(--crop) or an exact resize (--resize H,W) so every image has one size")
    x = torch.stack([t for t, _ in good])
    labels = torch.tensor([label for _, label in good], dtype=torch.long)
    return Batch(x, None if bool((labels == UNLABELED).all()) else labels, skipped=skipped)
