"""Is every stage linear in graph size? Time the stages on narrow Llamas of growing depth.

Depth is the only thing that changes (hidden 256, 4 heads, float32, CPU), so a linear stage
keeps a constant time per layer; `growth` is time(deepest) / time(shallowest) divided by the
depth ratio (1.0 = linear, 2.0 = twice as bad as linear over that range).

Usage: python -m benchmarks.scaling [--depths 4,8,16,32] [--engines ours,torch_pruning]
       [--json benchmarks/results/scaling.json]
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from .engine_speed import STAGES, engine_module, time_engine
from .measure import machine, median, write_json
from .workloads import LLAMA_SHAPES, build_llama

NARROW = dict(
    hidden_size=256,
    intermediate_size=512,
    num_attention_heads=4,
    num_key_value_heads=4,
    vocab_size=1000,
)


def narrow_llama(depth: int) -> Any:
    name = f"llama_narrow_{depth}"
    LLAMA_SHAPES[name] = dict(NARROW, num_hidden_layers=depth)
    w = build_llama(name, device="cpu", dtype=torch.float32, seq_len=8)
    with torch.no_grad():
        w.expected_shape = tuple(w.output_transform(w.model(**w.example_inputs)).shape)
    return w


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depths", default="4,8,16,32")
    ap.add_argument("--engines", default="ours,torch_pruning")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    depths = [int(d) for d in args.depths.split(",")]
    engines = args.engines.split(",")
    rows: list[dict[str, Any]] = []
    for depth in depths:
        w = narrow_llama(depth)
        row: dict[str, Any] = {"depth": depth}
        for e in engines:
            runs = [time_engine(engine_module(e), w, check=False) for _ in range(args.repeats)]
            row[e] = {s: median([getattr(r, s) for r in runs]) for s in STAGES}
        rows.append(row)
        print(
            f"depth {depth:3d}  "
            + "  ".join(
                f"{e}: " + " ".join(f"{s} {row[e][s] / depth * 1e3:6.1f}" for s in STAGES)
                for e in engines
            )
            + "  (ms per layer)",
            flush=True,
        )
    growth = {
        e: {
            s: (rows[-1][e][s] / rows[0][e][s]) / (depths[-1] / depths[0])
            for s in STAGES
            if rows[0][e][s]
        }
        for e in engines
    }
    print("growth vs linear (1.0 = linear):", growth)
    if args.json:
        write_json(args.json, {"machine": machine(), "rows": rows, "growth": growth})


if __name__ == "__main__":
    main()
