"""TorchScript archives (``torch.jit.save``): recognised, loaded only after trust, and
converted to prunable layers through ONNX.

A TorchScript module's layers are compiled ``RecursiveScriptModule``s, not ``nn.Conv2d``,
so no pruner can change them. Its program can be exported to ONNX, though, and an ONNX
graph converts back to ordinary layers (``onnx_import``): that is the route taken. When
the export fails, or the converted module does not compute what the archive computes,
the file is refused with that reason.

Security: ``torch.jit.load`` does not unpickle arbitrary Python classes (its unpickler
rebuilds only tensors and TorchScript types), but the archive carries a program that
runs with every registered operator, and the C++ deserializer is a large attack surface.
So it is treated like a pickle: nothing is loaded without ``trust=True`` (``--trust``).
"""

from __future__ import annotations

import io
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import InputSpecError, ModelLoadError, UntrustedPickleError, short_reason
from .input_spec import InputSpec, call_with
from .zip_guard import check_torch_zip

_IMAGE_SIDES = (224, 32, 28, 64, 96, 128, 299)
#: Largest difference between the archive's and the converted module's outputs.
ATOL = 1e-4


@dataclass
class TorchScriptImport:
    module: nn.Module
    spec: InputSpec
    description: str


def is_torchscript(path: Path) -> bool:
    """A zip archive with TorchScript's own members (``constants.pkl``, ``code/``)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    has_constants = any(n.endswith("/constants.pkl") for n in names)
    has_code = any("/code/" in n for n in names)
    return has_constants and has_code


def load_torchscript(
    path: Path, *, trust: bool, spec_override: InputSpec | None = None
) -> TorchScriptImport:
    """Load ``path`` (only with ``trust``) and convert it to prunable layers via ONNX."""
    if not trust:
        raise UntrustedPickleError(
            f"{path.name} is a TorchScript archive (torch.jit.save); loading it runs the "
            f"program stored in it; pass trust=True (--trust) only if it comes from a "
            f"trusted source"
        )
    check_torch_zip(path, what=path.name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ModelLoadError(
            f"{path.name} is a TorchScript archive that torch cannot load ({short_reason(exc)})"
        ) from None
    scripted.eval()
    spec = spec_override or guess_script_spec(scripted)
    if spec is None:  # InputSpecError: the GUI then asks for a shape
        raise InputSpecError(
            f"{path.name} is a TorchScript archive whose inputs could not be guessed; "
            "pass an input spec (--input-shape)"
        )
    inputs = spec.make()
    try:
        with torch.no_grad():
            reference = call_with(scripted, inputs)
    except Exception as exc:
        raise InputSpecError(
            f"{path.name}: the TorchScript program does not run on inputs {spec.to_string()} "
            f"({short_reason(exc, 100)}); pass the right --input-shape"
        ) from None
    module = _convert_via_onnx(scripted, inputs, spec, path.name)
    _check_same_outputs(module, scripted, inputs, reference, path.name)
    return TorchScriptImport(
        module,
        spec,
        f"{path.name} (TorchScript {scripted.original_name}, converted through ONNX "
        "to prunable layers)",
    )


def _convert_via_onnx(
    scripted: torch.jit.ScriptModule, inputs: Any, spec: InputSpec, name: str
) -> nn.Module:
    import onnx

    from .onnx_import import convert_onnx_proto

    buffer = io.BytesIO()
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if isinstance(inputs, dict):
        raise ModelLoadError(
            f"{name}: TorchScript programs with keyword inputs cannot be converted; "
            "open the model it was scripted from instead"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            names = [f"input_{i}" for i in range(len(args))]
            torch.onnx.export(
                scripted,
                args,
                buffer,
                opset_version=17,
                dynamo=False,
                input_names=names,
                dynamic_axes={n: {0: "batch"} for n, a in zip(names, args, strict=True) if a.dim()},
            )
    except Exception as exc:
        raise ModelLoadError(
            f"{name} is a TorchScript archive whose compiled layers cannot be pruned, and its "
            f"program has no ONNX form to rebuild them from ({short_reason(exc, 120)}); "
            "open the model it was scripted from (or its state dict with --arch) instead"
        ) from None
    proto = onnx.load_from_string(buffer.getvalue())
    return convert_onnx_proto(proto, name, spec).module


def _check_same_outputs(
    module: nn.Module, scripted: Any, inputs: Any, reference: Any, name: str
) -> None:
    from .onnx_export import flatten_outputs

    with torch.no_grad():
        got = flatten_outputs(call_with(module, inputs))
    want = flatten_outputs(reference)
    same = len(got) == len(want) and all(
        a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=0, atol=ATOL)
        for (_, a), (_, b) in zip(got, want, strict=True)
    )
    if not same:
        raise ModelLoadError(
            f"{name}: the TorchScript program's conversion to prunable layers does not compute "
            "what the archive computes; open the model it was scripted from instead"
        )


def guess_script_spec(scripted: Any) -> InputSpec | None:
    """Input candidates from the first Conv/Linear layer inside a script module, verified."""
    for candidate in _candidates(scripted):
        try:
            with torch.no_grad():
                call_with(scripted, candidate.make())
            return candidate
        except Exception:
            continue
    return None


def _candidates(scripted: Any) -> list[InputSpec]:
    for _name, sub in scripted.named_modules():
        kind = getattr(sub, "original_name", "")
        weight = getattr(sub, "weight", None)
        if not isinstance(weight, torch.Tensor):
            continue
        try:
            if kind == "Conv2d":
                channels = int(getattr(sub, "in_channels", 0) or weight.shape[1])
                return [InputSpec.parse(f"1,{channels},{s},{s}") for s in _IMAGE_SIDES]
            if kind == "Conv1d":
                channels = int(getattr(sub, "in_channels", 0) or weight.shape[1])
                return [InputSpec.parse(f"1,{channels},{n}") for n in (128, 32)]
            if kind == "Linear":
                return [InputSpec.parse(f"1,{int(weight.shape[1])}")]
        except (InputSpecError, IndexError):
            return []
    return []
