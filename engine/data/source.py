"""`open_data`: any supported path -> a `DataSource`; `make_loader`: DataSource -> batches.

One entry point for every front end and stage (evaluation, calibration, recovery):

    source = open_data("photos/", model_facts=ModelFacts.from_loaded(loaded))
    calib, held_out = split_source(source, eval_fraction=0.2, seed=0)
    for batch in make_loader(held_out, batch_size=64):   # engine.data.Batch
        ...

Nothing is read whole: image files are decoded by DataLoader workers as batches are
asked for; tensor files are memory-mapped; text is kept as one int32 token stream.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from . import hf as hf_data
from .batch import Batch
from .errors import DataError
from .images import (
    IMAGE_EXTENSIONS,
    UNLABELED,
    KeyedCollate,
    collate,
    is_image_file,
    open_image_folder,
)
from .preprocessing import ModelFacts, Preprocessing, build_transform, preprocessing_for
from .tensors import TENSOR_SUFFIXES, collate_tensors, open_tensor_file
from .text import (
    DEFAULT_SEQ_LEN,
    TEXT_SUFFIXES,
    CollateSequences,
    TextTokenizer,
    TokenSequences,
    as_text_tokenizer,
    find_tokenizer,
    load_tokenizer,
    token_stream,
)

KINDS = ("images", "tensors", "text", "hf_images", "hf_text")
THUMBNAILS = 16  # sample paths kept for a GUI strip
MAX_WORKERS = 4


@dataclass
class DataSource:
    """An opened dataset and what a front end shows about it.

    `kind`: one of KINDS; `labeled`: samples carry class labels; `classes`: label names
    (index = label); `preprocessing`: what images go through (None for tensors/text);
    `skipped`: unreadable samples met by the last complete pass of a loader;
    `sample_paths`: (path, label) of the first few images, for thumbnails; `targets`:
    per-sample labels (for stratified splits), None if unlabeled; `notes`: what the user
    should know (e.g. which split of a saved dataset was used).
    """

    path: str
    kind: str
    dataset: Dataset
    collate: Callable[[list[Any]], Batch]
    labeled: bool
    classes: list[str] = field(default_factory=list)
    preprocessing: Preprocessing | None = None
    skipped: int = 0
    sample_paths: list[tuple[str, int | None]] = field(default_factory=list)
    targets: list[int] | None = None
    notes: list[str] = field(default_factory=list)
    default_workers: int = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for reports and the GUI's data panel."""
        return {
            "path": self.path,
            "kind": self.kind,
            "samples": len(self),
            "labeled": self.labeled,
            "classes": list(self.classes),
            "preprocessing": None if self.preprocessing is None else self.preprocessing.to_dict(),
            "skipped": self.skipped,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------- open


def open_data(
    path: str | Path,
    *,
    preprocessing: Preprocessing | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    model_facts: ModelFacts | None = None,
    tokenizer: Any = None,
    seq_len: int | None = None,
    split: str | None = None,
) -> DataSource:
    """Open an image folder, tensor file, text corpus or saved HF dataset (module doc).

    `preprocessing` replaces what the model suggests; `overrides` (Preprocessing field ->
    value, plus `grayscale`) are applied on top of either: the user's values always win.
    `tokenizer`: a path, a transformers/tokenizers object, or None for the one next to the
    model. Raises DataError with one actionable line.
    """
    facts = model_facts or ModelFacts()
    p = Path(path)
    if not p.exists():
        raise DataError(f"data {p} does not exist")
    if p.is_dir() and hf_data.is_saved_dataset(p):
        return _open_hf(p, facts, preprocessing, overrides, tokenizer, seq_len, split)
    if p.is_dir():
        return _open_images(p, facts, preprocessing, overrides)
    suffix = p.suffix.lower()
    if suffix in TENSOR_SUFFIXES:
        return _open_tensors(p, facts)
    if suffix in TEXT_SUFFIXES:
        return _open_text(p, facts, tokenizer, seq_len)
    if is_image_file(p):
        raise DataError(f"{p} is a single image; give the folder that holds the images")
    kinds = ", ".join((*TENSOR_SUFFIXES, *TEXT_SUFFIXES))
    raise DataError(f"{p}: unsupported data file; give a folder of images, a tensor file or a "
                    f"text corpus ({kinds}), or a folder saved with datasets' save_to_disk")


def resolve_preprocessing(facts: ModelFacts, preprocessing: Preprocessing | dict | None,
                          overrides: dict[str, Any] | None) -> Preprocessing:
    """The model's own (or the given) preprocessing with the user's overrides on top."""
    if isinstance(preprocessing, dict):
        preprocessing = Preprocessing.from_dict(preprocessing)
    pre = preprocessing if preprocessing is not None else preprocessing_for(facts)
    return pre.with_overrides(**(overrides or {}))


def _check_image_model(facts: ModelFacts, pre: Preprocessing, what: str) -> None:
    shape = facts.image_shape()
    if facts.example_inputs is not None and shape is None:
        raise DataError(f"{what} holds images, but the model does not take one image tensor "
                        "(N, C, H, W); give tensor files or text that fit its inputs")
    if shape is not None and shape[0] != pre.channels:
        raise DataError(f"the model takes {shape[0]}-channel images but the preprocessing makes "
                        f"{pre.channels}-channel ones; set --grayscale or --no-grayscale to match")


def _workers() -> int:
    return max(1, min(MAX_WORKERS, (os.cpu_count() or 2) - 1))


def _open_images(root: Path, facts: ModelFacts, preprocessing: Any,
                 overrides: dict[str, Any] | None) -> DataSource:
    pre = resolve_preprocessing(facts, preprocessing, overrides)
    _check_image_model(facts, pre, str(root))
    try:
        dataset = open_image_folder(root, build_transform(pre), pre.channels)
    except PermissionError as exc:
        raise DataError(f"{exc.filename or root}: permission denied") from None
    samples: list[tuple[str, int]] = list(dataset.samples)  # type: ignore[attr-defined]
    classes = list(getattr(dataset, "classes", []))
    labeled = bool(classes)
    notes = []
    if not samples:
        raise DataError(f"{root} has class folders ({', '.join(classes[:5])}) but no images "
                        f"({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) in them")
    used = {t for _, t in samples}
    empty = [c for i, c in enumerate(classes) if i not in used]
    if empty:
        notes.append(f"class folder(s) without images: {', '.join(empty[:5])}")
    loose = sum(1 for p in root.iterdir() if p.is_file() and is_image_file(p)) if labeled else 0
    if loose:
        notes.append(f"{loose} image(s) directly in {root.name}/ are not used: with class "
                     "subfolders, only images inside them are")
    shown = [(path, label if labeled else None) for path, label in samples[:THUMBNAILS]]
    return DataSource(str(root), "images", dataset, _image_collate(facts), labeled, classes, pre,
                      sample_paths=shown,
                      targets=[t for _, t in samples] if labeled else None, notes=notes,
                      default_workers=_workers())


def _image_collate(facts: ModelFacts) -> Callable[[list[Any]], Batch]:
    key = facts.image_key()
    return KeyedCollate(key) if key is not None else collate


def _sample_shape(facts: ModelFacts) -> tuple[int, ...] | None:
    x = facts.example_inputs
    if isinstance(x, (tuple, list)) and len(x) == 1:
        x = x[0]
    shape = getattr(x, "shape", None)
    return tuple(int(d) for d in shape[1:]) if shape is not None and len(shape) >= 1 else None


def _open_tensors(path: Path, facts: ModelFacts) -> DataSource:
    dataset = open_tensor_file(path, _sample_shape(facts))
    targets = dataset.targets
    classes = [str(c) for c in sorted(set(targets))] if targets else []
    return DataSource(str(path), "tensors", dataset, collate_tensors, targets is not None,
                      classes, None, targets=targets)


def _input_key(facts: ModelFacts) -> str | None:
    """The keyword the model reads token ids from ("input_ids"), None for positional."""
    x = facts.example_inputs
    if isinstance(x, dict):
        ints = [k for k, v in x.items() if isinstance(v, torch.Tensor) and not
                v.is_floating_point() and v.dim() == 2]
        return "input_ids" if "input_ids" in x else (ints[0] if ints else "input_ids")
    if isinstance(x, torch.Tensor) or isinstance(x, (tuple, list)) and len(x) == 1:
        return None  # token ids passed positionally: model(ids)
    return "input_ids"


def _seq_len(facts: ModelFacts, seq_len: int | None) -> int:
    if seq_len is not None:
        return int(seq_len)
    config = getattr(facts.model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len"):
        n = getattr(config, attr, None)
        if isinstance(n, int) and n > 1:
            return min(n, DEFAULT_SEQ_LEN)
    return DEFAULT_SEQ_LEN


def _tokenizer(facts: ModelFacts, tokenizer: Any, what: str) -> TextTokenizer:
    if tokenizer is None:
        found = find_tokenizer(facts.model_dir)
        if found is None:
            raise DataError(f"{what} is text, and no tokenizer was found next to the model; "
                            "pass --tokenizer PATH (a tokenizer.json or a folder of HF "
                            "tokenizer files)")
        return load_tokenizer(found)
    if isinstance(tokenizer, (str, Path)):
        return load_tokenizer(tokenizer)
    return as_text_tokenizer(tokenizer)


def _open_text(path: Path, facts: ModelFacts, tokenizer: Any, seq_len: int | None) -> DataSource:
    from .text import open_text

    tok = _tokenizer(facts, tokenizer, str(path))
    key = _input_key(facts)
    dataset = open_text(path, tok, _seq_len(facts, seq_len), key)
    return _text_source(str(path), "text", dataset, tok, [])


def _text_source(path: str, kind: str, dataset: TokenSequences, tok: TextTokenizer,
                 notes: list[str]) -> DataSource:
    if len(dataset) == 0:
        raise DataError(f"{path} has fewer tokens than one sequence")
    notes = [*notes, f"{int(dataset.ids.numel())} tokens in {len(dataset)} sequences of "
             f"{dataset.seq_len} ({tok.name})"]
    return DataSource(path, kind, dataset, CollateSequences(dataset.input_key), False, notes=notes)


def _open_hf(path: Path, facts: ModelFacts, preprocessing: Any, overrides: Any, tokenizer: Any,
             seq_len: int | None, split: str | None) -> DataSource:
    ds, chosen = hf_data.load_saved(path, split)
    notes = [f"split {chosen!r}"] if chosen else []
    image = hf_data.column(ds, hf_data.IMAGE_COLUMNS)
    if image is not None:
        pre = resolve_preprocessing(facts, preprocessing, overrides)
        _check_image_model(facts, pre, str(path))
        label = hf_data.column(ds, hf_data.LABEL_COLUMNS)
        dataset = hf_data.HFImages(ds, image, label, build_transform(pre), pre.channels)
        if len(dataset) == 0:
            raise DataError(f"{path} holds no rows")
        classes = hf_data.class_names(ds, label)
        targets = dataset.targets
        if label and not classes:
            classes = [str(c) for c in sorted(set(targets or []))]
        return DataSource(str(path), "hf_images", dataset, _image_collate(facts), label is not None,
                          classes,
                          pre, targets=targets, notes=notes, default_workers=_workers())
    if "text" in ds.column_names:
        tok = _tokenizer(facts, tokenizer, str(path))
        ids = token_stream(hf_data.texts(ds), tok)
        dataset = TokenSequences(ids, _seq_len(facts, seq_len), _input_key(facts))
        return _text_source(str(path), "hf_text", dataset, tok, notes)
    images = ", ".join(hf_data.IMAGE_COLUMNS)
    raise DataError(f"{path}: a saved dataset needs an image column ({images}) or a text "
                    f"column; it has {', '.join(ds.column_names)[:120]}")


# --------------------------------------------------------------------- subsets


def _restrict(source: DataSource, indices: Sequence[int], note: str) -> DataSource:
    indices = [int(i) for i in indices]
    targets = None if source.targets is None else [source.targets[i] for i in indices]
    paths = source.sample_paths
    samples = getattr(source.dataset, "samples", None)
    if samples is not None:
        paths = [(samples[i][0], samples[i][1] if source.labeled else None)
                 for i in indices[:THUMBNAILS]]
    return dataclasses.replace(source, dataset=Subset(source.dataset, indices), targets=targets,
                               skipped=0, sample_paths=paths, notes=[*source.notes, note])


def _permutation(n: int, seed: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen).tolist()


def subset(source: DataSource, n: int | None, seed: int = 0) -> DataSource:
    """A seeded random subset of `n` samples (stratified when labeled); all when n is None."""
    if n is None or n >= len(source):
        return source
    if n <= 0:
        raise DataError(f"--samples must be positive, got {n}")
    keep, _ = _split_indices(source, 1.0 - n / len(source), seed, exact_first=n)
    return _restrict(source, sorted(keep), f"{n} of {len(source)} samples (seed {seed})")


@dataclass
class DataSplit:
    """Calibration (importance, recovery) and evaluation samples, disjoint."""

    calibration: DataSource
    evaluation: DataSource


def split_source(source: DataSource, eval_fraction: float = 0.2, seed: int = 0) -> DataSplit:
    """Deterministic disjoint split; per class when labeled, so both keep every class."""
    if not 0.0 < eval_fraction < 1.0:
        raise DataError(f"the evaluation fraction must be between 0 and 1, got {eval_fraction}")
    if len(source) < 2:
        raise DataError(f"{source.path} has {len(source)} sample(s); a calibration/evaluation "
                        "split needs at least 2 (or pass separate --eval-data)")
    calib, held = _split_indices(source, eval_fraction, seed)
    pct = f"{eval_fraction:.0%}"
    return DataSplit(
        _restrict(source, sorted(calib), f"calibration split ({len(calib)}, seed {seed})"),
        _restrict(source, sorted(held), f"evaluation split {pct} ({len(held)}, seed {seed})"))


def _split_indices(source: DataSource, fraction: float, seed: int,
                   exact_first: int | None = None) -> tuple[list[int], list[int]]:
    """(first, second): second gets `fraction` of each class (at least one of each class
    with 2+ samples); `exact_first` fixes the size of `first` instead."""
    n = len(source)
    if source.targets is None:
        order = _permutation(n, seed)
        first_n = exact_first if exact_first is not None else n - max(1, round(n * fraction))
        return order[:first_n], order[first_n:]
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(source.targets):
        by_class.setdefault(int(t), []).append(i)
    first: list[int] = []
    second: list[int] = []
    gen = torch.Generator().manual_seed(seed)
    for label in sorted(by_class):
        members = by_class[label]
        order = [members[j] for j in torch.randperm(len(members), generator=gen).tolist()]
        take = round(len(order) * fraction)
        if exact_first is None and len(order) >= 2:
            take = min(max(take, 1), len(order) - 1)
        second.extend(order[:take])
        first.extend(order[take:])
    if exact_first is not None:  # rounding per class: trim or top up to exactly n
        if len(first) > exact_first:
            order = _permutation(len(first), seed)
            first = [first[i] for i in order[:exact_first]]
        elif len(first) < exact_first:
            order = _permutation(len(second), seed)
            extra = [second[i] for i in order[:exact_first - len(first)]]
            first.extend(extra)
            second = [i for i in second if i not in set(extra)]
    return first, second


# ---------------------------------------------------------------------- loaders


class BatchLoader(DataLoader):
    """A DataLoader of `Batch`es that drops empty ones and keeps the skipped count.

    Samples a batch could not read are counted in the next yielded batch's `skipped`, and
    the total of a complete pass is stored in `source.skipped` (also counting any at the
    very end).
    """

    def __init__(self, source: DataSource, **kwargs: Any) -> None:
        super().__init__(source.dataset, collate_fn=source.collate, **kwargs)
        self.source = source

    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]
        pending = total = 0
        try:
            for batch in super().__iter__():
                pending += batch.skipped
                total += batch.skipped
                if len(batch) == 0:
                    continue
                batch.skipped, pending = pending, 0
                yield batch
        except DataError as exc:  # from a worker: keep the message, drop the traceback
            text = str(exc).strip().splitlines()
            message = next((line.split("DataError: ", 1)[1] for line in reversed(text)
                            if "DataError: " in line), text[-1] if text else "data error")
            raise DataError(message) from None
        self.source.skipped = total


def _worker_init(worker_id: int) -> None:
    """In each forked worker: exclude everything inherited from the parent from garbage
    collection. The collector's passes would otherwise write to every inherited object,
    and each written page becomes a private copy (hundreds of MB per worker for a parent
    holding torch and a model). Only the worker process is affected."""
    import gc

    gc.freeze()


def make_loader(source: DataSource, batch_size: int = 32, *, shuffle: bool = False,
                seed: int = 0, num_workers: int | None = None,
                pin_memory: bool | None = None, drop_last: bool = False) -> BatchLoader:
    """Batches of `source` (shuffled with a seeded generator when asked).

    `num_workers=None` picks the source's default: worker processes for images (decoding
    is the slow part), none for in-memory tensors and tokens.
    """
    if batch_size <= 0:
        raise DataError(f"batch size must be positive, got {batch_size}")
    workers = source.default_workers if num_workers is None else max(0, int(num_workers))
    if workers and len(source) <= batch_size:
        workers = 0  # one batch: starting processes costs more than it saves
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return BatchLoader(source, batch_size=batch_size, shuffle=shuffle, generator=gen,
                       num_workers=workers, pin_memory=pin_memory, drop_last=drop_last,
                       persistent_workers=False, worker_init_fn=_worker_init if workers else None)


__all__ = ["DataSource", "DataSplit", "BatchLoader", "open_data", "make_loader", "split_source",
           "subset", "resolve_preprocessing", "UNLABELED"]
