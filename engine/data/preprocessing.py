"""How images become model inputs: one dataclass, filled from what the model says about itself.

The same `Preprocessing` is what the CLI flags (--resize --crop --mean --std --grayscale),
the plan and the GUI edit, so it round-trips through `to_dict`/`from_dict`. Where it comes
from, in order (the first that knows wins; user overrides are applied on top by the caller):

1. the demo's own metadata (8x8 grayscale, pixels / 255, no normalisation);
2. timm's `pretrained_cfg` (input_size, crop_pct, mean, std, interpolation);
3. a Hugging Face `preprocessor_config.json` next to the model file;
4. torchvision's weights transforms for a `torchvision:NAME` architecture;
5. the example input's shape (N, C, H, W) with ImageNet mean/std.

`build_transform` turns it into a torchvision transforms v2 pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875  # torchvision/timm's 224 crop of a 256 resize
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
# PIL resample codes as HF image processors store them
_PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic", 1: "bicubic", 4: "bilinear",
                 5: "bicubic"}

Size = int | tuple[int, int]


@dataclass
class Preprocessing:
    """Image -> tensor: resize, centre crop, pixels / scale, (x - mean) / std.

    `resize`: an int resizes the shorter side (aspect kept), (h, w) resizes exactly;
    `crop`: centre crop to an int square or (h, w); `mean`/`std`: per channel, None for no
    normalisation; `channels`: 1 (grayscale) or 3 (RGB); `scale`: the divisor of the 8-bit
    pixels (255 gives [0, 1]); `source` says where these values came from.
    """

    resize: Size | None = None
    crop: Size | None = None
    mean: tuple[float, ...] | None = IMAGENET_MEAN
    std: tuple[float, ...] | None = IMAGENET_STD
    channels: int = 3
    scale: float = 255.0
    interpolation: str = "bilinear"
    source: str = "default"

    def __post_init__(self) -> None:
        self.resize = _size(self.resize, "resize")
        self.crop = _size(self.crop, "crop")
        self.mean = _floats(self.mean, "mean")
        self.std = _floats(self.std, "std")
        if self.channels not in (1, 3):
            raise DataError(f"preprocessing channels must be 1 (grayscale) or 3, "
                            f"got {self.channels}")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) not in (1, self.channels):
                raise DataError(f"preprocessing {name} has {len(values)} values but the images "
                                f"have {self.channels} channel(s); give 1 or {self.channels}")
        if self.std is not None and any(s == 0 for s in self.std):
            raise DataError("preprocessing std must not contain 0")
        if not self.scale or not math.isfinite(self.scale) or self.scale <= 0:
            raise DataError(f"preprocessing scale must be a positive number, got {self.scale}")
        if self.interpolation not in INTERPOLATIONS:
            raise DataError(f"preprocessing interpolation {self.interpolation!r}: use one of "
                            f"{', '.join(INTERPOLATIONS)}")

    @property
    def grayscale(self) -> bool:
        return self.channels == 1

    @property
    def output_size(self) -> tuple[int, int] | None:
        """(H, W) of the tensors this produces, when fixed (a crop or an exact resize)."""
        if self.crop is not None:
            return self.crop if isinstance(self.crop, tuple) else (self.crop, self.crop)
        return self.resize if isinstance(self.resize, tuple) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples become lists)."""
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"preprocessing: unknown field(s) {', '.join(unknown)} (known: "
                            f"{', '.join(sorted(known))})")
        return cls(**data)

    def with_overrides(self, **changes: Any) -> Preprocessing:
        """A copy with the given (not None) fields replaced: the user's values always win.

        `grayscale=True/False` sets `channels` (1/3). A mean/std of the wrong length for the
        new channel count is an error, so overriding channels also needs a fitting mean/std.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        if "grayscale" in changes:
            gray = changes.pop("grayscale")
            changes.setdefault("channels", 1 if gray else 3)
            if changes["channels"] != self.channels:
                # keep normalisation meaningful: average the colour stats for gray, repeat for RGB
                for key in ("mean", "std"):
                    values = getattr(self, key)
                    if key not in changes and values is not None:
                        changes[key] = _fit_channels(values, changes["channels"])
        if not changes:
            return self
        changes.setdefault("source", f"{self.source} + user overrides")
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line for reports: 'resize 256, crop 224, RGB, /255, mean (...), std (...)'."""
        parts = []
        if self.resize is not None:
            parts.append(f"resize {_show(self.resize)}")
        if self.crop is not None:
            parts.append(f"crop {_show(self.crop)}")
        parts.append("grayscale" if self.grayscale else "RGB")
        parts.append(f"pixels / {self.scale:g}")
        if self.mean is None and self.std is None:
            parts.append("no normalisation")
        else:
            parts.append(f"mean {_show(self.mean)}, std {_show(self.std)}")
        return f"{', '.join(parts)} ({self.source})"


def _show(v: Any) -> str:
    if isinstance(v, tuple):
        return "(" + ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) + ")"
    return str(v)


def _size(value: Any, name: str) -> Size | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            value = value[0]
        elif len(value) == 2:
            h, w = (int(v) for v in value)
            if h <= 0 or w <= 0:
                raise DataError(f"preprocessing {name} must be positive, got {value}")
            return (h, w)
        else:
            raise DataError(f"preprocessing {name}: give one side or (height, width), got {value}")
    if isinstance(value, bool) or int(value) != value or int(value) <= 0:
        raise DataError(f"preprocessing {name} must be a positive integer, got {value!r}")
    return int(value)


def _floats(value: Any, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = (value,)
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise DataError(f"preprocessing {name} must be numbers, got {value!r}") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise DataError(f"preprocessing {name} must be finite numbers, got {value!r}")
    return out


def _fit_channels(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    if len(values) == channels:
        return values
    if channels == 1:
        return (sum(values) / len(values),)
    return tuple(values[:1]) * channels


# ------------------------------------------------------------------ where it comes from


@dataclass
class ModelFacts:
    """What a model says about its expected inputs (all optional).

    `source`: the file path or zoo spec it was opened from; `arch`: a zoo spec such as
    "torchvision:resnet50"; `model`: the module (timm keeps `pretrained_cfg` on it; HF
    models keep `config`); `example_inputs`: what it was traced with.
    """

    source: str | None = None
    arch: str | None = None
    model: Any = None
    example_inputs: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_loaded(cls, loaded: Any) -> ModelFacts:
        """From an `engine.io.LoadedModel`."""
        return cls(source=str(getattr(loaded, "source", "") or "") or None,
                   arch=getattr(loaded, "arch", None), model=getattr(loaded, "model", None),
                   example_inputs=getattr(loaded, "example_inputs", None))

    @property
    def model_dir(self) -> Path | None:
        """The folder holding the model's files (HF configs, tokenizer), if it is a path."""
        if not self.source or ":" in self.source and not Path(self.source).exists():
            return None
        path = Path(self.source)
        if path.is_dir():
            return path
        return path.parent if path.exists() else None

    def image_key(self) -> str | None:
        """The keyword of the one image tensor of dict inputs (HF: "pixel_values"), else None."""
        x = self.example_inputs
        if not isinstance(x, dict):
            return None
        images = [k for k, v in x.items() if getattr(v, "ndim", 0) == 4
                  and getattr(v, "is_floating_point", lambda: False)()]
        return images[0] if len(images) == 1 and len(x) == 1 else None

    def image_shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) of a single N,C,H,W example input (or dict entry), else None."""
        x = self.example_inputs
        if isinstance(x, (tuple, list)) and len(x) == 1:
            x = x[0]
        key = self.image_key()
        if key is not None:
            x = self.example_inputs[key]
        shape = getattr(x, "shape", None)
        if shape is not None and len(shape) == 4:
            return int(shape[1]), int(shape[2]), int(shape[3])
        return None


def is_demo(facts: ModelFacts) -> bool:
    if (facts.arch or "").lower() == "arborist:demo" or (facts.source or "") == "arborist:demo":
        return True
    model = facts.model
    return type(model).__name__ == "DigitsNet" and type(model).__module__.startswith("engine.")


def preprocessing_for(facts: ModelFacts | None) -> Preprocessing:
    """The preprocessing the model expects, from the first source that knows (module doc)."""
    facts = facts or ModelFacts()
    for finder in (_from_demo, _from_timm, _from_hf_config, _from_torchvision):
        found = finder(facts)
        if found is not None:
            return found
    return _from_example(facts)


def _from_demo(facts: ModelFacts) -> Preprocessing | None:
    if not is_demo(facts):
        return None
    from ..models.digits_net import INPUT_SHAPE

    side = INPUT_SHAPE[-1]
    return Preprocessing(resize=(INPUT_SHAPE[-2], side), crop=None, mean=None, std=None,
                         channels=INPUT_SHAPE[1], scale=255.0, source="demo metadata")


def _from_timm(facts: ModelFacts) -> Preprocessing | None:
    cfg = getattr(facts.model, "pretrained_cfg", None)
    if not isinstance(cfg, dict) or "input_size" not in cfg:
        return None
    channels, h, w = (int(v) for v in cfg["input_size"])
    pct = float(cfg.get("crop_pct") or DEFAULT_CROP_PCT)
    crop_mode = cfg.get("crop_mode", "center")
    resize: Size = (h, w) if crop_mode == "squash" else int(math.floor(min(h, w) / pct))
    interp = cfg.get("interpolation", "bilinear")
    return Preprocessing(resize=resize, crop=(h, w),
                         mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
                         std=tuple(cfg.get("std", IMAGENET_STD)),
                         channels=channels if channels in (1, 3) else 3,
                         interpolation=interp if interp in INTERPOLATIONS else "bilinear",
                         source="timm pretrained_cfg")


HF_PROCESSOR_FILE = "preprocessor_config.json"


def _from_hf_config(facts: ModelFacts) -> Preprocessing | None:
    folder = facts.model_dir
    path = folder / HF_PROCESSOR_FILE if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image processor config ({exc})") from None
    return hf_preprocessing(cfg, f"{HF_PROCESSOR_FILE} next to the model")


def hf_preprocessing(cfg: dict[str, Any], source: str = HF_PROCESSOR_FILE) -> Preprocessing:
    """A Hugging Face image processor config (do_resize/size, crop_size, image_mean...)."""

    def side(value: Any) -> Size | None:
        if value is None:
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, dict):
            if "height" in value and "width" in value:
                return (int(value["height"]), int(value["width"]))
            if "shortest_edge" in value:
                return int(value["shortest_edge"])
        raise DataError(f"{source}: cannot read the size {value!r}")

    resize = side(cfg.get("size")) if cfg.get("do_resize", True) else None
    crop = side(cfg.get("crop_size")) if cfg.get("do_center_crop", False) else None
    normalize = cfg.get("do_normalize", True)
    mean = tuple(cfg.get("image_mean", IMAGENET_MEAN)) if normalize else None
    std = tuple(cfg.get("image_std", IMAGENET_STD)) if normalize else None
    factor = float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0
    channels = 1 if mean is not None and len(mean) == 1 else 3
    return Preprocessing(resize=resize, crop=crop, mean=mean, std=std, channels=channels,
                         scale=1.0 / factor,
                         interpolation=_PIL_RESAMPLE.get(cfg.get("resample", 2), "bilinear"),
                         source=source)


def _from_torchvision(facts: ModelFacts) -> Preprocessing | None:
    arch = facts.arch or (facts.source if (facts.source or "").startswith("torchvision:") else "")
    prefix, _, name = (arch or "").partition(":")
    if prefix.lower() != "torchvision" or not name:
        return None
    try:
        from torchvision import models as M

        transforms = M.get_model_weights(name).DEFAULT.transforms()
    except Exception:  # noqa: BLE001 - no weights enum for this model
        return None
    crop = getattr(transforms, "crop_size", None)
    resize = getattr(transforms, "resize_size", None)
    mean, std = getattr(transforms, "mean", None), getattr(transforms, "std", None)
    if crop is None or mean is None:
        return None
    interp = getattr(getattr(transforms, "interpolation", None), "value", "bilinear")
    return Preprocessing(resize=_size(resize, "resize"), crop=_size(crop, "crop"),
                         mean=tuple(mean), std=tuple(std),
                         interpolation=interp if interp in INTERPOLATIONS else "bilinear",
                         source=f"torchvision {name} weights transforms")


def _from_example(facts: ModelFacts) -> Preprocessing:
    shape = facts.image_shape()
    if shape is None:
        return Preprocessing(resize=256, crop=224, source="ImageNet defaults (no image input "
                                                          "shape known)")
    c, h, w = shape
    channels = 1 if c == 1 else 3
    mean = _fit_channels(IMAGENET_MEAN, channels)
    std = _fit_channels(IMAGENET_STD, channels)
    resize = int(math.floor(min(h, w) / DEFAULT_CROP_PCT))
    return Preprocessing(resize=resize, crop=(h, w), mean=mean, std=std, channels=channels,
                         source=f"example input {c}x{h}x{w} with ImageNet mean/std")


# ---------------------------------------------------------------------------- transforms


def build_transform(pre: Preprocessing) -> Any:
    """The torchvision transforms v2 pipeline: PIL image -> float tensor (C, H, W)."""
    import torch
    from torchvision.transforms import InterpolationMode, v2

    steps: list[Any] = [v2.ToImage()]
    mode = InterpolationMode(pre.interpolation)
    if pre.resize is not None:
        steps.append(v2.Resize(list(pre.resize) if isinstance(pre.resize, tuple) else pre.resize,
                               interpolation=mode, antialias=True))
    if pre.crop is not None:
        steps.append(v2.CenterCrop(list(pre.crop) if isinstance(pre.crop, tuple) else pre.crop))
    if pre.scale == 255.0:
        steps.append(v2.ToDtype(torch.float32, scale=True))
    else:  # x / scale, as a normalisation with mean 0
        steps.append(v2.ToDtype(torch.float32, scale=False))
        steps.append(v2.Normalize(mean=[0.0] * pre.channels, std=[pre.scale] * pre.channels))
    if pre.mean is not None or pre.std is not None:
        mean = list(_fit_channels(pre.mean or (0.0,), pre.channels))
        std = list(_fit_channels(pre.std or (1.0,), pre.channels))
        steps.append(v2.Normalize(mean=mean, std=std))
    return v2.Compose(steps)
