"""Reading ``.pt2`` archives (torch.export.save) without running anything from them.

``torch.export.load`` unpickles weight, constant and sample-input members with
``weights_only=False``, ``pickle.loads`` opaque constants, ``dlopen``s any
AOTInductor library in the archive (extracting members to disk, zip-slip
included), ``sympify``s (``eval``s) symbolic expressions and ``exec``s guard
code. This reader does the loading itself:

* the archive's directory is checked first (``zip_guard``: names, sizes,
  decompression bombs), and every member read is CRC-checked; nothing is
  ever extracted to disk;
* the program JSON is parsed with bounded depth and integer size, converted
  to torch's schema dataclasses (plain data) and vetted (``pt2_vetting``):
  operator targets, names pasted into generated code, symbolic expressions;
* weights and tensor constants come from raw records, each checked against
  its declared shape (an emptied record is refused, not read as zeros);
* AOTInductor / ExecuTorch binaries are never read;
* pickled members (tensor subclasses, legacy weight files, sample inputs)
  are read with ``torch.load(weights_only=True)``; those that need more, and
  opaque or TorchScript objects, need ``trust=True``.

Only then does torch's own ``ExportedProgramDeserializer`` build the program,
from the vetted dataclasses and the tensors read here: it is the sound way to
get an ``ExportedProgram`` identical to torch's, once its input is data whose
every code-bearing string was checked. With ``trust=True`` the vetting is
skipped (the user accepted that the file may run code), but binaries are still
never loaded and nothing is extracted.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .bounded import BoundedInputError, loads_json
from .errors import ModelLoadError, UntrustedPickleError, short_reason
from .limits import MAX_JSON_INT_DIGITS, MAX_PT2_JSON_BYTES, MAX_PT2_JSON_DEPTH
from .noise import captured_noise
from .pt2_vetting import FQN_RE, MalformedProgram, NeedsTrust, vet_program
from .torch_files import pickle_reason
from .zip_guard import open_checked_zip, verify_crcs

_NATIVE_DIRS = ("data/aotinductor/", "data/executorch/", "data/mtia", "xl_model_weights/")
_PATH_NAME_PREFIXES = ("weight_", "tensor_", "custom_obj_", "opaque_obj_")


@dataclass
class Pt2Contents:
    """A program read from a ``.pt2``, with what was skipped on the way."""

    program: Any  # torch.export.ExportedProgram
    notes: list[str] = field(default_factory=list)
    log: str = ""  # what torch printed while building it (for --debug / details)


def read_pt2(path: Path, *, trust: bool = False) -> Pt2Contents:
    """Load the program of a ``.pt2`` file; ModelLoadError (UntrustedPickleError when
    ``trust`` is needed) with a one-line message otherwise."""
    what = path.name
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"not a torch.export (.pt2) file or corrupt: {what} (not a zip archive)"
        )
    with open_checked_zip(path, what=what) as archive:
        reader = _Archive(archive, what, trust)
        serialized, notes = reader.program()
        state_dict = reader.payloads("weights")
        constants = reader.payloads("constants")
        example_inputs = reader.sample_inputs(notes)
    notes.extend(reader.notes)
    from torch._export.serde.serialize import ExportedProgramDeserializer

    with captured_noise() as noise:
        try:
            program = ExportedProgramDeserializer().deserialize(
                serialized, state_dict, constants, example_inputs
            )
        except RecursionError:
            raise ModelLoadError(f"{what}: its program is nested too deeply to build") from None
        except Exception as exc:
            raise ModelLoadError(
                f"{what} is not a valid torch.export program ({short_reason(exc, 160)})"
            ) from None
    return Pt2Contents(program, notes, noise.text())


class _Archive:
    """Member access for one archive: names relative to its root folder, bounded reads."""

    def __init__(self, archive: zipfile.ZipFile, what: str, trust: bool) -> None:
        self.archive = archive
        self.what = what
        self.trust = trust
        self.notes: list[str] = []
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if not infos:
            raise ModelLoadError(f"{what} is an empty archive, not a torch.export program")
        root = infos[0].filename.split("/", 1)[0]
        if not all(i.filename.startswith(root + "/") for i in infos):
            raise ModelLoadError(f"{what} is not a torch.export archive (no single root folder)")
        self.members = {i.filename[len(root) + 1 :]: i for i in infos}
        self.model = self._model_name()

    # ------------------------------------------------------------------ members
    def read(self, name: str, *, limit: int | None = None) -> bytes:
        info = self.members.get(name)
        if info is None:
            raise ModelLoadError(f"{self.what} lacks the archive member {name!r}")
        if limit is not None and info.file_size > limit:
            raise ModelLoadError(
                f"{self.what}: member {name!r} is {info.file_size:,} bytes (limit {limit:,})"
            )
        try:
            return self.archive.read(info)
        except zipfile.BadZipFile as exc:
            raise ModelLoadError(
                f"{self.what} is corrupt: member {name!r} fails its check ({exc})"
            ) from None

    def _model_name(self) -> str:
        fmt = self.members.get("archive_format")
        if fmt is None:
            if "serialized_exported_program.json" in self.members or "version" in self.members:
                raise ModelLoadError(
                    f"{self.what} uses the torch.export format of torch 2.7 or older, which "
                    "this reader does not support; re-export it with a current torch"
                )
            raise ModelLoadError(f"{self.what} is a zip archive but not a torch.export program")
        if self.read("archive_format", limit=64).strip() != b"pt2":
            raise ModelLoadError(f"{self.what} is not a torch.export (pt2) archive")
        version = (
            self.read("archive_version", limit=64).strip()
            if "archive_version" in self.members
            else b"0"
        )
        if version != b"0":
            raise ModelLoadError(
                f"{self.what} has pt2 archive version {version[:20].decode(errors='replace')!r}; "
                "this torch reads version 0"
            )
        models = sorted(
            n[len("models/") : -len(".json")]
            for n in self.members
            if n.startswith("models/") and n.endswith(".json")
        )
        native = [n for n in self.members if n.startswith(_NATIVE_DIRS)]
        if native:
            self.notes.append(
                f"{len(native)} compiled-code member(s) (AOTInductor/ExecuTorch) were not loaded; "
                "Arborist reads the exported program only"
            )
        if not models:
            if native:
                raise ModelLoadError(
                    f"{self.what} holds only compiled native code (AOTInductor), which Arborist "
                    "never loads and cannot prune; save the program with torch.export.save"
                )
            raise ModelLoadError(f"{self.what} holds no exported program (models/*.json)")
        if "model" in models:
            return "model"
        if len(models) > 1:
            raise ModelLoadError(
                f"{self.what} holds {len(models)} programs ({', '.join(models[:4])}) and none is "
                "named 'model'; Arborist opens one program per file"
            )
        return models[0]

    # ------------------------------------------------------------------ program
    def program(self) -> tuple[Any, list[str]]:
        from torch._export.serde import schema
        from torch._export.serde.serialize import _dict_to_dataclass

        raw = self.read(f"models/{self.model}.json", limit=MAX_PT2_JSON_BYTES)
        data = self._json(raw, "its program")
        try:
            serialized = _dict_to_dataclass(schema.ExportedProgram, data)
        except RecursionError:
            raise ModelLoadError(f"{self.what}: its program JSON is nested too deeply") from None
        except Exception as exc:
            raise ModelLoadError(
                f"{self.what}: its program JSON does not match torch's schema "
                f"({short_reason(exc, 120)})"
            ) from None
        if self.trust:
            return serialized, []
        try:
            return serialized, vet_program(serialized)
        except NeedsTrust as exc:
            raise self._untrusted(str(exc)) from None
        except MalformedProgram as exc:
            raise ModelLoadError(f"{self.what}: {exc}") from None
        except (AttributeError, TypeError) as exc:  # wrong JSON types inside the dataclasses
            raise ModelLoadError(
                f"{self.what}: its program JSON has wrong types ({short_reason(exc, 120)})"
            ) from None

    def _json(self, raw: bytes, what: str) -> Any:
        try:
            return loads_json(
                raw,
                max_depth=MAX_PT2_JSON_DEPTH,
                max_int_digits=MAX_JSON_INT_DIGITS,
                allow_non_finite=True,  # torch writes -Infinity for masked_fill and the like
            )
        except (BoundedInputError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise ModelLoadError(f"{self.what}: {what} is not valid JSON ({exc})") from None

    def _untrusted(self, reason: str) -> UntrustedPickleError:
        return UntrustedPickleError(
            f"{self.what} cannot be loaded as plain data: {reason}; loading it would run code "
            "from the file; pass trust=True (--trust) only if it comes from a trusted source"
        )

    # ----------------------------------------------------------------- payloads
    def payloads(self, kind: str) -> dict[str, Any]:
        """Weights (``kind="weights"``) or constants by state path."""
        from torch._export.serde import schema
        from torch._export.serde.serialize import _dict_to_dataclass

        legacy = f"data/{kind}/{self.model}.pt"
        if legacy in self.members:
            obj = self._unpickle(self.read(legacy), f"its legacy {kind} file")
            if not isinstance(obj, dict):
                raise ModelLoadError(f"{self.what}: its legacy {kind} file is not a dict")
            return obj
        config_name = f"data/{kind}/{self.model}_{kind}_config.json"
        if config_name not in self.members:
            if kind == "constants":
                return {}
            raise ModelLoadError(f"{self.what} lacks its weights table ({config_name})")
        try:
            config = _dict_to_dataclass(
                schema.PayloadConfig, self._json(self.read(config_name), f"its {kind} table")
            )
            entries = dict(config.config)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"{self.what}: its {kind} table is malformed ({short_reason(exc, 120)})"
            ) from None
        storages: dict[str, torch.Tensor] = {}
        out: dict[str, Any] = {}
        for fqn, meta in entries.items():
            if not isinstance(fqn, str) or not FQN_RE.fullmatch(fqn):
                raise ModelLoadError(
                    f"{self.what}: {kind} entry {str(fqn)[:60]!r} is not a state path"
                )
            path_name = meta.path_name
            if not isinstance(path_name, str) or not path_name.startswith(_PATH_NAME_PREFIXES):
                raise ModelLoadError(f"{self.what}: {kind} entry {fqn!r} has a bad record name")
            member = f"data/{kind}/{path_name}"
            if path_name.startswith(("custom_obj_", "opaque_obj_")):
                out[fqn] = self._object(member, fqn)
            elif meta.use_pickle:
                value = self._unpickle(self.read(member), f"{kind[:-1]} {fqn!r}")
                if not isinstance(value, torch.Tensor):
                    raise ModelLoadError(
                        f"{self.what}: pickled {kind[:-1]} {fqn!r} is not a tensor"
                    )
                out[fqn] = value
            else:
                out[fqn] = self._raw_tensor(member, fqn, meta, storages)
        return out

    def _raw_tensor(
        self, member: str, fqn: str, meta: Any, storages: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

        tm = meta.tensor_meta
        if tm is None:
            raise ModelLoadError(f"{self.what}: tensor {fqn!r} has no shape information")
        dtype = _SERIALIZE_TO_TORCH_DTYPE.get(tm.dtype)
        if dtype is None:
            raise ModelLoadError(f"{self.what}: tensor {fqn!r} has unknown dtype code {tm.dtype}")
        sizes = [_concrete_int(d, fqn, self.what) for d in tm.sizes]
        strides = [_concrete_int(d, fqn, self.what) for d in tm.strides]
        offset = _concrete_int(tm.storage_offset, fqn, self.what)
        if len(sizes) != len(strides) or min([*sizes, *strides, offset, 0]) < 0:
            raise ModelLoadError(f"{self.what}: tensor {fqn!r} has an invalid shape or layout")
        info = self.members.get(member)
        if info is None:
            raise ModelLoadError(f"{self.what} lacks the record {member!r} of tensor {fqn!r}")
        element = torch.empty((), dtype=dtype).element_size()
        numel = 1
        for s in sizes:
            numel *= s
        reach = sum((s - 1) * st for s, st in zip(sizes, strides, strict=True))
        needed = 0 if numel == 0 else offset + 1 + reach
        if needed * element > info.file_size:
            state = "is empty" if info.file_size == 0 else f"holds {info.file_size:,} bytes"
            raise ModelLoadError(
                f"{self.what}: record {member!r} {state} but tensor {fqn!r} of shape "
                f"{tuple(sizes)} needs {needed * element:,}; the file is truncated or damaged"
            )
        if info.file_size % element:
            raise ModelLoadError(
                f"{self.what}: record {member!r} is not a whole number of {dtype} elements"
            )
        flat = storages.get(member)
        if flat is None:
            data = bytearray(self.read(member))
            base = (
                torch.frombuffer(data, dtype=torch.uint8)
                if data
                else torch.empty(0, dtype=torch.uint8)
            )
            flat = base.view(dtype)
            storages[member] = flat
        tensor = torch.as_strided(flat, sizes, strides, offset)
        if meta.is_param:
            return torch.nn.Parameter(
                tensor,
                requires_grad=bool(tm.requires_grad)
                and (dtype.is_floating_point or dtype.is_complex),
            )
        return tensor

    def _unpickle(self, raw: bytes, what: str) -> Any:
        """A torch.save member: weights_only first; beyond that only with trust."""
        buffer = io.BytesIO(raw)
        if zipfile.is_zipfile(buffer):
            with open_checked_zip(buffer, what=f"{self.what} ({what})") as inner:
                verify_crcs(inner, what=f"{self.what} ({what})")
        with captured_noise():
            try:
                buffer.seek(0)
                return torch.load(buffer, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as exc:
                refused = exc
            except Exception as exc:
                raise ModelLoadError(
                    f"{self.what}: {what} is unreadable ({short_reason(exc, 120)})"
                ) from None
            if not self.trust:
                raise self._untrusted(
                    f"{what} is a pickle of Python objects ({pickle_reason(refused, 100)})"
                )
            buffer.seek(0)
            return torch.load(buffer, map_location="cpu", weights_only=False)

    def _object(self, member: str, fqn: str) -> Any:
        if not self.trust:
            raise self._untrusted(f"constant {fqn!r} is a pickled Python or TorchScript object")
        raw = self.read(member)
        if member.rsplit("/", 1)[1].startswith("custom_obj_"):
            return torch._C._pickle_load_obj(raw)
        return pickle.loads(raw)  # noqa: S301 - trusted by the user

    def sample_inputs(self, notes: list[str]) -> Any:
        name = f"data/sample_inputs/{self.model}.pt"
        if name not in self.members or self.members[name].file_size == 0:
            return None
        try:
            value = self._unpickle(self.read(name), "its sample inputs")
        except UntrustedPickleError:
            notes.append("the sample inputs saved with the program are pickled objects; not loaded")
            return None
        if not (isinstance(value, tuple) and len(value) == 2):
            notes.append("the sample inputs saved with the program are not (args, kwargs); ignored")
            return None
        return value


def _concrete_int(dim: Any, fqn: str, what: str) -> int:
    if getattr(dim, "type", None) != "as_int" or not isinstance(dim.value, int):
        raise ModelLoadError(f"{what}: tensor {fqn!r} has a symbolic or invalid stored size")
    if abs(dim.value) > 2**48:
        raise ModelLoadError(f"{what}: tensor {fqn!r} declares a size of {dim.value:.3g}")
    return dim.value
