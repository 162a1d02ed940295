"""preferred_channel_multiple: 16 on AVX-512, 8 otherwise or when unknown."""

from __future__ import annotations

import torch

from engine.utils.hardware import preferred_channel_multiple


def test_vector_width_by_cpu_capability():
    assert preferred_channel_multiple(lambda: "AVX512") == 16
    assert preferred_channel_multiple(lambda: "AVX2") == 8
    assert preferred_channel_multiple(lambda: "DEFAULT") == 8
    assert preferred_channel_multiple(lambda: "SVE256") == 8


def test_a_failing_probe_gives_the_common_choice():
    def broken() -> str:
        raise RuntimeError("no cpuinfo")

    assert preferred_channel_multiple(broken) == 8


def test_this_machine_answers_from_torch():
    expected = 16 if torch.backends.cpu.get_cpu_capability() == "AVX512" else 8
    assert preferred_channel_multiple() == expected
