"""Steps shared by inspect and prune: load the model, run it once, trace its graph."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from .errors import CliError, one_line
from .progress import Progress


@dataclass
class OpenedModel:
    """A loaded model with inputs it provably runs on, and where it came from."""

    loaded: Any  # engine.io.LoadedModel
    example_inputs: Any
    input_spec: str
    reference_output: Any

    @property
    def model(self) -> Any:
        return self.loaded.model


def open_model(args: argparse.Namespace, progress: Progress) -> OpenedModel:
    """Load ``args.model`` (trust gate included) and check it runs on its example inputs."""
    import torch

    from engine.io import InputSpec, load_model

    # zoo models are built from a fixed seed (engine.io.zoo), so a --dry-run of a zoo spec
    # predicts the real run exactly
    with progress.stage(f"loading {args.model}"):
        loaded = load_model(
            args.model,
            trust=args.trust,
            arch=args.arch,
            input_spec=args.input_shape,
            code=getattr(args, "code", None),
        )
    if loaded.example_inputs is None:
        raise CliError(
            f"cannot tell what inputs {args.model} takes; pass --input-shape, e.g. 1,3,224,224"
        )
    spec = loaded.input_spec or InputSpec.from_inputs(loaded.example_inputs)
    spec_text = spec.to_string()
    with progress.stage("running the model once"), torch.no_grad():
        try:
            output = _call(loaded.model, loaded.example_inputs)
        except Exception as exc:
            raise CliError(
                f"the model does not run on example inputs {spec_text}: "
                f"{type(exc).__name__}: {one_line(str(exc), 160)}; "
                f"pass the shape it expects with --input-shape"
            ) from None
    return OpenedModel(loaded, loaded.example_inputs, spec_text, output)


def is_flat_pt2(loaded: Any) -> bool:
    """A .pt2 program engine.io.pt2_lift could not turn into layers: nothing to prune."""
    from engine.io.pt2_lift import is_lifted

    return loaded.source_kind == "pt2" and not is_lifted(loaded.model)


def _call(model: Any, inputs: Any) -> Any:
    from engine.io import call_with

    return call_with(model, inputs)


def trace(opened: OpenedModel, progress: Progress) -> Any:
    """Build the dependency graph (the output layer's channels are locked by default)."""
    from engine import DependencyGraph

    with progress.stage("tracing the dependency graph"):
        return DependencyGraph().build_dependency(opened.model, opened.example_inputs)


def count(model: Any, example_inputs: Any) -> tuple[int, int]:
    """(MACs, params) with the engine's counter (Torch-Pruning's conventions)."""
    from engine.utils import count_ops_and_params

    macs, params = count_ops_and_params(model, example_inputs)
    return int(macs), int(params)
