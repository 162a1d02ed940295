"""Bounds on everything a user's file or flag decides to allocate, in one place.

A 7 KB file must not make us allocate gigabytes, a FIFO must not hang us and a
5,000-digit number must not reach the integer parser: every reader checks its
input against these limits *before* building anything, and says which limit it
hit. The numbers are generous for real models and plans, and small next to the
memory of the machines Arborist runs on.
"""

from __future__ import annotations

#: Example inputs (all tensors of one spec together) may hold at most this many
#: elements: 2**25 is 128 MiB of float32, e.g. a 3x2048x2048 image batch of 2.
MAX_INPUT_ELEMENTS = 2**25
#: No single dimension of an example input may exceed this.
MAX_INPUT_DIM = 2**24

#: Plan files are small JSON; larger files are refused before they are read.
MAX_PLAN_BYTES = 8 * 2**20
#: JSON nesting a plan may use (real plans nest 3 levels).
MAX_PLAN_DEPTH = 32
#: Digits an integer in JSON may have (plans and .pt2 programs alike).
MAX_JSON_INT_DIGITS = 40

#: A torch.export program's JSON (graph, signature) and its nesting; higher-order
#: ops nest whole graphs, ~10 levels each.
MAX_PT2_JSON_BYTES = 512 * 2**20
MAX_PT2_JSON_DEPTH = 400
#: Members of one archive.
MAX_ARCHIVE_MEMBERS = 200_000
#: Archives (.pt, .pt2) may declare at most this many times their size, plus
#: ARCHIVE_SLACK, uncompressed: torch writes members stored (ratio ~1), so a
#: higher ratio is a decompression bomb, not a model.
MAX_INFLATION = 10
ARCHIVE_SLACK = 16 * 2**20
