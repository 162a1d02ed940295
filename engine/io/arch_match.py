"""Which architecture does a weights-only file belong to? Rank zoo entries by name+shape.

A state dict names its tensors after the module tree that saved it (``layer1.0.conv1.
weight``), so a candidate architecture whose own state dict has the same names with the
same shapes is very likely the one. Candidates are built on the meta device (no memory,
no init cost, no weights), and only where they can plausibly match:

* torchvision: one model per builder module (resnet, vision_transformer, ...) is built
  first; a family's other members are built only when its top-level module names overlap
  the file's (the whole zoo costs ~20 s on two cores; a family ~1 s);
* timm (when installed): only the names the file hints at (its file name, an ``arch`` /
  ``model_name`` entry of a training checkpoint), since building all of timm's 1,300+
  models would take minutes;
* Hugging Face: a ``config.json`` beside the file (``hf:FOLDER``).

The score is the share of tensors that match in name and shape, over the larger of the two
tensor counts, so a model that has extra layers the file lacks does not score 100%.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

Signature = dict[str, tuple[int, ...]]

#: Share of top-level module names a family's representative must share with the file.
FAMILY_OVERLAP = 0.5
#: timm names tried per hint.
MAX_TIMM_PER_HINT = 12
_PREFIXES = ("module.", "_orig_mod.")  # the ones the loader strips too
_HINT_KEYS = ("arch", "model_name", "architecture", "model_type")


@dataclass(frozen=True)
class ArchCandidate:
    """One zoo entry and how well the file's tensors fit it."""

    spec: str
    matched: int  # tensors equal in name and shape
    same_name: int  # tensors equal in name (any shape)
    file_tensors: int
    model_tensors: int

    @property
    def score(self) -> float:
        return self.matched / max(self.file_tensors, self.model_tensors, 1)

    @property
    def exact(self) -> bool:
        return self.matched == self.file_tensors == self.model_tensors

    def describe(self) -> str:
        text = f"{self.spec} ({self.score:.0%} of tensors match"
        differ = self.same_name - self.matched
        if differ:
            text += f"; {differ} differ only in shape"
        return text + ")"


def tensor_signature(state_dict: Mapping[str, Any]) -> Signature:
    """name -> shape of every tensor, without the wrappers' ``module.`` style prefixes."""
    sig = {k: tuple(v.shape) for k, v in state_dict.items() if hasattr(v, "shape")}
    for prefix in _PREFIXES:
        if sig and all(k.startswith(prefix) for k in sig):
            sig = {k[len(prefix) :]: v for k, v in sig.items()}
    return sig


def rank_architectures(
    state_dict: Mapping[str, Any],
    *,
    path: Path | None = None,
    hints: Iterable[str] = (),
    limit: int = 5,
    torchvision_models: bool = True,
) -> list[ArchCandidate]:
    """The ``limit`` best candidates for ``state_dict``, best first (ties: fewer tensors)."""
    sig = tensor_signature(state_dict)
    if not sig:
        return []
    found: dict[str, ArchCandidate] = {}

    def consider(spec: str, candidate_sig: Signature | None) -> None:
        if candidate_sig is not None and spec not in found:
            found[spec] = _compare(spec, sig, candidate_sig)

    consider("arborist:demo", _demo_signature())
    if torchvision_models:
        for spec, candidate_sig in _torchvision_candidates(sig):
            consider(spec, candidate_sig)
    for name in _timm_names(path, hints):
        consider(f"timm:{name}", _timm_signature(name))
    for folder in _hf_folders(path):
        consider(f"hf:{folder}", _hf_signature(str(folder)))
    ranked = sorted(found.values(), key=lambda c: (-c.score, -c.matched, c.model_tensors))
    return [c for c in ranked if c.matched > 0][:limit]


def checkpoint_hints(obj: Any) -> list[str]:
    """Architecture names a training checkpoint records beside its weights."""
    if not isinstance(obj, Mapping):
        return []
    hints = []
    for key in _HINT_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and 0 < len(value) < 100:
            hints.append(value)
    args = obj.get("args")  # timm's train.py saves its argparse namespace
    model = getattr(args, "model", None) if args is not None else None
    if isinstance(model, str) and 0 < len(model) < 100:
        hints.append(model)
    return hints


def closest_message(candidates: list[ArchCandidate], shown: int = 3) -> str:
    """``"closest: torchvision:resnet18 (100% of tensors match), ..."``, or a fallback."""
    if not candidates:
        return "no zoo model matches its tensor names"
    return "closest: " + ", ".join(c.describe() for c in candidates[:shown])


def _compare(spec: str, file_sig: Signature, model_sig: Signature) -> ArchCandidate:
    same = [k for k in file_sig if k in model_sig]
    matched = sum(1 for k in same if file_sig[k] == model_sig[k])
    return ArchCandidate(spec, matched, len(same), len(file_sig), len(model_sig))


def _top_names(sig: Iterable[str]) -> set[str]:
    return {k.split(".", 1)[0] for k in sig}


def _overlap(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(len(a | b), 1)


# --------------------------------------------------------------------- torchvision


def _torchvision_candidates(sig: Signature) -> Iterable[tuple[str, Signature | None]]:
    families = _torchvision_families()
    top = _top_names(sig)
    for members in families.values():
        first = _torchvision_signature(min(members, key=lambda n: (len(n), n)))
        if first is None or _overlap(top, _top_names(first)) < FAMILY_OVERLAP:
            continue
        for name in members:
            yield f"torchvision:{name}", _torchvision_signature(name)


@lru_cache(maxsize=1)
def _torchvision_families() -> dict[str, list[str]]:
    """Builder module -> model names, quantized models left out (int8 state dicts)."""
    try:
        from torchvision import models as M
    except ImportError:
        return {}
    quantized = set(M.list_models(module=M.quantization))
    families: dict[str, list[str]] = {}
    for name in M.list_models():
        if name in quantized:
            continue
        module = M.get_model_builder(name).__module__
        families.setdefault(module, []).append(name)
    return families


@lru_cache(maxsize=256)
def _torchvision_signature(name: str) -> Signature | None:
    from torchvision import models as M

    builder = M.get_model_builder(name)
    kwargs = {p: None for p in inspect.signature(builder).parameters if p.startswith("weights")}
    return _meta_signature(lambda: builder(**kwargs))


def _meta_signature(build: Any) -> Signature | None:
    """State-dict signature of the model ``build()`` makes on the meta device."""
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            model = build()
    except Exception:
        return None  # e.g. an init that copies data (torchvision's RegNet): not a candidate
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@lru_cache(maxsize=1)
def _demo_signature() -> Signature | None:
    try:
        from engine.models.digits_net import DigitsNet  # lazy: the demo is owned elsewhere
    except ImportError:
        return None
    return _meta_signature(DigitsNet)


# --------------------------------------------------------------------------- timm


def _timm_names(path: Path | None, hints: Iterable[str]) -> list[str]:
    try:
        import timm  # type: ignore[import-not-found]
    except ImportError:
        return []
    words = [h for h in hints if h]
    if path is not None:
        words.append(path.stem)
    names: list[str] = []
    available = set(timm.list_models())
    for word in words:
        word = word.lower().removeprefix("timm:").split(".")[0]
        if word in available:
            names.append(word)
            continue
        # a file name such as "resnet50_a1_in1k-best": its longest prefix that names models
        parts = re.split(r"[-_.\s]", word)
        for cut in range(len(parts), 0, -1):
            stem = "_".join(parts[:cut])
            if len(stem) < 3:
                break
            matches = timm.list_models(f"{stem}*")
            if matches:
                names.extend(matches[:MAX_TIMM_PER_HINT])
                break
    return list(dict.fromkeys(names))


@lru_cache(maxsize=256)
def _timm_signature(name: str) -> Signature | None:
    import timm  # type: ignore[import-not-found]

    return _meta_signature(lambda: timm.create_model(name, pretrained=False))


# ---------------------------------------------------------------------- Hugging Face


def _hf_folders(path: Path | None) -> list[Path]:
    if path is None:
        return []
    folder = path.resolve().parent
    return [folder] if (folder / "config.json").is_file() else []


@lru_cache(maxsize=32)
def _hf_signature(folder: str) -> Signature | None:
    from .zoo import build_hf_from_config

    return _meta_signature(lambda: build_hf_from_config(Path(folder)))
