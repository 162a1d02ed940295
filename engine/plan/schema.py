"""The serializable pruning plan: everything needed to reproduce a pruning run.

A plan names layers by module path (never object identity) so it can be saved as
JSON, edited by hand or by the GUI, and replayed on a freshly loaded model by the
CLI. Structural checks that need no model live here (`structural_problems`); the
checks against a concrete model live in `validation.py`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PLAN_VERSION = 1


class PlanError(ValueError):
    """A plan that cannot be used; `.problems` lists every problem found, each precise."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            msg = f"invalid pruning plan: {self.problems[0]}"
        else:
            msg = "invalid pruning plan:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(msg)


@dataclass
class UserScope:
    """Layers sharing ONE ranking and ONE ratio (Torch-Pruning's tuple key)."""

    layers: list[str]
    ratio: float
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"layers": list(self.layers), "ratio": self.ratio, "name": self.name}


# field name -> (accepted JSON types, description used in type errors)
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "version": ((int,), "an integer"),
    "source": ((str, type(None)), "a string or null"),
    "input_spec": ((str, type(None)), "a string or null"),
    "importance": ((str,), "a string"),
    "importance_options": ((dict,), "an object"),
    "pruning_ratio": ((int, float), "a number"),
    "max_pruning_ratio": ((int, float), "a number"),
    "global_pruning": ((bool,), "true or false"),
    "isomorphic": ((bool,), "true or false"),
    "layer_ratios": ((dict,), "an object mapping layer names to numbers"),
    "group_ratios": ((dict,), "an object mapping group ids to numbers"),
    "scopes": ((list,), "a list of scopes"),
    "ignored_layers": ((list,), "a list of layer names"),
    "round_to": ((int, type(None)), "an integer or null"),
    "iterative_steps": ((int,), "an integer"),
    "prune_head_dims": ((bool,), "true or false"),
    "prune_num_heads": ((bool,), "true or false"),
    "head_pruning_ratio": ((int, float), "a number"),
    "head_pruning_ratio_dict": ((dict,), "an object mapping layer names to numbers"),
    "drop_blocks": ((list,), "a list of block names"),
}


def _is(value: Any, types: tuple[type, ...]) -> bool:
    # bool is an int subclass: true must not pass as a number, nor 1 as a bool.
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


@dataclass
class PruningPlan:
    """What to prune and how; module paths only, so it survives JSON and reloading.

    Ratio precedence per group (see build.py): `scopes` > `group_ratios` (group id = root
    module path) > `layer_ratios` (the group(s) whose out-channels the layer, or any layer
    inside a container path, owns; the more specific path wins) > `pruning_ratio`. In
    global mode each `layer_ratios`/`group_ratios` entry is one pooled ranking of its own.
    """

    version: int = PLAN_VERSION
    source: str | None = None
    input_spec: str | None = None
    importance: str = "magnitude"
    importance_options: dict[str, Any] = field(default_factory=dict)
    pruning_ratio: float = 0.5
    max_pruning_ratio: float = 1.0
    global_pruning: bool = False
    isomorphic: bool = False
    layer_ratios: dict[str, float] = field(default_factory=dict)
    group_ratios: dict[str, float] = field(default_factory=dict)
    scopes: list[UserScope] = field(default_factory=list)
    ignored_layers: list[str] = field(default_factory=list)
    round_to: int | None = None
    iterative_steps: int = 1
    prune_head_dims: bool = True
    prune_num_heads: bool = False
    head_pruning_ratio: float = 0.0
    head_pruning_ratio_dict: dict[str, float] = field(default_factory=dict)
    # whole residual blocks removed after width pruning (engine.depth; names as before it)
    drop_blocks: list[str] = field(default_factory=list)

    # ----------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "scopes":
                v = [s.to_dict() for s in v]
            elif isinstance(v, dict):
                v = dict(v)
            elif isinstance(v, list):
                v = list(v)
            d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, d: Any) -> PruningPlan:
        """Build a plan from parsed JSON; PlanError lists every unknown key and wrong type."""
        if not isinstance(d, dict):
            raise PlanError(f"a plan must be a JSON object, got {type(d).__name__}")
        problems: list[str] = []
        known = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in known:
                problems.append(
                    f"{_field_name(key)}: unknown field (known fields: {', '.join(sorted(known))})"
                )
        version = d.get("version", PLAN_VERSION)
        if _is(version, (int,)) and version != PLAN_VERSION:
            problems.append(f"version: {version} is not supported (this Arborist reads version "
                            f"{PLAN_VERSION})")
        kwargs: dict[str, Any] = {}
        for key, (types, what) in _FIELD_TYPES.items():
            if key not in d:
                continue
            value = d[key]
            if not _is(value, types):
                problems.append(f"{key}: must be {what}, got {json.dumps(value)[:60]}")
                continue
            kwargs[key] = value
        for key in ("layer_ratios", "group_ratios", "head_pruning_ratio_dict"):
            for name, ratio in kwargs.get(key, {}).items():
                if not _is(ratio, (int, float)):
                    problems.append(f"{key}[{name!r}]: ratio must be a number, "
                                    f"got {json.dumps(ratio)[:60]}")
        for key, kind in (("ignored_layers", "layer"), ("drop_blocks", "block")):
            for i, name in enumerate(kwargs.get(key, [])):
                if not isinstance(name, str):
                    problems.append(f"{key}[{i}]: must be a {kind} name (string), "
                                    f"got {json.dumps(name)[:60]}")
        if "scopes" in kwargs:
            scopes: list[UserScope] = []
            for i, s in enumerate(kwargs["scopes"]):
                scope = _scope_from_dict(s, f"scopes[{i}]", problems)
                if scope is not None:
                    scopes.append(scope)
            kwargs["scopes"] = scopes
        if problems:
            raise PlanError(problems)
        for key in ("pruning_ratio", "max_pruning_ratio", "head_pruning_ratio"):
            if key in kwargs:
                kwargs[key] = float(kwargs[key])
        for key in ("layer_ratios", "group_ratios", "head_pruning_ratio_dict"):
            if key in kwargs:
                kwargs[key] = {k: float(v) for k, v in kwargs[key].items()}
        for key in ("importance_options", "ignored_layers", "drop_blocks"):
            if key in kwargs:
                kwargs[key] = type(kwargs[key])(kwargs[key])
        return cls(**kwargs)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, s: str | bytes) -> PruningPlan:
        """Parse plan JSON with bounded nesting and integers (no NaN/Infinity: not JSON)."""
        from ..io.bounded import BoundedInputError, loads_json
        from ..io.limits import MAX_JSON_INT_DIGITS, MAX_PLAN_DEPTH

        try:
            d = loads_json(s, max_depth=MAX_PLAN_DEPTH, max_int_digits=MAX_JSON_INT_DIGITS)
        except json.JSONDecodeError as e:
            raise PlanError(f"not valid JSON: {e}") from None
        except UnicodeDecodeError:
            raise PlanError("not valid JSON: the file is not UTF-8 text") from None
        except BoundedInputError as e:
            raise PlanError(f"not a usable plan: {e}") from None
        return cls.from_dict(d)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the plan as JSON atomically (the old file survives a crash mid-write)."""
        from ..io.atomic import atomic_write

        text = self.to_json() + "\n"
        return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PruningPlan:
        """Read a plan file: regular files only, at most MAX_PLAN_BYTES (a FIFO or /dev/zero
        is refused at once, never read)."""
        from ..io.bounded import BoundedInputError, read_regular_file, shorten
        from ..io.limits import MAX_PLAN_BYTES

        p = Path(path)
        shown = shorten(str(p))
        try:
            text = read_regular_file(p, max_bytes=MAX_PLAN_BYTES, what="plan file")
        except FileNotFoundError:
            raise PlanError(f"plan file {shown} does not exist") from None
        except BoundedInputError as e:
            raise PlanError(str(e)) from None
        except OSError as e:
            raise PlanError(f"cannot read plan file {shown}: {e.strerror or e}") from None
        try:
            return cls.from_json(text)
        except PlanError as e:
            raise PlanError([f"{shown}: {q}" for q in e.problems]) from None

    def replace(self, **changes: Any) -> PruningPlan:
        """A copy with `changes` applied (containers copied, so edits never leak back)."""
        return dataclasses.replace(copy.deepcopy(self), **changes)

    def validate(self, model: Any = None) -> None:
        """Raise PlanError listing every problem; with a model, also check names against it."""
        from .validation import validate_plan

        validate_plan(self, model)


def _field_name(key: Any) -> str:
    """A key as it can appear in a one-line problem (a hostile key may hold newlines)."""
    text = str(key)
    return text if text.isprintable() else repr(text)


def _scope_from_dict(s: Any, where: str, problems: list[str]) -> UserScope | None:
    if isinstance(s, UserScope):
        return s
    if not isinstance(s, dict):
        problems.append(f"{where}: must be an object with 'layers' and 'ratio'")
        return None
    ok = True
    for key in s:
        if key not in ("layers", "ratio", "name"):
            name = _field_name(key)
            problems.append(f"{where}.{name}: unknown field (known: layers, ratio, name)")
            ok = False
    layers = s.get("layers")
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        problems.append(f"{where}.layers: must be a list of layer names")
        ok = False
    ratio = s.get("ratio")
    if not _is(ratio, (int, float)):
        problems.append(f"{where}.ratio: must be a number, got {json.dumps(ratio)[:60]}")
        ok = False
    name = s.get("name", "")
    if not isinstance(name, str):
        problems.append(f"{where}.name: must be a string")
        ok = False
    if not ok:
        return None
    return UserScope(layers=list(layers), ratio=float(ratio), name=name)
