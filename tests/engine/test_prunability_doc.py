"""benchmarks/prunability_doc.py: the rule every row of docs/prunability.md follows, and
carried rows that stay marked as carried. Helpers only (the sweep itself is a benchmark)."""

from __future__ import annotations

from benchmarks import prunability_doc as doc
from benchmarks.prunability_families import Row

OLD = """# Prunability of torchvision models

## classification

| model | ok | groups | params before (M) | params after (M) | input | device | seconds | reason |
|---|---|---|---|---|---|---|---|---|
| resnet18 | yes | 12 | 11.69 | 3.06 | 1x3x224x224 | meta | 0.46 |  |
| swin_t | yes | 12 | 28.29 | 19.65 | 1x3x224x224 | meta | 2.08 |  |
| broken | NO | 0 | 0.00 | 0.00 | 1x3x224x224 | meta | 0.10 | KeyError: x |

# Model families: Hugging Face

| llama | 0.298 | 2 / 2 | yes | 9.6 |
"""


def test_the_rule():
    assert doc.verdict(True, 0.25, "12 / 12", "", "") == "yes"
    assert doc.verdict(True, 0.25, "-", "", "") == "yes"
    assert doc.verdict(True, 0.40, "10 / 12", "", "").startswith("partial")
    assert doc.verdict(True, 0.66, "-", "conv input channels are fixed", "") == (
        "locked: conv input channels are fixed")
    assert doc.verdict(True, 0.66, "-", "", "").startswith("NO: keeps 0.660")
    assert doc.verdict(True, 0.66, "", "", "", fresh=False).startswith("partial: keeps 0.660")
    assert doc.verdict(False, None, "", "", "KeyError: x") == "NO: KeyError: x"
    verdicts = ["yes", "yes", "locked: a", "partial: b", "NO: c"]
    assert doc.tally(verdicts).startswith("**2 of 5 pruned**")
    assert "1 locked with a named reason, 1 partial, 1 failed" in doc.tally(verdicts)


def test_old_rows_are_carried_and_say_so():
    rows = doc.carried_rows(OLD)
    assert sorted(rows) == ["broken", "resnet18", "swin_t"]  # family rows are not sweep rows
    assert rows["resnet18"].kept == 3.06 / 11.69 and rows["resnet18"].verdict == "yes"
    assert rows["swin_t"].verdict.startswith("partial: keeps 0.695 (carried row")
    assert rows["broken"].verdict == "NO: KeyError: x"
    text = doc.render(list(rows.values()), [Row("llama", "hf", 0.298, "2 / 2", "yes", 1.0)],
                      "cmd")
    assert "0 models re-run" in text and "3 rows are **carried over**" in text
    assert "| resnet18 | yes | 12 | 11.69 | 3.06 | 1x3x224x224 | meta | 0.46 | 0.262 | " \
           "not recorded | yes | carried |" in text
    assert "Overall: **2 of 4 pruned**" in text
    again = doc.carried_rows(text)  # the generator's own tables parse back the same
    assert {n: (r.ok, r.before_m, r.after_m, r.verdict) for n, r in again.items()} == {
        n: (r.ok, r.before_m, r.after_m, r.verdict) for n, r in rows.items()}
