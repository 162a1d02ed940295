"""The one place the GUI calls the engine: load a model, trace it, summarize the graph.

Everything here runs on a worker thread and returns plain data (`Document`).
The engine is being written in parallel, so imports are lazy and defensive:
a missing piece becomes a clear `EngineUnavailable` message, never a crash.
Cancellation is cooperative: `cancel()` is polled between stages.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.document import DEMO_SOURCE, Document
from engine.graph.summary import GraphSummary

Progress = Callable[[float, str], None]
CancelFlag = Callable[[], bool]


class LoadCancelled(Exception):
    """The user cancelled; not an error."""


class ModelLoadFailed(Exception):
    """The source could not be loaded or traced; the message is shown to the user."""


class EngineUnavailable(ModelLoadFailed):
    """A needed engine function is not importable (yet)."""


class TrustRequired(ModelLoadFailed):
    """Loading would execute code stored in the file; ask the user first."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source


class InputShapeRequired(ModelLoadFailed):
    """No example input could be inferred (or the guess did not run); ask for a shape."""

    def __init__(self, source: str, message: str, suggestion: str = "") -> None:
        super().__init__(message)
        self.source = source
        self.suggestion = suggestion


@dataclass
class LoadedModel:
    model: Any  # nn.Module
    example_inputs: Any  # tensor / tuple / dict, or None if unknown
    description: str = ""


def is_zoo_spec(source: str) -> bool:
    prefix, sep, name = source.partition(":")
    return bool(sep) and prefix.lower() in ("arborist", "torchvision", "timm") and bool(name)


def display_name(source: str) -> str:
    if source == DEMO_SOURCE:
        return "Demo: DigitsNet"
    if is_zoo_spec(source):
        return source.partition(":")[2]
    return os.path.basename(source) or source


def _optional(module: str, attr: str) -> Any | None:
    """engine.<module>.<attr> or None when that part of the engine is not there yet."""
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


# ----------------------------------------------------------------------------- input specs


def parse_input_spec(text: str) -> Any:
    """Example inputs for a spec like "1,3,224,224" (or "a=1,8;b=1,8:int64" via the engine)."""
    parse = _optional("engine.io.input_spec", "InputSpec")
    if parse is not None:
        try:
            return parse.parse(text).make()
        except Exception as exc:  # InputSpecError
            raise ValueError(str(exc)) from None
    import torch

    try:
        dims = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"not a shape: {text!r}; expected e.g. 1,3,224,224") from None
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"not a shape: {text!r}; expected positive sizes like 1,3,224,224")
    return torch.randn(*dims)


def describe_inputs(inputs: Any) -> str:
    spec = _optional("engine.io.input_spec", "InputSpec")
    if spec is not None:
        try:
            return spec.from_inputs(inputs).to_string()
        except Exception:
            pass
    shape = getattr(inputs, "shape", None)
    if shape is not None:
        return ",".join(str(d) for d in shape)
    if isinstance(inputs, (tuple, list)):
        return ";".join(describe_inputs(t) for t in inputs)
    return type(inputs).__name__


# ----------------------------------------------------------------------------- loading


def _unpack(result: Any) -> LoadedModel:
    """Accept the shapes a loader may return: module, (module, inputs), or an object."""
    import torch.nn as nn

    if isinstance(result, nn.Module):
        return LoadedModel(result, None, type(result).__name__)
    if isinstance(result, tuple) and result and isinstance(result[0], nn.Module):
        return LoadedModel(
            result[0], result[1] if len(result) > 1 else None, type(result[0]).__name__
        )
    model = getattr(result, "model", None)
    if isinstance(model, nn.Module):
        inputs = getattr(result, "example_inputs", None)
        spec = getattr(result, "input_spec", None)
        if inputs is None and spec is not None:
            inputs = parse_input_spec(str(spec))
        desc = getattr(result, "description", "") or type(model).__name__
        return LoadedModel(model, inputs, desc)
    raise ModelLoadFailed(f"the loader returned {type(result).__name__}, not a model")


def load_model(source: str, trust: bool = False) -> LoadedModel:
    """Load through engine.io.load (trust gate, formats); fall back to the zoo/demo."""
    untrusted = _optional("engine.io.errors", "UntrustedPickleError") or ()
    load_error = _optional("engine.io.errors", "ModelLoadError") or ()
    loader = _optional("engine.io.load", "load_model")
    try:
        if loader is not None:
            return _unpack(loader(source, trust=trust))
        return _fallback_load(source, trust)
    except untrusted as exc:  # type: ignore[misc]
        raise TrustRequired(source, str(exc)) from None
    except load_error as exc:  # type: ignore[misc]
        raise ModelLoadFailed(str(exc)) from None


def _fallback_load(source: str, trust: bool) -> LoadedModel:
    """Used only while engine.io.load does not exist: zoo specs and plain torch files."""
    if is_zoo_spec(source):
        build = _optional("engine.io.zoo", "build_zoo_model")
        if build is None:
            raise EngineUnavailable("engine.io.zoo is not available yet")
        z = build(source)
        return LoadedModel(z.model, z.input_spec.make(), z.description)
    reader = _optional("engine.io.torch_files", "read_torch_file")
    if reader is None:
        raise EngineUnavailable("engine.io.load is not available yet")
    from pathlib import Path

    return _unpack(reader(Path(source), trust=trust))


def trace(model: Any, example_inputs: Any) -> Any:
    """Build the engine's DependencyGraph for a model."""
    dg_cls = _optional("engine", "DependencyGraph") or _optional("engine.graph", "DependencyGraph")
    if dg_cls is None:
        raise EngineUnavailable(
            "the dependency-graph engine (engine.DependencyGraph) is not available yet"
        )
    return dg_cls().build_dependency(model, example_inputs=example_inputs)


def summarize(graph: Any) -> GraphSummary:
    fn = _optional("engine.graph", "summarize")
    if fn is None:
        raise EngineUnavailable("engine.graph.summarize is not available yet")
    return fn(graph)


def _check(cancel: CancelFlag) -> None:
    if cancel():
        raise LoadCancelled()


def load_and_trace(
    source: str,
    input_spec: str | None = None,
    trust: bool = False,
    progress: Progress = lambda f, m: None,
    cancel: CancelFlag = lambda: False,
) -> Document:
    """Source -> nn.Module -> example inputs -> DependencyGraph -> Document (plain data)."""
    name = display_name(source)
    progress(0.02, f"Loading {name}…")
    loaded = load_model(source, trust=trust)
    _check(cancel)
    guessed = False
    if input_spec:
        progress(0.3, "Preparing inputs…")
        inputs = parse_input_spec(input_spec)
    elif loaded.example_inputs is not None:
        inputs = loaded.example_inputs
    else:
        progress(0.3, "Guessing the input shape…")
        guess = _optional("engine.io.guess", "guess_example_inputs")
        inputs = guess(loaded.model) if guess is not None else None
        if inputs is None:
            raise InputShapeRequired(source, f"Arborist could not infer an input shape for {name}.")
        guessed = True
    _check(cancel)
    progress(0.4, f"Tracing {name}…")
    try:
        graph = trace(loaded.model, inputs)
    except EngineUnavailable:
        raise
    except Exception as exc:
        if guessed or input_spec:
            raise InputShapeRequired(
                source,
                f"Tracing {name} with input {describe_inputs(inputs)} failed: {exc}",
                suggestion=describe_inputs(inputs),
            ) from None
        raise ModelLoadFailed(f"Tracing {name} failed: {exc}") from exc
    _check(cancel)
    progress(0.8, "Finding coupled channel groups…")
    summary = summarize(graph)
    _check(cancel)
    return Document(
        source=source,
        title=name,
        summary=summary,
        input_spec=describe_inputs(inputs),
        description=loaded.description,
        model=loaded.model,
        graph=graph,
    )
