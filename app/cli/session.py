"""The CLI's side of engine.workflow.Session: open with the CLI's wording, trace, count.

The workflow itself (trust gate, run-once check, tracing, counting) is the Session's,
the same code the GUI runs; this module only maps flags in and messages out.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from .errors import CliError, one_line
from .progress import Progress


@dataclass
class OpenedModel:
    """An opened Session plus the LoadedModel facts the commands print."""

    session: Any  # engine.workflow.Session

    @property
    def model(self) -> Any:
        return self.session.model

    @property
    def example_inputs(self) -> Any:
        return self.session.example_inputs

    @property
    def input_spec(self) -> str:
        return self.session.input_spec

    @property
    def reference_output(self) -> Any:
        return self.session.reference_output

    @property
    def loaded(self) -> Any:  # description, arch, source_kind, pruning_history
        return self.session


def open_model(args: argparse.Namespace, progress: Progress) -> OpenedModel:
    """Session.open for ``args.model`` (trust gate included), run once on its inputs."""
    from engine.workflow import InputsDoNotRun, InputsUnknown, Session

    # zoo models are built from a fixed seed (engine.io.zoo), so a --dry-run of a zoo spec
    # predicts the real run exactly
    with progress.stage(f"loading {args.model}"):
        try:
            session = Session.open(
                args.model,
                trust=args.trust,
                arch=args.arch,
                input_spec=args.input_shape,
                code=getattr(args, "code", None),
            )
        except InputsUnknown:
            raise CliError(
                f"cannot tell what inputs {args.model} takes; pass --input-shape, e.g. 1,3,224,224"
            ) from None
        except InputsDoNotRun as exc:
            text = one_line(str(exc), 300)
            flag = "pass the shape it expects with --input-shape"
            raise CliError(text.replace("give the input shape it expects", flag)) from None
    return OpenedModel(session)


def is_flat_pt2(loaded: Any) -> bool:
    """A .pt2 program engine.io.pt2_lift could not turn into layers: nothing to prune."""
    from engine.io.pt2_lift import is_lifted

    return loaded.source_kind == "pt2" and not is_lifted(loaded.model)


def trace(opened: OpenedModel, progress: Progress) -> Any:
    """Build the dependency graph (the output layer's channels are locked by default)."""
    with progress.stage("tracing the dependency graph"):
        return opened.session.trace()


def count(model: Any, example_inputs: Any) -> tuple[int, int]:
    """(MACs, params) with the engine's counter (Torch-Pruning's conventions)."""
    from engine.workflow import Session

    return Session(model, example_inputs).counts()
