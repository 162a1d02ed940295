"""Reading plan files is bounded: size, file type, JSON depth, integer size, NaN, steps."""

from __future__ import annotations

import json
import os
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.plan import PlanError, PruningPlan
from engine.pruner.validation import MAX_ITERATIVE_STEPS


def _load(tmp_path, text: str | bytes) -> PruningPlan:
    path = tmp_path / "plan.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return PruningPlan.load(path)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_devices_are_refused_without_reading(device):
    with pytest.raises(PlanError, match="character device, not a regular file"):
        PruningPlan.load(device)


def test_a_fifo_is_refused_at_once_instead_of_blocking(tmp_path):
    fifo = tmp_path / "plan.json"
    os.mkfifo(fifo)
    result: list[BaseException] = []
    reader = threading.Thread(target=lambda: _catch(result, fifo), daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert isinstance(result[0], PlanError) and "named pipe" in str(result[0])


def _catch(result: list[BaseException], path) -> None:
    try:
        PruningPlan.load(path)
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        result.append(exc)


def test_a_file_over_the_size_cap_is_refused(tmp_path):
    with pytest.raises(PlanError, match=r"bytes; the limit is 8,388,608"):
        _load(tmp_path, b" " * (8 * 2**20 + 1))


def test_deep_nesting_and_huge_integers_are_plan_errors(tmp_path):
    with pytest.raises(PlanError, match="nested deeper than 32"):
        _load(tmp_path, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(PlanError, match="5,000 digits"):
        _load(tmp_path, '{"round_to": ' + "9" * 5000 + "}")


def test_nan_in_importance_options_is_refused_in_files_and_in_memory(tmp_path):
    with pytest.raises(PlanError, match="NaN is not a number"):
        _load(tmp_path, '{"importance": "taylor", "importance_options": {"alpha": NaN}}')
    plan = PruningPlan(importance="magnitude", importance_options={"p": float("nan")})
    with pytest.raises(PlanError, match=r"importance_options\['p'\]: nan is not a finite"):
        plan.validate()


@pytest.mark.parametrize("steps", [MAX_ITERATIVE_STEPS + 1, 1_000_000_000])
def test_iterative_steps_are_bounded_before_any_schedule_is_built(steps):
    with pytest.raises(PlanError, match=rf"iterative_steps: must be at most 1000, got {steps}"):
        PruningPlan(iterative_steps=steps).validate()
    PruningPlan(iterative_steps=MAX_ITERATIVE_STEPS).validate()


def test_a_float_steps_value_is_a_type_error(tmp_path):
    with pytest.raises(PlanError, match="iterative_steps: must be an integer"):
        _load(tmp_path, '{"iterative_steps": 1e9}')


def test_the_pruner_itself_refuses_a_huge_step_count():
    from torch import nn

    import engine as tp

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    import torch

    with pytest.raises(ValueError, match=r"iterative_steps must be at most 1000"):
        tp.pruner.BasePruner(
            model,
            torch.randn(1, 3, 8, 8),
            importance=tp.importance.MagnitudeImportance(),
            iterative_steps=10**9,
        )


# --------------------------------------------------------------------------- fuzz

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_plan_keys = st.sampled_from(sorted(PruningPlan().to_dict()) + ["bogus"])
_plans = st.dictionaries(_plan_keys, _json_values, max_size=8)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        _plans.map(json.dumps), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    )
)
def test_fuzz_the_plan_reader_only_ever_raises_plan_error(data, tmp_path):
    """Whatever the file holds, reading + validating gives a plan or a PlanError, never a
    crash, and every problem is one line naming a field or the file."""
    path = tmp_path / "fuzz.json"
    path.write_text(data, encoding="utf-8")
    try:
        plan = PruningPlan.load(path)
        plan.validate()
    except PlanError as exc:
        assert exc.problems and all("\n" not in p for p in exc.problems)
    else:
        assert json.loads(plan.to_json()) == plan.to_dict()
