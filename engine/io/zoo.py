"""Model-zoo specs: ``torchvision:NAME``, ``timm:NAME``, ``ultralytics:CFG.yaml``, ``hf:FOLDER``
and ``arborist:demo``.

``hf:FOLDER`` builds the Hugging Face model a local ``config.json`` describes (its first
``architectures`` entry), never reading anything but that file and never running code
from it (``trust_remote_code`` stays off).

Models are always built with random weights (``weights=None``): the workbench
never downloads anything, and pruning structure does not depend on weights.
Each zoo model comes with default example inputs suited to its family.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ModelLoadError
from .input_spec import InputSpec

ZOO_PREFIXES = ("torchvision", "timm", "ultralytics", "arborist", "hf")

# Default inputs by family; image sides are kept modest so tracing is quick on CPU.
_DETECTION_SPEC = "1,3,320,320"  # detection transforms resize internally anyway
_SEGMENTATION_SPEC = "1,3,224,224"  # weights say 520; any size works for tracing
_FLOW_SPEC = "1,3,224,224;1,3,224,224"  # RAFT: two frames, sides divisible by 8
_VIDEO_FRAMES = 16  # MViT needs exactly 16; others accept it


@dataclass(frozen=True)
class ZooModel:
    """A freshly built zoo model with its default input spec."""

    model: nn.Module
    input_spec: InputSpec
    description: str


def is_zoo_spec(source: str) -> bool:
    """True for strings of the form ``prefix:name`` with a known prefix."""
    prefix, sep, name = source.partition(":")
    return bool(sep) and prefix.lower() in ZOO_PREFIXES and bool(name.strip())


ZOO_SEED = 0


def build_zoo_model(spec: str) -> ZooModel:
    """Build the model named by ``spec`` (random weights, eval mode).

    Weights come from a fixed seed (the caller's RNG state is left alone) so the same spec
    always gives the same model: a preview, a dry run and the real prune then agree even
    for global ranking, and reopening a model shows the same numbers.
    """
    with torch.random.fork_rng():
        torch.manual_seed(ZOO_SEED)
        return _build_zoo_model(spec)


def _build_zoo_model(spec: str) -> ZooModel:
    prefix, _, name = spec.partition(":")
    prefix, name = prefix.lower().strip(), name.strip()
    if prefix == "torchvision":
        return _build_torchvision(name)
    if prefix == "timm":
        return _build_timm(name)
    if prefix == "arborist":
        return _build_arborist(name)
    if prefix == "hf":
        return _build_hf(name)
    if prefix == "ultralytics":
        return _build_ultralytics(name)
    raise ModelLoadError(
        f"unknown model zoo {prefix!r} in {spec!r}; use one of: {', '.join(ZOO_PREFIXES)}"
    )


def _params(model: nn.Module) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e6:.2f}M params"


# --------------------------------------------------------------------- torchvision


def _torchvision_family(name: str) -> str:
    from torchvision import models as M

    for family, module in (
        ("detection", M.detection),
        ("segmentation", M.segmentation),
        ("video", M.video),
        ("optical_flow", M.optical_flow),
        ("quantization", M.quantization),
    ):
        if name in M.list_models(module=module):
            return family
    return "classification"


def _torchvision_spec(name: str, family: str) -> InputSpec:
    if family == "detection":
        return InputSpec.parse(_DETECTION_SPEC)
    if family == "segmentation":
        return InputSpec.parse(_SEGMENTATION_SPEC)
    if family == "optical_flow":
        return InputSpec.parse(_FLOW_SPEC)
    side = _crop_size(name) or 224
    if family == "video":
        return InputSpec.parse(f"1,3,{_VIDEO_FRAMES},{side},{side}")
    return InputSpec.parse(f"1,3,{side},{side}")


def _crop_size(name: str) -> int | None:
    """Evaluation crop side from the weights enum's transforms (no download)."""
    from torchvision import models as M

    try:
        weights = M.get_model_weights(name)
        crop = getattr(weights.DEFAULT.transforms(), "crop_size", None)
    except Exception:  # no weights enum, or transforms need something unusual
        return None
    if isinstance(crop, (list, tuple)) and crop:
        return int(crop[0])
    return int(crop) if isinstance(crop, int) else None


def _build_torchvision(name: str) -> ZooModel:
    try:
        from torchvision import models as M
    except ImportError as exc:
        raise ModelLoadError(
            f"torchvision is not installed ({exc}); pip install torchvision"
        ) from None
    available = M.list_models()
    if name not in available:
        close = [n for n in available if name.lower() in n][:5]
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else "; see torchvision.models.list_models()"
        )
        raise ModelLoadError(f"torchvision has no model {name!r}{hint}")
    builder = M.get_model_builder(name)
    # weights=None alone is not enough: detection/segmentation builders default
    # weights_backbone to ImageNet weights, which would trigger a download.
    kwargs = {p: None for p in inspect.signature(builder).parameters if p.startswith("weights")}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # e.g. inception init-weights notice
            model = builder(**kwargs)
    except Exception as exc:
        raise ModelLoadError(
            f"building torchvision:{name} failed: {type(exc).__name__}: {exc}"
        ) from None
    family = _torchvision_family(name)
    return ZooModel(
        model.eval(),
        _torchvision_spec(name, family),
        f"torchvision:{name} ({family}, random weights, {_params(model)})",
    )


# --------------------------------------------------------------------------- timm


#: timm resolves these prefixes (and "org/repo" names) by downloading or reading configs.
_TIMM_REMOTE_PREFIXES = ("hf-hub:", "hf_hub:", "local-dir:", "http:", "https:")


def _refuse_remote_timm(name: str) -> None:
    """timm fetches ``hf-hub:org/repo`` from the Hugging Face hub: refused before timm sees it."""
    if name.lower().startswith(_TIMM_REMOTE_PREFIXES) or "/" in name or ":" in name:
        raise ModelLoadError(
            f"timm:{name[:80]} names a model hub or folder reference; Arborist never downloads "
            "anything, so use a plain timm architecture name (e.g. timm:resnet18) and load "
            "weights from a local file (--arch)"
        )


def _build_timm(name: str) -> ZooModel:
    _refuse_remote_timm(name)
    try:
        import timm  # type: ignore[import-not-found]
    except ImportError:
        raise ModelLoadError(
            f"timm:{name} needs the timm package, which is not installed; pip install timm"
        ) from None
    try:
        model = timm.create_model(name, pretrained=False)
    except Exception as exc:
        raise ModelLoadError(
            f"timm could not build {name!r}: {type(exc).__name__}: {exc}"
        ) from None
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = tuple(cfg.get("input_size", (3, 224, 224)))
    spec = InputSpec.parse(",".join(str(d) for d in (1, *size)))
    return ZooModel(model.eval(), spec, f"timm:{name} (random weights, {_params(model)})")


def _build_ultralytics(name: str) -> ZooModel:
    """A YOLO from ultralytics' own yaml (yolov8n.yaml, yolo11n-seg.yaml, ...): no weights."""
    from ..families.yolo import build_yolo

    try:
        model = build_yolo(name)
    except (ImportError, ValueError) as exc:
        raise ModelLoadError(str(exc)) from None
    except Exception as exc:
        raise ModelLoadError(
            f"ultralytics could not build {name!r}: {type(exc).__name__}: {exc}") from None
    side = 224 if "-cls" in name else 320
    spec = InputSpec.parse(f"1,3,{side},{side}")
    return ZooModel(model, spec, f"ultralytics:{name} (random weights, {_params(model)})")


# ----------------------------------------------------------------------- arborist


def _build_arborist(name: str) -> ZooModel:
    if name != "demo":
        raise ModelLoadError(f"unknown built-in model arborist:{name}; available: arborist:demo")
    try:
        from engine.models.digits_net import load_demo  # lazy: optional, owned elsewhere
    except ImportError as exc:
        raise ModelLoadError(
            f"the demo model is unavailable (engine.models.digits_net: {exc})"
        ) from None
    result: Any = load_demo()
    model, inputs = _unpack_demo(result)
    from .guess import guess_input_spec

    spec = InputSpec.from_inputs(inputs) if inputs is not None else guess_input_spec(model)
    if spec is None:
        raise ModelLoadError("the demo model came without example inputs and none could be guessed")
    return ZooModel(model.eval(), spec, f"arborist:demo ({type(model).__name__}, {_params(model)})")


def _unpack_demo(result: Any) -> tuple[nn.Module, Any]:
    """Accept a module, a (module, inputs) pair, or an object with .model/.example_inputs."""
    if isinstance(result, nn.Module):
        return result, None
    if isinstance(result, tuple) and result and isinstance(result[0], nn.Module):
        return result[0], result[1] if len(result) > 1 else None
    model = getattr(result, "model", None)
    if isinstance(model, nn.Module):
        inputs = getattr(result, "example_inputs", None)
        if inputs is None and isinstance(getattr(result, "input_spec", None), (str, InputSpec)):
            spec = result.input_spec
            inputs = (InputSpec.parse(spec) if isinstance(spec, str) else spec).make()
        return model, inputs
    raise ModelLoadError(f"load_demo() returned {type(result).__name__}, expected an nn.Module")


# --------------------------------------------------------------------- Hugging Face


def build_hf_from_config(folder: Path) -> nn.Module:
    """The model ``folder/config.json`` describes, with random weights; local files only."""
    try:
        import transformers
        from transformers import AutoConfig, AutoModel
    except ImportError:
        raise ModelLoadError(
            "hf: models need the transformers package; pip install transformers"
        ) from None
    config_file = folder / "config.json" if folder.is_dir() else folder
    if not config_file.is_file():
        raise ModelLoadError(f"hf:{folder} has no config.json")
    try:
        config = AutoConfig.from_pretrained(str(config_file.parent), local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"hf:{folder}: config.json is not a usable Hugging Face config "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
        ) from None
    names = list(getattr(config, "architectures", None) or [])
    cls = getattr(transformers, names[0], None) if names else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cls is None:
            return AutoModel.from_config(config)
        return cls(config)


def _hf_input_spec(model: nn.Module) -> InputSpec:
    config = getattr(model, "config", None)
    main = getattr(model, "main_input_name", "input_ids")
    if main == "pixel_values":
        side = getattr(config, "image_size", 224)
        side = side[0] if isinstance(side, (list, tuple)) else int(side)
        channels = int(getattr(config, "num_channels", 3))
        return InputSpec.parse(f"pixel_values=1,{channels},{side},{side}")
    return InputSpec.parse(f"{main}=1,16:int64")


def _build_hf(name: str) -> ZooModel:
    model = build_hf_from_config(Path(name).expanduser())
    return ZooModel(
        model.eval(),
        _hf_input_spec(model),
        f"hf:{name} ({type(model).__name__}, random weights, {_params(model)})",
    )
