"""``load_model``: one entry point from any model source to a ready ``nn.Module``.

Sources: zoo specs (``torchvision:resnet18``, ``timm:NAME``, ``arborist:demo``),
``.pt``/``.pth`` files (state dicts, Arborist safe checkpoints, and, only when
trusted, pickled modules), ``.pt2`` exported programs and ``.onnx`` graphs.
Source files are only ever read.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .arch_match import checkpoint_hints, closest_message, rank_architectures
from .checkpoint import is_safe_checkpoint, parse_safe_checkpoint
from .errors import ArchRequiredError, InputSpecError, ModelLoadError, short_reason
from .guess import guess_example_inputs, guess_input_spec
from .input_spec import InputSpec
from .onnx_import import import_onnx
from .pt2_lift import Pt2LiftWarning, is_lifted, lift_with_report
from .pt2_reader import read_pt2
from .torch_files import (
    check_readable_file,
    describe_object,
    find_state_dict,
    load_state_dict_strict,
    read_torch_file,
)
from .torchscript import is_torchscript, load_torchscript
from .zoo import build_zoo_model, is_zoo_spec

__all__ = ["LoadedModel", "load_model", "guess_example_inputs", "guess_input_spec"]

TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")


class Pt2ReadWarning(UserWarning):
    """Something in a .pt2 file was skipped on purpose (compiled code, pickled inputs)."""


@dataclass
class LoadedModel:
    """A model ready for pruning: eval mode, with inputs for the tracing pass.

    ``example_inputs`` is a tensor, tuple (positional args) or dict (keyword
    args), or None when they could not be guessed (ask the user for a spec).
    ``arch`` is the zoo spec the model was built from, when known; it is what
    a safe checkpoint export needs.
    """

    model: nn.Module
    example_inputs: Any
    input_spec: InputSpec | None
    source_kind: str
    description: str
    source: str = ""
    arch: str | None = None
    pruning_history: list[Any] = field(default_factory=list)


def load_model(
    source: str | Path,
    *,
    trust: bool = False,
    arch: str | None = None,
    input_spec: str | None = None,
    code: str | Path | None = None,
) -> LoadedModel:
    """Load ``source``; ``input_spec`` overrides the default example inputs.

    ``code`` (a .py file or a folder) is where the classes of a pickled model are defined;
    it is imported only for a trusted file that needs it (see ``engine.io.user_code``).

    Raises ModelLoadError (UntrustedPickleError for pickles needing
    ``trust=True``) or InputSpecError, each with a one-line message.
    """
    spec_override = InputSpec.parse(input_spec) if input_spec is not None else None
    text = str(source)
    path = Path(source)
    try:
        if isinstance(source, str) and is_zoo_spec(text) and not path.exists():
            loaded = _load_zoo(text)
        else:
            loaded = _load_file(
                path, trust=trust, arch=arch, spec_override=spec_override, code=code
            )
    except OSError as exc:  # name too long, permission denied, I/O error...
        shown = text if len(text) <= 120 else text[:117] + "..."
        raise ModelLoadError(f"cannot read {shown}: {exc.strerror or exc}") from None
    except MemoryError:
        raise ModelLoadError(f"not enough memory to load {path.name[:120]}") from None
    if spec_override is not None:
        loaded.input_spec = spec_override
        loaded.example_inputs = spec_override.make()
    loaded.source = text
    _set_eval(loaded.model)
    return loaded


def _set_eval(model: nn.Module) -> None:
    try:
        model.eval()
    except NotImplementedError:  # torch.export modules keep the mode they were exported in
        pass


def _load_zoo(spec: str) -> LoadedModel:
    zoo = build_zoo_model(spec)
    source_kind = spec.partition(":")[0].lower()
    return LoadedModel(
        zoo.model, zoo.input_spec.make(), zoo.input_spec, source_kind, zoo.description, arch=spec
    )


def _load_file(
    path: Path,
    *,
    trust: bool,
    arch: str | None,
    spec_override: InputSpec | None,
    code: str | Path | None = None,
) -> LoadedModel:
    suffix = path.suffix.lower()
    if suffix == ".pt2":
        return _load_pt2(path, trust=trust, spec_override=spec_override)
    if suffix == ".safetensors":
        return _load_safetensors(path, arch=arch)
    if suffix == ".onnx":
        check_readable_file(path)
        onnx_model = import_onnx(path, spec_override=spec_override)
        spec = onnx_model.spec
        return LoadedModel(
            onnx_model.module, spec.make(), spec, "onnx", onnx_model.describe(path.name)
        )
    check_readable_file(path)
    if is_torchscript(path):
        script = load_torchscript(path, trust=trust, spec_override=spec_override)
        spec = script.spec
        return LoadedModel(script.module, spec.make(), spec, "torchscript", script.description)
    return _load_torch_file(path, trust=trust, arch=arch, spec_override=spec_override, code=code)


def _load_torch_file(
    path: Path,
    *,
    trust: bool,
    arch: str | None,
    spec_override: InputSpec | None,
    code: str | Path | None = None,
) -> LoadedModel:
    obj = read_torch_file(path, trust=trust, code=code)
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), nn.Module):
        obj = obj["model"]  # training checkpoints that pickle the module itself
    if isinstance(obj, nn.Module):
        spec = spec_override or guess_input_spec(obj)
        note = "" if spec is not None else "; example inputs unknown, give an input spec"
        return LoadedModel(
            obj,
            spec.make() if spec else None,
            spec,
            "pickle",
            f"{path.name} (pickled {type(obj).__name__}, loaded with trust{note})",
        )
    if is_safe_checkpoint(obj):
        return _load_safe_checkpoint(path, obj, spec_override)
    state_dict = find_state_dict(obj)
    if state_dict is not None:
        if not arch:
            raise _arch_required(path, state_dict, checkpoint_hints(obj))
        model, spec = _build_arch(arch)
        load_state_dict_strict(model, state_dict, what=path.name, arch=arch)
        return LoadedModel(
            model,
            spec.make(),
            spec,
            "state_dict",
            f"{path.name} (state dict loaded into {arch})",
            arch=arch,
        )
    raise ModelLoadError(f"{path.name} holds {describe_object(obj)}, not a model or a state dict")


def _load_safetensors(path: Path, *, arch: str | None) -> LoadedModel:
    """A ``.safetensors`` file: raw tensors behind a JSON header, no pickle, so no trust is
    ever needed; like any state dict it needs ``arch`` to say which model it fills."""
    check_readable_file(path)
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise ModelLoadError(
            "reading .safetensors files needs the safetensors package; pip install safetensors"
        ) from None
    try:
        state_dict = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"not a safetensors file or corrupt: {path.name} ({short_reason(exc, 120)})"
        ) from None
    if not state_dict:
        raise ModelLoadError(f"{path.name} holds no tensors")
    if not arch:
        raise _arch_required(path, state_dict, _safetensors_hints(path))
    model, spec = _build_arch(arch)
    load_state_dict_strict(model, state_dict, what=path.name, arch=arch)
    return LoadedModel(
        model,
        spec.make(),
        spec,
        "safetensors",
        f"{path.name} (safetensors loaded into {arch})",
        arch=arch,
    )


def _arch_required(
    path: Path, state_dict: Mapping[str, Any], hints: list[str]
) -> ArchRequiredError:
    """The missing-arch error, naming the zoo entries whose tensors fit the file best."""
    candidates = rank_architectures(state_dict, path=path, hints=hints)
    return ArchRequiredError(
        f"{path.name} holds only weights (a state dict of {len(state_dict)} tensors); "
        f"pass arch= to say which model they belong to; {closest_message(candidates)}",
        candidates,
    )


def _safetensors_hints(path: Path) -> list[str]:
    """Architecture names in a safetensors header's metadata (timm writes none; others do)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception:
        return []
    return checkpoint_hints(meta)


def _build_arch(arch: str) -> tuple[nn.Module, InputSpec]:
    if not is_zoo_spec(arch):
        raise ModelLoadError(
            f"arch {arch!r} is not a model spec; use e.g. 'torchvision:resnet18', "
            "'timm:NAME', 'hf:FOLDER' or 'arborist:demo'"
        )
    zoo = build_zoo_model(arch)
    return zoo.model, zoo.input_spec


def _load_safe_checkpoint(
    path: Path, obj: Mapping[str, Any], spec_override: InputSpec | None
) -> LoadedModel:
    ckpt = parse_safe_checkpoint(obj, what=path.name)
    model, spec = _build_arch(ckpt.arch)
    if ckpt.example_input_spec:
        try:
            spec = InputSpec.parse(ckpt.example_input_spec)
        except InputSpecError as exc:
            raise ModelLoadError(f"{path.name} has a bad example_input_spec: {exc}") from None
    spec = spec_override or spec
    if ckpt.pruning_history:
        model = _rebuild_pruned(model, ckpt.pruning_history, spec.make())
    load_state_dict_strict(
        model, ckpt.state_dict, what=path.name, arch=f"{ckpt.arch} after its pruning history"
    )
    n = len(ckpt.pruning_history)
    return LoadedModel(
        model,
        spec.make(),
        spec,
        "arborist_checkpoint",
        f"{path.name} (Arborist checkpoint: {ckpt.arch}, {n} pruning steps replayed)",
        arch=ckpt.arch,
        pruning_history=list(ckpt.pruning_history),
    )


def _rebuild_pruned(
    arch_model: nn.Module, history: Sequence[Any], example_inputs: Any
) -> nn.Module:
    """Replay ``history`` on a fresh ``arch_model`` so its shapes match the pruned weights."""
    try:
        from engine import DependencyGraph  # lazy: the graph engine is owned elsewhere
    except ImportError as exc:
        raise ModelLoadError(
            f"replaying a pruning history needs engine.DependencyGraph, unavailable: {exc}"
        ) from None
    if not hasattr(DependencyGraph, "load_pruning_history"):
        raise ModelLoadError(
            "replaying a pruning history needs DependencyGraph.load_pruning_history, "
            "which this engine version lacks"
        )
    try:
        dg = DependencyGraph()
        built = dg.build_dependency(arch_model, example_inputs=example_inputs)
        (built if built is not None else dg).load_pruning_history(list(history))
    except Exception as exc:
        raise ModelLoadError(f"replaying the pruning history failed: {short_reason(exc)}") from None
    return arch_model


def _load_pt2(path: Path, *, trust: bool, spec_override: InputSpec | None) -> LoadedModel:
    """Through our own reader (engine.io.pt2_reader), never torch.export.load: see there."""
    check_readable_file(path)
    contents = read_pt2(path, trust=trust)
    for note in contents.notes:
        warnings.warn(f"{path.name}: {note}", Pt2ReadWarning, stacklevel=3)
    program = contents.program
    try:
        spec = spec_override or _pt2_input_spec(program)
    except InputSpecError as exc:
        raise ModelLoadError(
            f"{path.name}: its input metadata is unusable ({exc}); pass an input spec "
            "(--input-shape)"
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's unlift chatter, not ours
            warnings.simplefilter("default", Pt2LiftWarning)
            lift = lift_with_report(program)  # real layers, so the program can be pruned
    except Exception as exc:
        raise ModelLoadError(
            f"{path.name}: torch cannot build a module from its program ({short_reason(exc)})"
        ) from None
    inputs = _pt2_example_inputs(program)
    if inputs is None and spec is not None:
        inputs = spec.make()
    if not is_lifted(lift.module):
        _keep_exported_mode(lift.module)
    note = f", {len(lift.lifted)} layers lifted" if lift.lifted else ""
    description = f"{path.name} (torch.export program{note})"
    return LoadedModel(lift.module, inputs, spec, "pt2", description)


def _keep_exported_mode(module: nn.Module) -> None:
    """A flat torch.export module raises on .eval()/.train() and keeps its exported mode
    anyway; counting, tracing and pruning call .eval(), so the switch is a no-op here."""
    module.train = types.MethodType(lambda self, mode=True: self, module)
    module.eval = types.MethodType(lambda self: self, module)


def _pt2_example_inputs(program: Any) -> Any:
    """The concrete example inputs saved with the program, in call_with form."""
    saved = getattr(program, "example_inputs", None)
    if not saved:
        return None
    args, kwargs = saved
    if args and all(isinstance(a, torch.Tensor) for a in args):
        return args[0] if len(args) == 1 else tuple(args)
    if not args and kwargs and all(isinstance(v, torch.Tensor) for v in kwargs.values()):
        return dict(kwargs)
    return None


def _pt2_input_spec(program: Any) -> InputSpec | None:
    """Spec from example inputs, else from the user-input placeholders' fake tensors."""
    inputs = _pt2_example_inputs(program)
    if inputs is not None:
        try:
            return InputSpec.from_inputs(inputs)
        except InputSpecError:
            pass
    try:
        user_inputs = set(program.graph_signature.user_inputs)
        vals = [
            n.meta.get("val")
            for n in program.graph.nodes
            if n.op == "placeholder" and n.name in user_inputs
        ]
        if not vals or not all(isinstance(v, torch.Tensor) for v in vals):
            return None
        from .input_spec import TensorSpec

        specs = [TensorSpec(tuple(_concrete(d) for d in v.shape), v.dtype) for v in vals]
    except AttributeError:
        return None
    return InputSpec(tuple(specs))  # InputSpecError (e.g. over the size limit) for the caller


def _concrete(dim: Any) -> int:
    """Concrete size of a possibly symbolic dim (symbolic -> its hint, else 2)."""
    try:
        return int(dim)
    except Exception:
        node = getattr(dim, "node", None)
        hint = getattr(node, "hint", None)
        return int(hint) if isinstance(hint, int) and hint > 0 else 2
