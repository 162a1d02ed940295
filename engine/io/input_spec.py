"""Example-input specifications: parse ``"1,3,224,224;1,10:int64"`` and make tensors.

Pruning needs one forward pass to trace the dependency graph, so every loaded
model carries example inputs.  A textual spec lets users (GUI field, CLI flag,
checkpoint metadata) describe them without writing Python.

Grammar (whitespace ignored)::

    spec   := tensor (";" tensor)*
    tensor := [name "="] dims [":" dtype]
    dims   := int (("," | "x") int)*

All tensors are positional or all are named (keyword arguments); mixing is
rejected because the call convention would be ambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import InputSpecError
from .limits import MAX_INPUT_DIM, MAX_INPUT_ELEMENTS

# Canonical dtype name -> torch dtype.  Aliases map onto canonical names.
_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_ALIASES: dict[str, str] = {
    "float": "float32",
    "f32": "float32",
    "double": "float64",
    "f64": "float64",
    "half": "float16",
    "f16": "float16",
    "bf16": "bfloat16",
    "long": "int64",
    "i64": "int64",
    "int": "int32",
    "i32": "int32",
    "i8": "int8",
    "u8": "uint8",
}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DIM_RE = re.compile(r"^[0-9]+$")

#: Exclusive upper bound of random integer inputs.  Small so that token ids,
#: class indices and the like are valid for any embedding / vocabulary.
INT_HIGH = 2


def dtype_name(dtype: torch.dtype) -> str:
    """Canonical spec name of ``dtype`` (raises InputSpecError if unsupported)."""
    for name, dt in _DTYPES.items():
        if dt == dtype:
            return name
    raise InputSpecError(
        f"dtype {dtype} is not supported in input specs; supported: {', '.join(_DTYPES)}"
    )


def parse_dtype(text: str) -> torch.dtype:
    """Parse a dtype name such as ``int64`` or ``long``."""
    key = text.strip().lower()
    key = key.removeprefix("torch.")
    key = _ALIASES.get(key, key)
    if key not in _DTYPES:
        raise InputSpecError(f"unknown dtype {text.strip()!r}; use one of: {', '.join(_DTYPES)}")
    return _DTYPES[key]


@dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype of one example input; ``name`` set for keyword inputs."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    name: str | None = None

    def to_string(self) -> str:
        text = ",".join(str(d) for d in self.shape)
        if self.dtype != torch.float32:
            text += f":{dtype_name(self.dtype)}"
        if self.name is not None:
            text = f"{self.name}={text}"
        return text

    def make(self, generator: torch.Generator, device: str | torch.device = "cpu") -> torch.Tensor:
        """Random tensor: N(0,1) for floats, ``randint(0, INT_HIGH)`` for ints, 0/1 for bool."""
        if self.dtype.is_floating_point:
            t = torch.randn(self.shape, generator=generator, dtype=torch.float32).to(self.dtype)
        elif self.dtype == torch.bool:
            t = torch.randint(0, 2, self.shape, generator=generator).bool()
        else:
            t = torch.randint(0, INT_HIGH, self.shape, generator=generator, dtype=torch.int64).to(
                self.dtype
            )
        return t.to(device)


#: What ``InputSpec.make`` returns and ``call_with`` accepts.
ExampleInputs = torch.Tensor | tuple[torch.Tensor, ...] | dict[str, torch.Tensor]


@dataclass(frozen=True)
class InputSpec:
    """Ordered list of tensor specs describing a model's forward arguments."""

    tensors: tuple[TensorSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.tensors:
            raise InputSpecError("input spec is empty; expected e.g. '1,3,224,224'")
        named = [t.name is not None for t in self.tensors]
        if any(named) and not all(named):
            raise InputSpecError(
                "input spec mixes named and unnamed inputs; name all of them (a=1,3;b=1,10) or none"
            )
        names = [t.name for t in self.tensors if t.name is not None]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputSpecError(f"input spec names {', '.join(dupes)} more than once")
        _check_size(self.tensors)

    @property
    def is_named(self) -> bool:
        return self.tensors[0].name is not None

    @classmethod
    def parse(cls, text: str) -> InputSpec:
        """Parse a spec string; raises InputSpecError naming the bad part."""
        if not isinstance(text, str):
            raise InputSpecError(f"input spec must be a string, got {type(text).__name__}")
        parts = [p.strip() for p in text.split(";")]
        if parts and parts[-1] == "" and len(parts) > 1:
            parts = parts[:-1]  # tolerate a trailing ';'
        if not text.strip():
            raise InputSpecError("input spec is empty; expected e.g. '1,3,224,224'")
        return cls(tuple(_parse_tensor(p, i) for i, p in enumerate(parts)))

    @classmethod
    def from_inputs(cls, inputs: Any) -> InputSpec:
        """Describe existing example inputs (tensor, tuple/list of tensors, or dict)."""
        if isinstance(inputs, torch.Tensor):
            return cls((TensorSpec(tuple(inputs.shape), inputs.dtype),))
        if isinstance(inputs, Mapping):
            specs = []
            for k, v in inputs.items():
                _require_tensor(v, repr(k))
                specs.append(TensorSpec(tuple(v.shape), v.dtype, str(k)))
            return cls(tuple(specs))
        if isinstance(inputs, Sequence) and not isinstance(inputs, str):
            specs = []
            for i, v in enumerate(inputs):
                _require_tensor(v, f"#{i}")
                specs.append(TensorSpec(tuple(v.shape), v.dtype))
            return cls(tuple(specs))
        raise InputSpecError(f"cannot describe example inputs of type {type(inputs).__name__}")

    def to_string(self) -> str:
        return ";".join(t.to_string() for t in self.tensors)

    def __str__(self) -> str:
        return self.to_string()

    def make(self, device: str | torch.device = "cpu", seed: int = 0) -> Any:
        """Deterministic example inputs: a tensor (one input), a tuple, or a dict (named)."""
        gen = torch.Generator().manual_seed(seed)
        made = [t.make(gen, device) for t in self.tensors]
        if self.is_named:
            return {t.name: v for t, v in zip(self.tensors, made, strict=True)}
        if len(made) == 1:
            return made[0]
        return tuple(made)


def _check_size(tensors: tuple[TensorSpec, ...]) -> None:
    """Refuse specs whose tensors would not fit the limits, before anything is allocated."""
    total, largest = 0, (0, 0, 0)
    for i, t in enumerate(tensors):
        numel = 1
        for j, d in enumerate(t.shape):
            if not isinstance(d, int) or d < 0:
                raise InputSpecError(f"input #{i + 1} dimension {j + 1} is {d!r}, not a size")
            if d > MAX_INPUT_DIM:
                raise InputSpecError(
                    f"input #{i + 1} dimension {j + 1} is {d:,}, over the limit of "
                    f"{MAX_INPUT_DIM:,} per dimension"
                )
            numel *= d
            if d > largest[2]:
                largest = (i + 1, j + 1, d)
        total += numel
    if total > MAX_INPUT_ELEMENTS:
        i, j, d = largest
        raise InputSpecError(
            f"example inputs of {total:,} elements are over the limit of {MAX_INPUT_ELEMENTS:,} "
            f"(largest: input #{i} dimension {j} = {d:,}); give a smaller shape"
        )


def _require_tensor(value: Any, where: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise InputSpecError(f"example input {where} is a {type(value).__name__}, not a tensor")


def _parse_tensor(text: str, index: int) -> TensorSpec:
    where = f"input #{index + 1} ({text[:60]!r})"
    if not text:
        raise InputSpecError(f"input #{index + 1} is empty (stray ';'?)")
    name: str | None = None
    if "=" in text:
        name, _, text = (s.strip() for s in text.partition("="))
        if not _NAME_RE.match(name):
            raise InputSpecError(f"{where}: {name!r} is not a valid argument name")
    dtype = torch.float32
    if ":" in text:
        text, _, dt = (s.strip() for s in text.partition(":"))
        try:
            dtype = parse_dtype(dt)
        except InputSpecError as exc:
            raise InputSpecError(f"{where}: {exc}") from None
    dims = [d.strip() for d in re.split(r"[,xX]", text)]
    if dims == [""]:
        raise InputSpecError(f"{where}: no dimensions given; expected e.g. 1,3,224,224")
    shape = []
    for d in dims:
        if not _DIM_RE.match(d):
            raise InputSpecError(f"{where}: dimension {d[:20]!r} is not a positive integer")
        if len(d.lstrip("0")) > len(str(MAX_INPUT_DIM)):
            raise InputSpecError(
                f"{where}: dimension {len(d)}-digit {d[:12]}... is over the limit of "
                f"{MAX_INPUT_DIM:,} per dimension"
            )
        if int(d) == 0:
            raise InputSpecError(f"{where}: dimension 0 is not allowed")
        shape.append(int(d))
    return TensorSpec(tuple(shape), dtype, name)


def call_with(model: torch.nn.Module, inputs: Any) -> Any:
    """Run ``model`` on example inputs using Torch-Pruning's convention.

    dict -> ``model(**inputs)``, tuple/list -> ``model(*inputs)``, else ``model(inputs)``.
    """
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)
