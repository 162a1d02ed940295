"""Render docs/benchmarks.md from the JSON results the benchmark scripts wrote.

Usage: python -m benchmarks.report [--results benchmarks/results] [--out docs/benchmarks.md]
Every number in the doc comes from a JSON file; the prose around the tables is in `notes`.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from .measure import write_text

STAGES = ("build", "groups", "pruner", "step", "total")

# Latency result files, and how their targets rows are labelled: the same cases measured
# under glibc's default allocator and with `--no-mmap` (no page faults per forward).
LATENCY_RUNS = (("latency.json", ""), ("latency_no_mmap.json", " (no-mmap)"))


def _load(path: str) -> Any:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _s(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _load_text(m: dict | None) -> str:
    if not m:
        return "?"
    la = m.get("loadavg_1_5_15", [None])
    return f"load {la[0]:.1f} on {m.get('cpu_count')} cores ({m.get('utc', '')})"


def speed_table(report: dict) -> list[str]:
    lines = [
        "| model | params | stage | ours (s) | Torch-Pruning (s) | ours / TP |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        o, t, r = row["ours"], row["torch_pruning"], row["ratio"]
        for i, s in enumerate(STAGES):
            head = f"| {row['model']} | {row['params'] / 1e6:.1f} M" if i == 0 else "| |"
            lines.append(f"{head} | {s} | {_s(o.get(s))} | {_s(t.get(s))} | {_s(r.get(s))} |")
    return lines


def memory_table(report: dict) -> list[str]:
    lines = [
        "| model | ours: peak RSS added (MB) | TP: peak RSS added (MB) | groups ours / TP "
        "| params after ours / TP (M) | pruned model runs ours / TP |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        o, t = row["ours"], row["torch_pruning"]

        def mem(e: dict) -> str:
            m = e.get("memory") or {}
            return _s(m.get("peak_extra_mb"), 0) if "peak_extra_mb" in m else "-"

        def yn(e: dict) -> str:
            return "-" if "runs_after" not in e else ("yes" if e["runs_after"] else "NO")

        lines.append(
            f"| {row['model']} | {mem(o)} | {mem(t)} | {o.get('n_groups', '-')} / "
            f"{t.get('n_groups', '-')} | {_s((o.get('params_after') or 0) / 1e6)} / "
            f"{_s((t.get('params_after') or 0) / 1e6)} | {yn(o)} / {yn(t)} |"
        )
    return lines


def targets_table(
    speed: dict | None, meta: dict | None, lats: list[tuple[str, dict]]
) -> list[str]:
    lines = ["| target | measured | met |", "|---|---|---|"]
    if speed:
        for row in speed["rows"]:
            r = row["ratio"].get("total")
            err = row["torch_pruning"].get("error")
            if err:
                lines.append(
                    f"| {row['model']}: trace + step <= 0.5 x Torch-Pruning | Torch-Pruning "
                    f"failed ({err.split(':')[0]}); ours {_s(row['ours'].get('total'))} s "
                    "| n/a |"
                )
                continue
            lines.append(
                f"| {row['model']}: trace + step <= 0.5 x Torch-Pruning | {_s(r)} x "
                f"| {'yes' if r is not None and r <= 0.5 else 'NO'} |"
            )
            om = (row["ours"].get("memory") or {}).get("peak_extra_mb")
            tm = (row["torch_pruning"].get("memory") or {}).get("peak_extra_mb")
            if om is not None and tm is not None:
                lines.append(
                    f"| {row['model']}: peak memory <= Torch-Pruning | {om:.0f} vs {tm:.0f} MB "
                    f"| {'yes' if om <= tm else 'NO'} |"
                )
            if row["model"] == "densenet201":
                tot = row["ours"].get("total")
                lines.append(
                    f"| densenet201 under 5 s in all (pruner + step) | {_s(tot)} s "
                    f"| {'yes' if tot is not None and tot < 5 else 'NO'} |"
                )
    if meta:
        s = meta["seconds"]
        core = s["build_model"] + s["trace"] + s["groups"] + s["count"]
        lines.append(
            f"| 70B Llama on meta: build + trace + groups + MACs < 60 s | {core:.1f} s "
            f"| {'yes' if core < 60 else 'NO'} |"
        )
        peak = meta.get("peak_rss_after_stage_mb", {}).get("count", meta["peak_rss_mb"])
        lines.append(
            f"| 70B Llama on meta: peak RSS < 2 GB (through the MAC count) | {peak:.0f} MB "
            f"| {'yes' if peak < 2048 else 'NO'} |"
        )
    for label, lat in lats:
        for d in lat["rows"]:
            if d["ratio"] == 0:
                continue
            spread = _interval(d)
            lines.append(
                f"| {d['model']} @ {d['ratio']}{label}: speedup within 20% of MACs speedup "
                f"| {d['measured_speedup']:.2f} vs {d['macs_speedup']:.2f} "
                f"({d['speedup_over_macs']:.3f}{spread}) "
                f"| {'yes' if d['within_20pct'] else 'NO'} |"
            )
    return lines


def meta_table(meta: dict) -> list[str]:
    s = meta["seconds"]
    return [
        "| quantity | value |",
        "|---|---|",
        f"| parameters (never allocated) | {meta['params'] / 1e9:.1f} B |",
        f"| graph nodes / groups | {meta['nodes']} / {meta['groups']} |",
        f"| probe runs | {meta['probe_runs']} |",
        f"| MACs (seq len {meta['seq_len']}) | {meta['macs'] / 1e9:.1f} G |",
        f"| MACs after halving every group | {meta['macs_after_halving'] / 1e9:.1f} G |",
    ] + [f"| seconds: {k} | {v:.1f} |" for k, v in s.items()] + [
        f"| peak RSS of the whole process (incl. ~0.75 GB of imports) | "
        f"{meta['peak_rss_mb']:.0f} MB |",
        f"| RSS at start (after imports) | {meta['rss_at_start_mb']:.0f} MB |",
    ] + [
        f"| peak RSS after {k} | {v:.0f} MB |"
        for k, v in meta.get("peak_rss_after_stage_mb", {}).items()
    ]


def _interval(d: dict) -> str:
    """', 90 % 0.77-0.82: within noise' when the run recorded a bootstrap interval."""
    if "speedup_over_macs_90pct" not in d:
        return ""
    lo, hi = d["speedup_over_macs_90pct"]
    return f", 90 % {lo:.2f}-{hi:.2f}: {d['verdict']}"


def latency_table(lat: dict) -> list[str]:
    lines = [
        "| model | ratio | GMACs | params (M) | latency (ms, median) | measured speedup "
        "| MACs speedup | measured / MACs | 90 % interval | verdict | page faults (MB/forward) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in lat["rows"]:
        lo, hi = d.get("speedup_over_macs_90pct", (float("nan"), float("nan")))
        lines.append(
            f"| {d['model']} | {d['ratio']:.2f} | {d['macs'] / 1e9:.2f} | {d['params'] / 1e6:.2f} "
            f"| {d['latency_s'] * 1e3:.0f} | {d['measured_speedup']:.2f} "
            f"| {d['macs_speedup']:.2f} | {d['speedup_over_macs']:.3f} "
            f"| {lo:.2f}-{hi:.2f} | {d.get('verdict', '-')} "
            f"| {_s(d.get('faulted_mb_per_forward'), 0)} |"
        )
    return lines


def latency_kinds_table(lat: dict) -> list[str]:
    """Share of each forward spent in MAC-bound vs per-channel (memory-bound) work."""
    rows = [d for d in lat["rows"] if d.get("time_by_kind_s")]
    if not rows:
        return []
    kinds = list(rows[0]["time_by_kind_s"])
    lines = [
        "| model | ratio | " + " | ".join(kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    for d in rows:
        t = d["time_by_kind_s"]
        total = sum(t.values()) or 1.0
        lines.append(f"| {d['model']} | {d['ratio']:.2f} | "
                     + " | ".join(f"{100 * t[k] / total:.0f} %" for k in kinds) + " |")
    return lines


def latency_section(lat: dict, label: str) -> list[str]:
    allocator = lat.get("allocator", "glibc default")
    out = [
        f"## Latency of pruned models (CPU){label}",
        "",
        f"Batch {lat['batch']}, `round_to={lat['round_to']}`, {lat['threads']} thread(s), "
        f"allocator: {allocator}, {_load_text(lat.get('machine_before'))} -> "
        f"{_load_text(lat.get('machine_after'))}. Original and pruned copies are timed "
        "interleaved (one forward of each per round); the interval is a 90 % bootstrap over "
        "the rounds, and the verdict is 'met' or 'missed' only when all of it is on one side "
        "of 0.8.",
        "",
    ] + latency_table(lat) + [""]
    kinds = latency_kinds_table(lat)
    if kinds:
        out += [
            "Where each forward's time goes (leaf layers timed with hooks in a separate "
            "pass; \"outside layers\" is residual adds, layer scales and reshapes). MACs "
            "shrink with the square of the width, the per-channel kinds only linearly:",
            "",
        ] + kinds + [""]
    return out


def scaling_table(sc: dict) -> list[str]:
    engines = [k for k in sc["rows"][0] if k != "depth"]
    stages = list(sc["rows"][0][engines[0]])
    head = " | ".join(f"{e} {s}" for e in engines for s in stages)
    lines = [f"| depth | {head} |", "|---" * (1 + len(engines) * len(stages)) + "|"]
    for row in sc["rows"]:
        d = row["depth"]
        cells = " | ".join(f"{row[e][s] / d * 1e3:.1f}" for e in engines for s in stages)
        lines.append(f"| {d} | {cells} |")
    cells = " | ".join(f"{sc['growth'][e].get(s, 0):.2f}" for e in engines for s in stages)
    lines.append(f"| growth vs linear | {cells} |")
    return lines


def data_eval_section(d: dict) -> list[str]:
    """`benchmarks.data_eval`: evaluation throughput, streaming RSS, data-driven scoring."""
    out = [
        "## Data in the loop: evaluation and data-driven scoring",
        "",
        f"`python -m benchmarks.data_eval{' --quick' if d.get('quick') else ''}` "
        f"({_load_text(d.get('machine_before'))} -> {_load_text(d.get('machine_after'))}). "
        "Throughput: `evaluate(model, make_loader(open_data(folder)))` against a hand-written "
        "torchvision ImageFolder + DataLoader + forward + argmax loop, same model, images "
        "(random-noise PNGs, 10 class folders), batch size and workers, alternated; the "
        "engine's time includes opening the folder. Target: at least 0.9x.",
        "",
        "| model | hand-written img/s | engine img/s | engine / hand (medians) |",
        "| --- | ---: | ---: | ---: |",
    ]
    tp = d.get("throughput", {})
    for name, r in tp.items():
        if not isinstance(r, dict):
            continue
        hand = ", ".join(f"{v:.0f}" for v in r["hand_written_img_s"])
        ours = ", ".join(f"{v:.0f}" for v in r["engine_img_s"])
        out.append(f"| {name} | {hand} | {ours} | {r['ratio_of_medians']:.2f}x |")
    out.append("")
    st = d.get("streaming")
    if st:
        first = next(iter(st.values()))
        out += [
            f"Streaming {first['images']} images (64x64 RGB PNG; "
            f"{first['whole_dataset_as_float_mb']:.0f} MB as float tensors if loaded whole) "
            "through `evaluate` with a small conv net, from a warm baseline (torchvision, PIL "
            "and one forward already loaded). Target: RSS growth under 200 MB. PSS (shared "
            "pages split among processes) counts forked workers fairly: their RSS would "
            "count the parent's pages once per worker; their PSS growth includes the "
            "parent's pages they touch copy-on-write.",
            "",
            "| workers | seconds | RSS growth, main process | PSS growth, main + workers |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for r in st.values():
            out.append(f"| {r['workers']} | {r['seconds']:.0f} | {r['rss_growth_main_mb']:.0f} MB "
                       f"| {r['pss_growth_with_workers_mb']:.0f} MB |")
        out.append("")
    sc = d.get("scoring_resnet50")
    if sc:
        a, t = sc["activation"], sc["taylor"]
        out += [
            f"ResNet-50 (random weights), {sc['samples']} real images (the digits PNGs, "
            f"{sc['preprocessing']}), batch {sc['batch_size']}, {sc['groups']} groups: "
            f"activation statistics {a['collect_s']:.1f} s (forwards) + "
            f"{a['score_s']:.2f} s scoring; Taylor gradients {t['gradients_s']:.1f} s "
            f"(forwards + backwards, labels) + {t['score_s']:.2f} s scoring.",
            "",
        ]
    if d.get("note"):
        out += [d["note"], ""]
    return out


def render(results: str, notes: str = "") -> str:
    speed = _load(os.path.join(results, "engine_speed.json"))
    meta = _load(os.path.join(results, "meta_trace_llama_70b.json"))
    lats = [
        (label, lat)
        for name, label in LATENCY_RUNS
        if (lat := _load(os.path.join(results, name))) is not None
    ]
    sc = _load(os.path.join(results, "scaling.json"))
    out = [
        "# Benchmarks",
        "",
        "Generated by `python -m benchmarks.report` from the JSON files in `benchmarks/results/` "
        "(written by `benchmarks.engine_speed`, `benchmarks.meta_trace`, `benchmarks.latency`, "
        "`benchmarks.scaling`).",
        "All numbers are CPU-only: **no GPU was available for these runs**. The machine has 2 "
        "cores shared with other jobs, so absolute times are noisy; the engine comparison runs "
        "both engines in the same process, alternating (ABBA), one thread, and reports medians, "
        "so the ratios are the meaningful part. The load average at start and end of each run "
        "is recorded in the JSON and below.",
        "",
    ]
    if notes:
        out += [notes, ""]
    out += ["## Targets", ""] + targets_table(speed, meta, lats) + [""]
    if speed:
        out += [
            "## Engine speed: Arborist vs Torch-Pruning",
            "",
            f"Runs: {_load_text(speed.get('machine_before'))} -> "
            f"{_load_text(speed.get('machine_after'))}. Stages: `build` = "
            "`DependencyGraph().build_dependency`, `groups` = `get_all_groups`, `pruner` = "
            "`BasePruner(...)` construction (traces again), `step` = `pruner.step()` at ratio 0.5 "
            "with `MagnitudeImportance(p=2)` and the classifier / LM head ignored, `total` = "
            "pruner + step (the whole 'trace + step').",
            "",
        ] + speed_table(speed) + [
            "",
            "Peak memory: RSS high-water mark added by pruner construction + step, each engine in "
            "a fresh subprocess after the model is built (kernel `VmHWM` reset through "
            "`/proc/self/clear_refs`).",
            "",
        ] + memory_table(speed) + [""]
    if sc:
        out += [
            "## Scaling with graph size",
            "",
            f"`python -m benchmarks.scaling` ({_load_text(sc.get('machine'))}): narrow Llamas "
            "(hidden 256, float32, CPU) of growing depth; milliseconds per layer per stage "
            "(constant = linear). Last row: time(deepest) / time(shallowest) / depth ratio.",
            "",
        ] + scaling_table(sc) + [""]
    if meta:
        out += [
            "## A 70 B Llama on the meta device",
            "",
            f"Run: {_load_text(meta.get('machine'))}. Built from a Llama-2-70B-shaped config under "
            "`torch.device('meta')`: no weights exist anywhere. Traced, groups enumerated, "
            "MACs counted, then every group halved on the meta model and counted again (the "
            "preview before touching real weights).",
            "",
        ] + meta_table(meta) + [""]
    for label, lat in lats:
        out += latency_section(lat, label)
    data_eval = _load(os.path.join(results, "data_eval.json"))
    if data_eval:
        out += data_eval_section(data_eval)
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="benchmarks/results")
    ap.add_argument("--out", default="docs/benchmarks.md")
    ap.add_argument("--notes", default="", help="a Markdown file with findings to include")
    args = ap.parse_args()
    notes = open(args.notes).read().strip() if args.notes else ""
    write_text(args.out, render(args.results, notes) + "\n")


if __name__ == "__main__":
    main()
