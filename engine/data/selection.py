"""Which data a run uses: the user's choices (`DataOptions`) -> calibration + evaluation sets.

The CLI flags, the GUI's data panel and a saved plan all fill the same `DataOptions`,
so every front end splits the same files the same way:

- `data` alone: a seeded split into calibration (criteria, recovery) and evaluation
  (`eval_fraction`, stratified by class when labeled);
- `data` and `eval_data`: all of `data` calibrates, all of `eval_data` evaluates;
- `eval_data` alone: evaluation only, nothing calibrates (data-driven criteria fall
  back to random inputs, with a warning).
`samples` caps each set to a seeded subset of that many samples; without it the
calibration set is capped at `calibration_samples` (importance scores settle after a few
hundred samples, and each one costs a forward and a backward).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import DataError
from .preprocessing import ModelFacts
from .source import BatchLoader, DataSource, make_loader, open_data, split_source, subset

DEFAULT_BATCH_SIZE = 32
DEFAULT_EVAL_FRACTION = 0.2
DEFAULT_CALIBRATION_SAMPLES = 256
PREPROCESSING_OVERRIDES = ("resize", "crop", "mean", "std", "grayscale")


@dataclass
class DataOptions:
    """The user's data choices (all JSON-able: plans and GUI settings store them)."""

    data: str | None = None
    eval_data: str | None = None
    samples: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int | None = None
    eval_fraction: float = DEFAULT_EVAL_FRACTION
    seed: int = 0
    preprocessing: dict[str, Any] = field(default_factory=dict)  # overrides, by field name
    tokenizer: str | None = None
    seq_len: int | None = None
    calibration_samples: int | None = DEFAULT_CALIBRATION_SAMPLES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataOptions:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"data options: unknown field(s) {', '.join(unknown)}")
        return cls(**data)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.preprocessing) - {*PREPROCESSING_OVERRIDES, "channels",
                                                    "scale", "interpolation"})
        if unknown:
            raise DataError(f"preprocessing override(s) {', '.join(unknown)} unknown; use "
                            f"{', '.join(PREPROCESSING_OVERRIDES)}")
        if self.samples is not None and self.samples <= 0:
            raise DataError(f"--samples must be a positive number, got {self.samples}")
        if self.batch_size <= 0:
            raise DataError(f"--batch-size must be a positive number, got {self.batch_size}")

    @property
    def any(self) -> bool:
        return bool(self.data or self.eval_data)


@dataclass
class RunData:
    """The opened sets of one run; either may be None."""

    options: DataOptions
    calibration: DataSource | None = None
    evaluation: DataSource | None = None

    def calibration_loader(self) -> BatchLoader | None:
        if self.calibration is None:
            return None
        return make_loader(self.calibration, self.options.batch_size,
                           num_workers=self.options.workers)

    def evaluation_loader(self) -> BatchLoader | None:
        if self.evaluation is None:
            return None
        return make_loader(self.evaluation, self.options.batch_size,
                           num_workers=self.options.workers)

    def describe(self) -> dict[str, Any]:
        return {
            "calibration": None if self.calibration is None else self.calibration.describe(),
            "evaluation": None if self.evaluation is None else self.evaluation.describe(),
        }


def _open(path: str, options: DataOptions, facts: ModelFacts) -> DataSource:
    return open_data(path, overrides=options.preprocessing, model_facts=facts,
                     tokenizer=options.tokenizer, seq_len=options.seq_len)


def prepare_data(options: DataOptions, facts: ModelFacts) -> RunData:
    """Open and split as the module doc says (DataError on bad data)."""
    run = RunData(options)
    if options.data:
        source = _open(options.data, options, facts)
        if options.eval_data:
            run.calibration = source
        else:
            parts = split_source(source, options.eval_fraction, options.seed)
            run.calibration, run.evaluation = parts.calibration, parts.evaluation
    if options.eval_data:
        run.evaluation = _open(options.eval_data, options, facts)
    if options.samples is not None:
        if run.evaluation is not None:
            run.evaluation = subset(run.evaluation, options.samples, options.seed)
    cap = options.samples if options.samples is not None else options.calibration_samples
    if run.calibration is not None and cap is not None:
        run.calibration = subset(run.calibration, cap, options.seed)
    return run


def prepare_evaluation(options: DataOptions, facts: ModelFacts) -> RunData:
    """Evaluate-only runs: all of `data` (or `eval_data`) is evaluated, nothing split."""
    path = options.eval_data or options.data
    if not path:
        raise DataError("give the data to evaluate on with --data PATH")
    source = _open(path, options, facts)
    if options.samples is not None:
        source = subset(source, options.samples, options.seed)
    return RunData(options, None, source)
